// Key actions and engine events → new state + effects. Pure: the App performs the effects.

import Foundation
import Relations
import Steering

/// What the App must do after an action.
enum Effect: Equatable, Sendable {
    /// Start a run (cancelling the one in progress).
    case start(RunRequest)
    case cancel(run: Int)
    case pause(run: Int, Bool)
    /// Publish settings to the running engine.
    case push(run: Int, GenerationSettings, version: Int)
    case save
    case quit
    /// The test hook: trap on purpose.
    case trap
}

extension RunRequest: Equatable {
    static func == (a: RunRequest, b: RunRequest) -> Bool {
        a.id == b.id && a.settings == b.settings && a.version == b.version
    }
}

extension ViewState {
    /// Handles a key, returning the effects.
    mutating func handle(key: Key) -> [Effect] {
        guard let action = Keymap.action(for: key, mode: mode, focus: focus, testTrap: testTrap) else { return [] }
        return apply(action)
    }

    /// Applies one action.
    mutating func apply(_ action: Action) -> [Effect] {
        switch action {
        case .insert(let s): editText { $0.insert(s) }
        case .cursorLeft: editText { $0.left() }
        case .cursorRight: editText { $0.right() }
        case .cursorHome: editText { $0.home() }
        case .cursorEnd: editText { $0.end() }
        case .deleteBackward: editText { $0.deleteBackward() }
        case .deleteForward: editText { $0.deleteForward() }
        case .clearLine: editText { $0.clear() }
        case .killToEnd: editText { $0.killToEnd() }
        case .deleteWord: editText { $0.deleteWord() }
        case .historyPrevious: if mode == .prompt { prompt.historyPrevious() }
        case .historyNext: if mode == .prompt { prompt.historyNext() }
        case .editPrompt: mode = .prompt
        case .leaveEditing: mode = .command

        case .run:
            let text = prompt.text
            if mode == .prompt { prompt.commit() }
            let effects = startRun(prompt: text)
            // A rejected prompt keeps the editor open: what is typed next is the fix, not commands.
            mode = graphError == nil ? .command : .prompt
            return effects
        case .rerun:
            let text = prompt.isEmpty ? (run?.prompt ?? "") : prompt.text
            return startRun(prompt: text)
        case .newSeed:
            settings.seed = freshSeed()
            let text = prompt.isEmpty ? (run?.prompt ?? "") : prompt.text
            return startRun(prompt: text)
        case .toggleSteered:
            // One run of the other steering mode with the same seed; the next run is steered again.
            let steered = !(run?.settings.steered ?? true)
            let text = prompt.isEmpty ? (run?.prompt ?? "") : prompt.text
            note(steered ? "A/B: steered run, seed \(settings.seed)"
                         : "A/B: unsteered run, seed \(settings.seed) (the classifier only reads along; the next run is steered)")
            return startRun(prompt: text, steered: steered)
        case .pauseResume:
            guard var r = run, r.phase.isActive else { note("nothing is running"); return [] }
            if r.phase == .paused || r.pauseRequested {
                r.pauseRequested = false
                run = r
                note("resuming")
                return [.pause(run: r.id, false)]
            }
            r.pauseRequested = true
            run = r
            note("pausing at the next step boundary")
            return [.pause(run: r.id, true)]
        case .cancel:
            guard var r = run, r.phase.isActive else { note("nothing is running"); return [] }
            r.cancelRequested = true
            run = r
            note("cancelling at the next step boundary")
            return [.cancel(run: r.id)]
        case .save:
            guard let r = run, r.final != nil || !r.steps.isEmpty else { note("nothing to save yet: run a prompt first"); return [] }
            return [.save]

        case .focusNext: focus = Self.cycle(Focus.allCases, focus, 1)
        case .focusPrevious: focus = Self.cycle(Focus.allCases, focus, -1)
        case .selectRelation(let d):
            let edges = orderedEdges
            guard !edges.isEmpty else { return [] }
            let i = selectedEdge.flatMap { edges.firstIndex(of: $0) } ?? 0
            selectedEdge = edges[min(max(i + d, 0), edges.count - 1)]
        case .moveRelation(let d):
            guard let e = selectedEdge, settings.order?.contains(e) == true else {
                note("select a steerable relation to reorder (j/k)"); return []
            }
            // A move past either end changes nothing, and `changeSettings` then does nothing.
            return changeSettings(field: nil, key: "order",
                                  describe: { "order " + ($0.order ?? []).map { "\($0 + 1)" }.joined(separator: " ") }) {
                $0.move(edge: e, by: d)
            }
        case .toggleRelation:
            guard let e = selectedEdge, settings.order?.contains(e) == true else { note("select a steerable relation (j/k)"); return [] }
            let off = !settings.disabled.contains(e)
            return changeSettings(field: nil, key: "relation \(e + 1)", describe: { _ in "relation \(e + 1) \(off ? "off" : "on")" }) {
                $0.setDisabled(off, edge: e)
            }
        case .scrub(let d):
            guard let r = run, let latest = r.latestStep else { return [] }
            let now = shownStep ?? latest
            let next = min(max(now + d, 0), latest)
            viewStep = next >= latest ? nil : next
        case .scrubToStart:
            if let r = run, r.latestStep != nil { viewStep = 0 }
        case .scrubToLive: viewStep = nil
        case .switchToken: token = token.other
        case .cycleLayer(let d):
            guard let stack = shownIteration?.subjectStack, !stack.layers.isEmpty else {
                note(run == nil ? "no maps yet: run a prompt" : "this engine sends only the mean map (no layers)"); return []
            }
            // nil (all layers) → 0 → … → n−1 → nil, either way round.
            let n = stack.layers.count
            let now = mapLayer.map { min($0, n - 1) + 1 } ?? 0
            let next = ((now + d) % (n + 1) + n + 1) % (n + 1)
            mapLayer = next == 0 ? nil : next - 1
            mapHead = nil
            if let l = mapLayer {
                let layer = stack.layers[l]
                note("attention: layer \(l + 1)/\(n) \(layer.name) (\(layer.resolution)×\(layer.resolution), \(layer.heads) heads)")
            } else {
                note("attention: mean of all \(n) layers")
            }
        case .cycleHead(let d):
            guard let l = mapLayer, let stack = shownIteration?.subjectStack, stack.layers.indices.contains(l) else {
                note("choose a layer first (l)"); return []
            }
            let n = stack.layers[l].heads
            let now = mapHead.map { min($0, n - 1) + 1 } ?? 0
            let next = ((now + d) % (n + 1) + n + 1) % (n + 1)
            mapHead = next == 0 ? nil : next - 1
            note(mapHead.map { "attention: layer \(l + 1) head \($0 + 1)/\(n)" } ?? "attention: layer \(l + 1), mean of its \(n) heads")
        case .cycleColormap:
            theme.colormap = theme.colormap.next
            note("heatmap colours: \(theme.colormap.rawValue)")
        case .toggleZoom: zoomImages.toggle()

        case .selectField(let d): field = Self.cycle(ScheduleField.allCases, field, d)
        case .adjustField(let d):
            let f = field
            return changeSettings(field: f) { f.adjust(&$0, by: d) }
        case .adjustGuidance(let d):
            field = .guidance
            return changeSettings(field: .guidance) { ScheduleField.guidance.adjust(&$0, by: d) }
        case .editField:
            // An empty field (the old value is drawn as a hint): typing replaces the value.
            fieldEditor.setText("")
            mode = .field(field)
        case .commitField:
            guard case .field(let f) = mode else { return [] }
            mode = .command
            if fieldEditor.text.trimmingCharacters(in: .whitespaces).isEmpty {
                note("\(f.label) unchanged (\(f.value(in: settings)))")
                return []
            }
            var s = settings
            if let error = f.set(&s, from: fieldEditor.text) { note(error); return [] }
            return changeSettings(field: f) { $0 = s }
        case .cancelField: mode = .command

        case .help:
            mode = .help
            helpScroll = 0
        case .helpScroll(let d): helpScroll = max(0, helpScroll + d)
        case .closeHelp: mode = .command
        case .quit:
            quitRequested = true
            return [.quit]
        case .testTrap: return [.trap]
        }
        return []
    }

    private mutating func editText(_ body: (inout LineEditor) -> Void) {
        switch mode {
        case .prompt: body(&prompt)
        case .field: body(&fieldEditor)
        default: break
        }
    }

    static func cycle<T: Equatable>(_ all: [T], _ current: T, _ d: Int) -> T {
        let i = all.firstIndex(of: current) ?? 0
        return all[((i + d) % all.count + all.count) % all.count]
    }

    /// Changes settings; while a run is active, publishes them (live fields are marked pending until
    /// the engine says which step applied them). `key` names the change for the pending list.
    mutating func changeSettings(field: ScheduleField?, key: String? = nil, describe: ((GenerationSettings) -> String)? = nil,
                                 _ body: (inout GenerationSettings) -> Void) -> [Effect] {
        let before = settings
        body(&settings)
        guard settings != before else { return [] }
        settingsVersion += 1
        let what = describe?(settings) ?? field.map { "\($0.label) \($0.value(in: settings))" } ?? "settings"
        let changeKey = key ?? field?.rawValue ?? "settings"
        guard let r = run, r.phase.isActive else {
            // Idle: nothing to apply it to yet, but say that it took.
            note("\(what) (next run)")
            return []
        }
        if let field, !field.isLive {
            note("\(what) applies to the next run")
        } else {
            if let field { pendingFields.insert(field) } else { orderPending = true }
            pendingChanges.removeAll { $0.key == changeKey }
            pendingChanges.append((changeKey, what))
        }
        sentSettings[settingsVersion] = settings
        return [.push(run: r.id, settings, version: settingsVersion)]
    }

    /// Parses and starts a run of `text` with the current settings (`steered` false: the unsteered
    /// half of an A/B pair, this run only).
    mutating func startRun(prompt text: String, steered: Bool = true) -> [Effect] {
        let parser = PromptParser(vocabulary: vocabulary)
        let parsed: RelationGraph
        do {
            parsed = try parser.parse(text)
        } catch {
            graph = nil
            graphNotes = []
            selectedEdge = nil
            graphError = (error as? PromptError).map(describe) ?? "\(error)"
            note("not run: " + (graphError ?? ""))
            return dropRun()
        }
        let samePrompt = graph?.prompt == text
        graph = parsed
        graphError = nil
        if !samePrompt {
            settings.order = parsed.order
            settings.disabled = []
            graphNotes = []
            if vocabulary != nil {
                for e in parsed.order {
                    let edge = parsed.edges[e]
                    let unknown = [edge.subject, edge.object].filter { parsed.objects[$0].vocabularyName == nil }
                    if let u = unknown.first {
                        settings.disabled.insert(e)
                        graphNotes.append("relation \(e + 1) off: \"\(parsed.objects[u].name)\" is not an object this model knows")
                    }
                }
            }
            // Relations that contradict each other would be steered against each other (a smeared
            // image): the first of each set stays on, the others go off (d switches one back on).
            for c in parsed.contradictions {
                let on = c.edges.filter { !settings.disabled.contains($0) }
                let keep = c.kind == .selfRelation ? nil : on.first
                for e in on where e != keep {
                    settings.disabled.insert(e)
                    graphNotes.append(keep.map { "relation \(e + 1) off: it contradicts relation \($0 + 1), which is steered (d switches it on)" }
                                      ?? "relation \(e + 1) off: it relates an object to itself")
                }
            }
            selectedEdge = parsed.order.first ?? (parsed.edges.isEmpty ? nil : 0)
        }
        if case .unavailable(let why) = engineStatus {
            note("cannot run: \(why)")
            return []
        }
        let id = nextRunID
        nextRunID += 1
        settingsVersion += 1
        appliedVersion = settingsVersion
        pendingFields = []
        orderPending = false
        pendingChanges = []
        sentSettings = [:]
        var runSettings = settings
        runSettings.prompt = text
        runSettings.steering.mode = steered ? .steer : .observe
        if let old = run, old.phase.isActive { note("run \(old.id) cancelled after \(old.steps.count) steps (replaced by run \(id))") }
        run = RunView(id: id, settings: runSettings)
        viewStep = nil
        let mode = steered ? "steered" : "unsteered"
        if settings.activeOrder.isEmpty {
            note("run \(id): seed \(settings.seed), \(settings.steps) steps, no steerable relation: sampling unsteered")
        } else {
            note("run \(id): seed \(settings.seed), \(settings.steps) steps, \(mode)")
        }
        return [.start(RunRequest(id: id, settings: runSettings, version: settingsVersion, graph: parsed))]
    }

    /// A rejected prompt: the previous run is cancelled and cleared, so no pane shows its image or
    /// maps beside "nothing was sampled".
    private mutating func dropRun() -> [Effect] {
        var effects: [Effect] = []
        if let r = run, r.phase.isActive {
            effects.append(.cancel(run: r.id))
            note("run \(r.id) cancelled (the new prompt was not run)")
        }
        run = nil
        abImages = [:]
        viewStep = nil
        pendingChanges = []
        pendingFields = []
        orderPending = false
        return effects
    }

    /// A parse error for the user, with examples this model can draw.
    func describe(_ error: PromptError) -> String {
        switch error {
        case .empty: return "The prompt is empty; describe two objects and where they are, e.g. \"\(examplePrompt)\"."
        case .noObjects: return "No objects found in the prompt; name two things, e.g. \"\(examplePrompt)\"."
        default: return error.description
        }
    }

    /// Applies one engine event.
    mutating func apply(_ event: EngineEvent) {
        switch event {
        case .status(let s):
            engineStatus = s
            switch s {
            case .ready(let m): note(m)
            case .unavailable(let m): note("model unavailable: " + m)
            case .starting: break
            }
        case .log(let line):
            note(line)
        case .fitted(let key, let image):
            if fitted.count > 300 { fitted = fitted.filter { $0.key.box == key.box } }
            fitted[key] = image
        case .parsed(let id, let g, let steerable):
            guard var r = run, r.id == id else { return }
            r.graph = g
            r.steerable = steerable
            run = r
            for e in g.order where !steerable.contains(e) && !settings.disabled.contains(e) {
                let line = "relation \(e + 1) is not steered: an object has no tokens in the model"
                if !graphNotes.contains(line) { graphNotes.append(line) }
            }
        case .iteration(let id, let rec):
            guard run?.id == id else { return }
            run!.iterations.append(rec)
            if run!.phase == .starting { run!.phase = .running }
        case .step(let id, let rec):
            guard var r = run, r.id == id else { return }
            if rec.step == r.steps.count { r.steps.append(rec) }
            else if rec.step < r.steps.count && rec.step >= 0 { r.steps[rec.step] = rec }
            if r.phase == .starting { r.phase = .running }
            run = r
            if let f = rec.fitted, let box = rec.fittedBox { apply(.fitted(FitKey(run: id, picture: .step(rec.step), box: box), f)) }
        case .applied(let id, let version, let step):
            guard run?.id == id else { return }
            appliedVersion = max(appliedVersion, version)
            // The run now samples with these settings (the schedule line and the sidecar show them).
            if let applied = sentSettings[version] {
                run!.settings = run!.settings.applyingLive(applied)
                run!.recordApplied(at: step)
            }
            sentSettings = sentSettings.filter { $0.key > version }
            if version >= settingsVersion {
                let what = pendingChanges.map(\.text)
                pendingChanges = []
                pendingFields = []
                orderPending = false
                if !what.isEmpty {
                    note("\(what.joined(separator: ", ")) applied at step \(step + 1)")
                    run!.appliedChanges.append("step \(step + 1): \(what.joined(separator: ", "))")
                }
            }
        case .paused(let id, let step):
            guard run?.id == id else { return }
            run!.phase = .paused
            run!.pausedAt = step
            note("paused before step \(step + 1)")
        case .resumed(let id):
            guard run?.id == id else { return }
            run!.phase = .running
            run!.pausedAt = nil
            run!.pauseRequested = false
            note("resumed")
        case .finished(let id, let image, let seconds):
            guard var r = run, r.id == id else { return }
            r.phase = .finished
            r.final = image
            r.seconds = seconds
            run = r
            dropPendingForEndedRun()
            abImages[r.settings.steered] = ABImage(run: r, image: image)
            note(String(format: "run %d done: %d steps in %.1f s", id, r.steps.count, seconds))
        case .cancelled(let id, let step):
            guard run?.id == id else { return }
            run!.phase = .cancelled
            note("run \(id) cancelled at step \(step + 1)")
            dropPendingForEndedRun()
        case .failed(let id, let message):
            guard run?.id == id else { return }
            run!.phase = .failed
            run!.message = message
            note("run \(id) failed: \(message)")
            dropPendingForEndedRun()
        }
    }

    /// A run ended with edits still pending: they were never applied to it, so say they wait for the next run.
    private mutating func dropPendingForEndedRun() {
        guard !pendingChanges.isEmpty else { return }
        note("\(pendingChanges.map(\.text).joined(separator: ", ")) not applied (the run ended first); applies to the next run")
        pendingChanges = []
        pendingFields = []
        orderPending = false
    }

    /// The finished image of the other steering mode for the same prompt, seed and steps, if any.
    var abCounterpart: ABImage? {
        guard let r = run, let other = abImages[!r.settings.steered] else { return nil }
        guard other.prompt == r.prompt, other.seed == r.settings.seed, other.steps == r.settings.steps else { return nil }
        return other
    }
}
