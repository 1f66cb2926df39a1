// The defects of the workbench newcomer test (issue #13), one test each, through the reducer and
// the panes as the user meets them.

import Foundation
import Relations
import Testing
import Imaging
import Steering
import ToyWorld
@testable import Workbench

@Suite struct NewcomerDefectTests {
    static let prompt = "a red circle to the left of a blue square"

    /// The run request in a list of effects.
    func started(_ effects: [Effect]) -> RunRequest? {
        for case .start(let r) in effects { return r }
        return nil
    }

    func finish(_ s: inout ViewState, _ effects: [Effect], steps: Int = 50) {
        guard let r = started(effects) else { return }
        Fixture.play(&s, request: r, steps: steps)
    }

    /// Defect 1: A/B is one run; `r`, `n` and Enter on a new prompt are steered again, and the
    /// Relations pane never says "steering" during an unsteered run.
    @Test func abIsOneRunAndTheNextRunIsSteeredAgain() throws {
        var s = Fixture.running(Self.prompt, steps: 50)
        let ab = try #require(started(s.handle(key: .char("a"))))
        #expect(!ab.settings.steered)
        Fixture.play(&s, request: ab, steps: 10)
        let relations = Fixture.pane(Size(width: 50, height: 8)) { Widgets.relations(s, in: $1, grid: &$0) }.plainText()
        #expect(!relations.contains("steering"), "an unsteered run is not shown as steering:\n\(relations)")
        let schedule = Fixture.pane(Size(width: 100, height: 5)) { Widgets.schedule(s, in: $1, grid: &$0) }.plainText()
        #expect(schedule.contains("unsteered (A/B)"))
        // `a` again: the steered half of the pair.
        #expect(try #require(started(s.handle(key: .char("a")))).settings.steered)
        _ = s.handle(key: .char("a"))
        #expect(try #require(started(s.handle(key: .char("r")))).settings.steered, "r after A/B is steered")
        _ = s.handle(key: .char("a"))
        #expect(try #require(started(s.handle(key: .char("n")))).settings.steered, "n after A/B is steered")
        _ = s.handle(key: .char("a"))
        _ = s.handle(key: .char("e"))
        _ = s.apply(.clearLine)
        _ = s.apply(.insert("a yellow star above a purple diamond"))
        let next = try #require(started(s.handle(key: .enter)))
        #expect(next.settings.steered, "a new prompt after A/B is steered")
        Fixture.play(&s, request: next, steps: 3)
        let steering = Fixture.pane(Size(width: 50, height: 8)) { Widgets.relations(s, in: $1, grid: &$0) }.plainText()
        #expect(steering.contains("●"))
    }

    /// Defect 2: after a rejected prompt the editor stays open, the keys type, and the previous
    /// run's image and maps are gone.
    @Test func aRejectedPromptKeepsTheEditorAndClearsThePreviousRun() throws {
        for bad in ["", String(repeating: "a cat left of a dog ", count: 500), "to the left of"] {
            var s = Fixture.running(Self.prompt, steps: 20)
            #expect(s.run?.phase == .running)
            _ = s.handle(key: .char("e"))
            _ = s.apply(.clearLine)
            _ = s.apply(.insert(bad))
            let effects = s.handle(key: .enter)
            #expect(started(effects) == nil)
            #expect(effects == [.cancel(run: 1)], "the running run is cancelled, not left burning the CPU")
            #expect(s.mode == .prompt, "still editing after \(bad.prefix(20).debugDescription)")
            #expect(s.run == nil && s.abImages.isEmpty)
            _ = s.apply(.clearLine)
            for ch in "a red" { #expect(s.handle(key: .char(ch)).isEmpty, "\(ch) started something") }
            #expect(s.prompt.text == "a red")
            let screen = Fixture.screen(s, Size(width: 120, height: 40)).plainText()
            #expect(screen.contains("No image yet.") && screen.contains("Nothing was sampled"))
            #expect(!screen.contains("▀"), "no image or map of the previous run is drawn")
            #expect(Keymap.action(for: .char("s"), mode: s.mode, focus: s.focus) == .insert("s"))
        }
    }

    /// Defect 4: live edits of start and end show in the Schedule line, the Classifier pane and the sidecar.
    @Test func theSteeringRangeShownIsTheAppliedOne() throws {
        var s = Fixture.running(Self.prompt, steps: 5)
        s.field = .end
        _ = s.apply(.adjustField(-1))
        s.field = .start
        _ = s.apply(.adjustField(1))
        s.apply(.applied(run: 1, version: s.settingsVersion, step: 5))
        #expect(s.log.last == "end 24, start 1 applied at step 6")
        let schedule = Fixture.pane(Size(width: 100, height: 5)) { Widgets.schedule(s, in: $1, grid: &$0) }.plainText()
        #expect(schedule.contains("steering [1, 24)"), "\(schedule)")
        let car = try #require(Sidecar.make(s, imageFile: "x.png"))
        #expect(car.schedule.startStep == 1 && car.schedule.endStep == 24)
        // A version the engine has not applied yet is not shown as the run's.
        _ = s.apply(.adjustField(1))
        #expect(s.run?.settings.steering.startStep == 1)
        #expect(Fixture.pane(Size(width: 100, height: 5)) { Widgets.schedule(s, in: $1, grid: &$0) }.plainText().contains("steering [1, 24)"))
        // Past the range the Classifier pane names the applied range.
        var late = Fixture.running(Self.prompt, steps: 3)
        late.field = .end
        for _ in 0..<5 { _ = late.apply(.adjustField(-1)) }
        late.apply(.applied(run: 1, version: late.settingsVersion, step: 3))
        Fixture.play(&late, request: RunRequest(id: 1, settings: late.run!.settings, version: late.settingsVersion), steps: 40)
        let classifier = Fixture.pane(Size(width: 74, height: 12)) { Widgets.classifier(late, in: $1, grid: &$0) }.plainText()
        #expect(classifier.contains("outside the steering range [0, 20)"), "\(classifier)")
    }

    /// Defect 5: `:` starts an empty field with the old value as a hint; typing replaces it.
    @Test func typingAValueReplacesTheOldOne() {
        var s = Fixture.state()
        _ = s.apply(.leaveEditing)
        s.field = .steps
        _ = s.handle(key: .char(":"))
        let hint = Fixture.pane(Size(width: 100, height: 5)) { Widgets.schedule(s, in: $1, grid: &$0) }
        #expect(hint.plainText().contains("steps (was 50)"), "\(hint.plainText())")
        for ch in "200" { _ = s.handle(key: .char(ch)) }
        _ = s.handle(key: .enter)
        #expect(s.settings.steps == 200 && s.log.last == "steps 200 (next run)")
        // Enter on the empty field keeps the value.
        _ = s.handle(key: .char(":"))
        _ = s.handle(key: .enter)
        #expect(s.settings.steps == 200 && s.log.last == "steps unchanged (200)")
    }

    /// Defect 7: without half-blocks the preview keeps its aspect ratio (a square image is twice as
    /// many columns as rows, like the attention map), in no-colour and ASCII tiers alike.
    @Test func previewKeepsItsAspectInEveryTier() {
        for (tier, ascii) in [(ColorTier.none, false), (.none, true), (.basic, true), (.palette256, false)] {
            var s = Fixture.running(Self.prompt, steps: 50, tier: tier, ascii: ascii)
            // A white square image, so every pixel draws as a visible cell in every tier.
            let white = RGBImage(width: 32, height: 32, pixels: [UInt8](repeating: 255, count: 32 * 32 * 3))
            s.run!.final = white
            for i in s.run!.steps.indices { s.run!.steps[i].preview = white }
            s.fitted = [:]
            let size = Size(width: 60, height: 12)
            for _ in 0..<2 {
                var g = CellGrid(width: size.width, height: size.height, ascii: ascii)
                for w in Widgets.preview(s, in: g.bounds, grid: &g) {
                    s.apply(.fitted(w.key, ImageFitter.fit(w.source, boxWidth: w.key.box.width, boxHeight: w.key.box.height)))
                }
            }
            var g = CellGrid(width: size.width, height: size.height, ascii: ascii)
            Widgets.preview(s, in: g.bounds, grid: &g)
            // The first slot's image: the cells it covers (not blank, not caption, not border).
            let slot = Rect(x: 1, y: 1, width: 27, height: 9)
            var cols = Set<Int>(), rows = Set<Int>()
            for y in slot.y..<slot.maxY { for x in slot.x..<slot.maxX {
                let c = g[x, y]
                if c.character != " " || !c.style.bg.isDefault { cols.insert(x); rows.insert(y) }
            } }
            #expect(rows.count > 0 && cols.count == 2 * rows.count,
                    "tier \(tier) ascii \(ascii): image \(cols.count) columns × \(rows.count) rows")
        }
    }

    /// Defect 8: of contradicting relations only the first is steered, and the pane says so.
    @Test func contradictionsSteerOnlyTheFirst() throws {
        var s = Fixture.state(vocabulary: Fixture.toyVocabulary)
        _ = s.apply(.insert("a red circle left of a blue square and the blue square left of the red circle"))
        let r = try #require(started(s.apply(.run)))
        #expect(r.settings.activeOrder == [0])
        #expect(s.graphNotes.contains("relation 2 off: it contradicts relation 1, which is steered (d switches it on)"))
        // `d` on relation 2 switches it back on (the user's choice).
        _ = s.apply(.selectRelation(1))
        _ = s.apply(.toggleRelation)
        #expect(s.settings.activeOrder == [0, 1])
    }

    /// Defect 9: nothing steerable → "nothing to steer", not "steered".
    @Test func nothingToSteerIsSaid() {
        for prompt in ["a dog to the left of a cat", "a red circle next to a blue square"] {
            let s = Fixture.running(prompt, steps: 50, vocabulary: Fixture.toyVocabulary)
            #expect(s.run?.steeringLabel == "nothing to steer", "\(prompt)")
            let screen = Fixture.screen(s, Size(width: 120, height: 40)).plainText()
            #expect(screen.contains("nothing to steer") && !screen.contains(" steered "), "\(prompt):\n\(screen)")
            #expect(Widgets.previewPictures(s).map(\.1).contains("final (nothing to steer)"))
        }
        let steered = Fixture.running(Self.prompt, steps: 50, vocabulary: Fixture.toyVocabulary)
        #expect(steered.run?.steeringLabel == "steered")
    }

    /// Defect 10: examples come from the loaded model's vocabulary.
    @Test func examplesComeFromTheModelsVocabulary() {
        var toy = Fixture.state(vocabulary: Fixture.toyVocabulary)
        let placeholder = Fixture.pane(Size(width: 110, height: 3)) { Widgets.prompt(toy, in: $1, grid: &$0) }.plainText()
        #expect(placeholder.contains("\"a red circle to the left of a blue square\""))
        _ = toy.apply(.run)
        #expect(toy.graphError?.contains("e.g. \"a red circle to the left of a blue square\"") == true, "\(toy.graphError ?? "")")
        _ = toy.apply(.insert("to the left of"))
        _ = toy.apply(.run)
        #expect(toy.graphError?.hasPrefix("No objects found") == true && !(toy.graphError ?? "").contains("cat"))
        // Every object of the example is one the toy model knows.
        let graph = try? PromptParser(vocabulary: Fixture.toyVocabulary).parse(toy.examplePrompt)
        #expect(graph?.objects.allSatisfy { $0.vocabularyName != nil } == true && graph?.edges.count == 1)
        // Another vocabulary, another example.
        let other = Fixture.state(vocabulary: ObjectVocabulary(["orange ring", "white cross"]))
        #expect(other.examplePrompt == "an orange ring to the left of a white cross")
    }

    /// Defect 12: paused, the key bar says resume and the ETA says paused; DONE shows the run's
    /// average rate; ^U clears the whole line.
    @Test func pausedResumeAverageRateAndClear() {
        var s = Fixture.running(Self.prompt, steps: 20)
        _ = s.apply(.pauseResume)
        s.apply(.paused(run: 1, step: 20))
        let bar = Fixture.pane(Size(width: 120, height: 1)) { Widgets.keyBar(s, in: $1, grid: &$0) }.plainText()
        #expect(bar.contains("␣ resume") && !bar.contains("pause"), "\(bar)")
        let status = Fixture.pane(Size(width: 90, height: 1)) { Widgets.status(s, in: $1, grid: &$0) }.plainText()
        #expect(status.contains("ETA paused") && !status.contains("steps/s"), "\(status)")
        // Finished: 50 steps in 20 s is 2.5 steps/s, whatever the last steps took.
        var done = Fixture.running(Self.prompt, steps: 50)
        done.apply(.finished(run: 1, image: done.run!.final!, seconds: 20))
        let d = Fixture.pane(Size(width: 90, height: 1)) { Widgets.status(done, in: $1, grid: &$0) }.plainText()
        #expect(d.contains("DONE  2.5 steps/s  20.0s"), "\(d)")
        var e = Fixture.state()
        _ = e.apply(.insert("a dog to the right of a teddy bear"))
        for _ in 0..<10 { _ = e.handle(key: .left) }
        _ = e.handle(key: .ctrl("u"))
        #expect(e.prompt.text == "")
    }

    /// Defect 14: a setting changed while idle is confirmed.
    @Test func idleChangesAreConfirmed() {
        var s = Fixture.state()
        _ = s.apply(.leaveEditing)
        _ = s.handle(key: .char("G"))
        #expect(s.log.last == "cfg 4.5 (next run)")
        s.field = .end
        _ = s.handle(key: .char("-"))
        #expect(s.log.last == "end 24 (next run)")
    }

    /// Defect 11: at 120×40 labels fit their panes with deliberate short forms, not cut mid-word.
    @Test func labelsFitTheirWidthAt120x40() {
        let size = Size(width: 120, height: 40)
        var s = Fixture.running(Self.prompt, steps: 11, size: size, vocabulary: Fixture.toyVocabulary)
        let screen = Fixture.screen(s, size).plainText()
        assertGolden("screen-120x40-running-toy", screen)
        // What the newcomer saw cut at this size: "● steerin", "(target reac", "(sub…", "max 4.6e-", "up8…".
        for cut in ["steerin│", "(target reac│", "(sub…", "e-│", "up8…", "…│"] {
            #expect(!screen.contains(cut), "cut label \(cut)")
        }
        #expect(screen.contains("blue square  ●") && screen.contains("(target reached)"))
        // One layer chosen: the info line keeps the layer and head, dropping the key hints first.
        _ = s.apply(.cycleLayer(1))
        let attention = Fixture.pane(Size(width: 30, height: 13)) { Widgets.attention(s, in: $1, grid: &$0) }.plainText()
        let info = attention.split(separator: "\n").dropLast().last.map(String.init) ?? ""
        #expect(info.contains("L1/2") && info.contains("h*"), "\(info)")
        #expect(!attention.contains("(subject)") || attention.contains("(subject) ─"), "title fitted, not cut:\n\(attention)")
        // Missing weights: the status line keeps the way out in view; the pane has the whole reason.
        var idle = Fixture.state()
        idle.apply(.status(.unavailable("the embedded model's weights were not found (looked for toy/config.json in --assets or $L2S_ASSETS when given, else in Assets/ next to the program and in ./Assets). Try `l2s --demo` for the scripted engine.")))
        let full = Fixture.screen(idle, size).plainText()
        #expect(full.split(separator: "\n").last(where: { $0.contains("model unavailable") })?.contains("try `l2s --demo`") == true, "\(full)")
        #expect(full.contains("Model unavailable: the embedded model's"))
    }

    /// Defect 13: `s` saves upscaled PNGs (≥ 256 px by default, or the factor asked for) and, in
    /// the A/B view, both halves, each with its sidecar.
    @Test func saveWritesBothHalvesUpscaled() throws {
        var s = Fixture.running(Self.prompt, steps: 50)
        let ab = try #require(started(s.handle(key: .char("a"))))
        Fixture.play(&s, request: ab, steps: 50)
        #expect(s.abCounterpart != nil)
        let dir = NSTemporaryDirectory() + "l2s-save-ab-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let date = Date(timeIntervalSince1970: 0)
        let paths = try Sidecar.save(s, directory: dir, date: date, upscale: 3)
        #expect(paths.count == 2)
        var steered: [Bool] = []
        for p in paths {
            let png = try readPNG(path: p)
            #expect(png.width == 96 && png.height == 96)
            let car = try JSONDecoder().decode(Sidecar.self, from: Data(contentsOf: URL(fileURLWithPath: (p as NSString).deletingPathExtension + ".json")))
            #expect(car.upscale == 3 && car.image == (p as NSString).lastPathComponent && car.perStep.count == 50)
            steered.append(car.steered)
        }
        #expect(steered == [false, true], "the shown (unsteered) half, then the steered one")
        // Without the A/B pair: one image, at the default factor.
        let one = Fixture.running(Self.prompt, steps: 50)
        let single = try Sidecar.save(one, directory: dir, date: date)
        #expect(single.count == 1)
        #expect(try readPNG(path: single[0]).width == 256)
    }

    /// A new run started while one is going says that it replaced it (the log had no line for it).
    @Test func replacingARunSaysSo() {
        var s = Fixture.running(Self.prompt, steps: 7)
        _ = s.handle(key: .char("n"))
        #expect(s.log.contains("run 1 cancelled after 7 steps (replaced by run 2)"))
        let finished = Fixture.running(Self.prompt, steps: 50)
        var f = finished
        _ = f.handle(key: .char("r"))
        #expect(!f.log.contains { $0.contains("cancelled") }, "a finished run is not cancelled")
    }
}
