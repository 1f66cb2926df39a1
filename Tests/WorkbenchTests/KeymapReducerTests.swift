// The key table, the line editor and the reducer: keys → actions → state + effects.

import Testing
import Relations
import Imaging
import Steering
@testable import Workbench

@Suite struct KeymapTests {
    @Test func promptModeTypesAndCommandModeCommands() {
        #expect(Keymap.action(for: .char("q"), mode: .prompt, focus: .relations) == .insert("q"))
        #expect(Keymap.action(for: .char("q"), mode: .command, focus: .relations) == .quit)
        #expect(Keymap.action(for: .enter, mode: .prompt, focus: .relations) == .run)
        #expect(Keymap.action(for: .escape, mode: .prompt, focus: .relations) == .leaveEditing)
        #expect(Keymap.action(for: .ctrl("u"), mode: .prompt, focus: .relations) == .clearLine)
        #expect(Keymap.action(for: .up, mode: .prompt, focus: .relations) == .historyPrevious)
        #expect(Keymap.action(for: .char("J"), mode: .command, focus: .schedule) == .moveRelation(1))
        #expect(Keymap.action(for: .char("K"), mode: .command, focus: .schedule) == .moveRelation(-1))
        #expect(Keymap.action(for: .char("["), mode: .command, focus: .relations) == .selectField(-1))
        #expect(Keymap.action(for: .char("]"), mode: .command, focus: .relations) == .selectField(1))
        #expect(Keymap.action(for: .char("!"), mode: .command, focus: .relations) == nil)
        #expect(Keymap.action(for: .char("!"), mode: .command, focus: .relations, testTrap: true) == .testTrap)
    }

    @Test func arrowsDependOnTheFocusedPane() {
        #expect(Keymap.action(for: .down, mode: .command, focus: .relations) == .selectRelation(1))
        #expect(Keymap.action(for: .left, mode: .command, focus: .attention) == .scrub(-1))
        #expect(Keymap.action(for: .down, mode: .command, focus: .attention) == .switchToken)
        #expect(Keymap.action(for: .right, mode: .command, focus: .schedule) == .adjustField(1))
        #expect(Keymap.action(for: .enter, mode: .command, focus: .schedule) == .editField)
        #expect(Keymap.action(for: .enter, mode: .command, focus: .relations) == .run)
    }

    @Test func layerAndHeadCycleThroughAllAndBack() {
        var s = Fixture.state()
        _ = s.apply(.cycleHead(1))
        #expect(s.mapHead == nil && s.log.last == "choose a layer first (l)")
        _ = s.apply(.cycleLayer(1))
        #expect(s.mapLayer == nil && s.log.last?.hasPrefix("no maps yet") == true)
        var r = Fixture.running("a red circle to the left of a blue square", steps: 6)
        #expect(Keymap.action(for: .char("l"), mode: .command, focus: .relations) == .cycleLayer(1))
        #expect(Keymap.action(for: .char("H"), mode: .command, focus: .relations) == .cycleHead(-1))
        var seen: [Int?] = []
        for _ in 0..<3 { _ = r.handle(key: .char("l")); seen.append(r.mapLayer) }
        #expect(seen == [0, 1, nil])
        _ = r.handle(key: .char("L"))
        #expect(r.mapLayer == 1)
        var heads: [Int?] = []
        for _ in 0..<3 { _ = r.handle(key: .char("h")); heads.append(r.mapHead) }
        #expect(heads == [0, 1, nil])
        _ = r.handle(key: .char("h"))
        _ = r.handle(key: .char("l"))  // a new layer starts at the mean of its heads
        #expect(r.mapLayer == nil && r.mapHead == nil)
        // The pane's map follows the choice: one head is not the mean of all layers.
        let it = r.shownIteration!
        #expect(it.map(.subject, layer: 0, head: 0) != it.map(.subject, layer: nil, head: nil))
    }

    @Test func helpTakesEveryKey() {
        #expect(Keymap.action(for: .down, mode: .help, focus: .relations) == .helpScroll(1))
        #expect(Keymap.action(for: .char("x"), mode: .help, focus: .relations) == .closeHelp)
    }

    @Test func noKeyIsBoundTwiceInOneContext() {
        let contexts: [KeyContext] = [.prompt, .field, .command, .help] + Focus.allCases.map { .focused($0) }
        for c in contexts {
            var seen: [Key] = []
            for b in Keymap.bindings where b.context == c {
                for k in b.keys {
                    #expect(!seen.contains(k), "\(k) bound twice in \(c)")
                    seen.append(k)
                }
            }
        }
    }

    @Test func helpAndKeyBarComeFromTheTable() {
        let help = Keymap.helpLines(ascii: false)
        for b in Keymap.bindings {
            #expect(help.contains { $0.text == b.help }, "help lacks \(b.help)")
        }
        let bar = Keymap.bar(mode: .command, focus: .relations, ascii: false)
        #expect(bar.first?.1 == "run" && bar.contains { $0.0 == "J/K" } && bar.contains { $0.1 == "quit" })
        #expect(Keymap.bar(mode: .prompt, focus: .relations, ascii: true).first?.0 == "Enter")
    }
}

@Suite struct LineEditorTests {
    @Test func editingWithCursorHomeEndAndKills() {
        var e = LineEditor()
        e.insert("a cat")
        e.home()
        e.insert("X ")
        #expect(e.text == "X a cat" && e.cursor == 2)
        e.end()
        e.left()
        e.deleteBackward()
        #expect(e.text == "X a ct")
        e.right()
        e.deleteForward()   // at the end: nothing
        e.deleteWord()
        #expect(e.text == "X a ")
        e.left(); e.left()
        e.killToEnd()
        #expect(e.text == "X ")
        e.insert("a dog")
        e.home()
        e.right()
        e.clear()   // ^U clears the whole line, not just up to the cursor
        #expect(e.text == "" && e.cursor == 0)
    }

    @Test func graphemesAreOneCursorStep() {
        var e = LineEditor("a 猫 🐶")
        e.left()
        e.deleteBackward()
        #expect(e.text == "a 猫🐶")
        #expect(e.viewport(width: 20).cursorColumn == 4)
    }

    @Test func historyKeepsTheDraft() {
        var e = LineEditor()
        e.insert("first"); e.commit()
        e.setText("second"); e.commit()
        e.setText("draft")
        e.historyPrevious()
        #expect(e.text == "second")
        e.historyPrevious()
        #expect(e.text == "first")
        e.historyPrevious()
        #expect(e.text == "first")
        e.historyNext()
        e.historyNext()
        #expect(e.text == "draft")
    }

    @Test func pastedControlCharactersAndTheLimit() {
        var e = LineEditor("", limit: 5)
        e.insert("a\nb\u{7}c\td")
        #expect(e.text == "a bc ")
        e.insert("zzz")
        #expect(e.text.count == 5)
    }

    @Test func viewportKeepsTheCursorVisible() {
        let e = LineEditor(String(repeating: "x", count: 50))
        let v = e.viewport(width: 10)
        #expect(v.start == 41 && v.cursorColumn == 9)
    }
}

@Suite struct ReducerTests {
    func typed(_ text: String, vocabulary: ObjectVocabulary? = nil) -> ViewState {
        var s = Fixture.state(vocabulary: vocabulary)
        _ = s.apply(.insert(text))
        return s
    }

    @Test func enterParsesAndStartsARun() {
        var s = typed("a dog to the right of a teddy bear")
        let effects = s.handle(key: .enter)
        guard case .start(let r)? = effects.first else { Issue.record("no run started: \(effects)"); return }
        #expect(r.prompt == "a dog to the right of a teddy bear" && r.id == 1 && r.settings.seed == 1234)
        #expect(s.mode == .command)
        #expect(s.graph?.edges.count == 1 && s.selectedEdge == 0)
        #expect(s.run?.phase == .starting)
        #expect(s.prompt.history.last == "a dog to the right of a teddy bear")
    }

    @Test func badPromptsShowAMessageAndRunWhenTheyCan() {
        var empty = typed("   ")
        #expect(empty.apply(.run).isEmpty)
        #expect(empty.graphError?.contains("empty") == true)

        var long = typed(String(repeating: "a cat left of a dog ", count: 500))   // 10 kB
        #expect(long.apply(.run).isEmpty)
        #expect(long.graphError?.contains("limit") == true)

        var noRelation = typed("a cat and a dog")
        let e1 = noRelation.apply(.run)
        #expect(e1.count == 1, "no relation: still sampled, unsteered")
        #expect(noRelation.graph?.warnings.contains(.noRelation) == true)
        #expect(noRelation.settings.activeOrder.isEmpty)

        var unknown = typed("a dog to the left of a blue square", vocabulary: Fixture.toyVocabulary)
        let e2 = unknown.apply(.run)
        #expect(e2.count == 1)
        #expect(unknown.settings.disabled == [0], "a relation with an unknown object is switched off")
        #expect(unknown.graphNotes.first?.contains("\"dog\" is not an object this model knows") == true)
    }

    @Test func unavailableModelDoesNotRun() {
        var s = typed("a cat left of a dog")
        s.apply(.status(.unavailable("weights not found")))
        #expect(s.apply(.run).isEmpty)
        #expect(s.log.last == "cannot run: weights not found")
        #expect(s.graph != nil, "the graph is still shown")
    }

    @Test func liveEditsArePendingUntilApplied() {
        var s = typed("a cat to the left of a dog")
        _ = s.apply(.run)
        s.apply(.step(run: 1, StepRecord(step: 0, totalSteps: 50, timestep: 999, seconds: 0.1,
                                         preview: RGBImage(width: 1, height: 1, pixels: [0, 0, 0]))))
        let v0 = s.settingsVersion
        let effects = s.apply(.adjustGuidance(1))
        #expect(effects == [.push(run: 1, s.settings, version: v0 + 1)])
        #expect(s.settings.guidance == 4.5 && s.pendingFields == [.guidance])
        s.apply(.applied(run: 1, version: v0 + 1, step: 3))
        #expect(s.pendingFields.isEmpty)
        #expect(s.log.last == "cfg 4.5 applied at step 4")
        #expect(s.run?.appliedChanges == ["step 4: cfg 4.5"])
        // A change the run never reached is not left marked pending.
        _ = s.apply(.adjustGuidance(1))
        s.apply(.finished(run: 1, image: RGBImage(width: 1, height: 1, pixels: [0, 0, 0]), seconds: 1))
        #expect(s.pendingFields.isEmpty)
        #expect(s.log.contains("cfg 5.0 not applied (the run ended first); applies to the next run"))
    }

    @Test func stepsAndSeedApplyToTheNextRun() {
        var s = typed("a cat to the left of a dog")
        _ = s.apply(.run)
        s.field = .steps
        _ = s.apply(.adjustField(1))
        #expect(s.settings.steps == 55 && s.pendingFields.isEmpty)
        #expect(s.log.last == "steps 55 applies to the next run")
        let effects = s.apply(.rerun)
        guard case .start(let r)? = effects.first else { Issue.record("no rerun"); return }
        #expect(r.settings.steps == 55 && r.settings.seed == 1234)
    }

    @Test func typedValuesAreValidated() {
        var s = Fixture.state()
        s.field = .guidance
        _ = s.apply(.editField)
        #expect(s.mode == .field(.guidance) && s.fieldEditor.text == "")
        _ = s.apply(.insert("7.25"))
        _ = s.apply(.commitField)
        #expect(s.settings.guidance == 7.25 && s.mode == .command)
        s.field = .start
        _ = s.apply(.editField)
        _ = s.apply(.insert("99"))
        _ = s.apply(.commitField)
        #expect(s.settings.steering.startStep == 0)
        #expect(s.log.last == "start must be in 0…25 (the end)")
    }

    /// The embedded model's default guidance 1.25 was shown as "cfg 1.2".
    @Test func guidanceShowsItsSecondDecimal() {
        var s = GenerationSettings()
        s.guidance = 1.25
        #expect(ScheduleField.guidance.value(in: s) == "1.25")
        s.guidance = 2
        #expect(ScheduleField.guidance.value(in: s) == "2.0")
        s.guidance = 7.5
        #expect(ScheduleField.guidance.value(in: s) == "7.5")
    }

    @Test func everyFieldStaysInRange() {
        var s = GenerationSettings()
        for f in ScheduleField.allCases {
            for _ in 0..<300 { f.adjust(&s, by: -1) }
            for _ in 0..<5 { f.adjust(&s, by: 1) }
        }
        #expect(s.steering.validationError() == nil)
        #expect(s.steps >= 1 && s.guidance >= 0 && s.steering.probabilityTarget > 0)
        for f in ScheduleField.allCases { for _ in 0..<2000 { f.adjust(&s, by: 1) } }
        #expect(s.steering.validationError() == nil && s.steps == 1000 && s.guidance == 50)
    }

    @Test func reorderAndDisableRelationsLive() {
        var s = typed("a cat to the left of a dog and a bird above the cat")
        _ = s.apply(.run)
        s.apply(.step(run: 1, StepRecord(step: 0, totalSteps: 50, timestep: 999, seconds: 0.1,
                                         preview: RGBImage(width: 1, height: 1, pixels: [0, 0, 0]))))
        #expect(s.settings.order == [0, 1] && s.selectedEdge == 0)
        let e1 = s.handle(key: .char("J"))
        #expect(s.settings.order == [1, 0] && s.orderPending)
        guard case .push(_, let pushed, _)? = e1.first else { Issue.record("no push"); return }
        #expect(pushed.order == [1, 0])
        _ = s.handle(key: .char("d"))
        #expect(s.settings.disabled == [0] && s.settings.activeOrder == [1])
        _ = s.handle(key: .char("K"))
        #expect(s.settings.order == [0, 1])
        _ = s.handle(key: .char("d"))
        #expect(s.settings.disabled.isEmpty)
    }

    @Test func pauseCancelAndStaleEvents() {
        var s = typed("a cat to the left of a dog")
        _ = s.apply(.run)
        #expect(s.apply(.pauseResume) == [.pause(run: 1, true)])
        s.apply(.paused(run: 1, step: 7))
        #expect(s.run?.phase == .paused)
        #expect(s.apply(.pauseResume) == [.pause(run: 1, false)])
        s.apply(.resumed(run: 1))
        #expect(s.run?.phase == .running)
        #expect(s.apply(.cancel) == [.cancel(run: 1)])
        // A second run: events of the first are ignored.
        _ = s.apply(.rerun)
        s.apply(.cancelled(run: 1, step: 8))
        #expect(s.run?.id == 2 && s.run?.phase == .starting)
        s.apply(.failed(run: 2, message: "boom"))
        #expect(s.run?.phase == .failed && s.log.last == "run 2 failed: boom")
        #expect(s.apply(.pauseResume).isEmpty)
    }

    @Test func abToggleRerunsWithTheSameSeedAndKeepsBothImages() {
        var s = Fixture.running("a cat to the left of a dog", steps: 50)
        let img = s.run!.final!
        let effects = s.apply(.toggleSteered)
        guard case .start(let r)? = effects.first else { Issue.record("no A/B run"); return }
        #expect(!r.settings.steered && r.settings.seed == 1234)
        #expect(r.graph?.prompt == r.settings.prompt, "the UI's parse travels with the request")
        #expect(r.settings.steering.mode == .observe, "the unsteered half only reads the classifier along")
        s.apply(.finished(run: r.id, image: img, seconds: 1))
        #expect(s.abCounterpart?.steered == true)
        #expect(Widgets.previewPictures(s).map(\.1) == ["final (unsteered)", "A/B: steered"],
                "no step previews for the new run yet: its final image and the steered one")
    }

    @Test func newSeedAndScrubbing() {
        var s = Fixture.running("a cat to the left of a dog", steps: 10)
        _ = s.apply(.scrub(-3))
        #expect(s.viewStep == 6 && s.shownStep == 6)
        _ = s.apply(.scrub(10))
        #expect(s.viewStep == nil && s.shownStep == 9)
        _ = s.apply(.scrubToStart)
        #expect(s.shownStep == 0)
        _ = s.apply(.scrubToLive)
        #expect(s.shownStep == 9)
        let before = s.settings.seed
        let effects = s.apply(.newSeed)
        #expect(s.settings.seed != before && effects.count == 1)
    }

    @Test func quitAndHelp() {
        var s = Fixture.state()
        _ = s.apply(.leaveEditing)
        _ = s.handle(key: .char("?"))
        #expect(s.mode == .help)
        _ = s.handle(key: .down)
        #expect(s.helpScroll == 1)
        _ = s.handle(key: .escape)
        #expect(s.mode == .command)
        #expect(s.handle(key: .char("q")) == [.quit] && s.quitRequested)
    }
}
