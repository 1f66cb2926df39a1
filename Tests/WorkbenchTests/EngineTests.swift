// The engines on their threads: event order, pause at a step boundary, live settings echoed with the
// step that applied them, cancel, shutdown; LiveEngine over a randomly initialised toy model and with
// missing weights.

import Foundation
import Relations
import ToyBench
import Imaging
import Testing
import Steering
import Diffusion
import ToyWorld
@testable import Workbench

/// Collects engine events from any thread and lets a test wait for one.
final class EventLog: @unchecked Sendable {
    private let condition = NSCondition()
    private(set) var events: [EngineEvent] = []

    func post(_ e: EngineEvent) {
        condition.lock(); events.append(e); condition.broadcast(); condition.unlock()
    }

    var snapshot: [EngineEvent] { condition.lock(); defer { condition.unlock() }; return events }

    /// Waits until `predicate` holds for some event (generous timeouts: the machine may be loaded).
    @discardableResult
    func wait(timeout: Double = 60, _ predicate: (EngineEvent) -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock(); defer { condition.unlock() }
        while !events.contains(where: predicate) {
            if !condition.wait(until: deadline) { return events.contains(where: predicate) }
        }
        return true
    }
}

func isFinished(_ e: EngineEvent) -> Bool { if case .finished = e { return true }; return false }
func isCancelled(_ e: EngineEvent) -> Bool { if case .cancelled = e { return true }; return false }
func stepNumber(_ e: EngineEvent) -> Int? { if case .step(_, let r) = e { return r.step }; return nil }

@Suite(.serialized) struct ScriptedEngineTests {
    func request(_ engine: ScriptedEngine, steps: Int, prompt: String = "a dog to the right of a teddy bear") -> RunRequest {
        var s = engine.defaults
        s.steps = steps
        let g = try! PromptParser().parse(prompt)
        s.order = g.order
        s.prompt = prompt
        return RunRequest(id: 1, settings: s, version: 1)
    }

    @Test func aRunReportsInOrderAndFinishes() {
        let engine = ScriptedEngine(stepDelay: 0.002, startDelay: 0)
        let log = EventLog()
        engine.start { log.post($0) }
        #expect(log.wait { if case .status(.ready) = $0 { return true }; return false })
        let req = request(engine, steps: 30)
        let control = RunControl(runID: 1, settings: req.settings, version: 1, previewBox: PixelBox(width: 20, height: 20))
        engine.submit(req, control: control)
        #expect(log.wait(isFinished))
        let events = log.snapshot
        let steps = events.compactMap(stepNumber)
        #expect(steps == Array(0..<30))
        let firstRun = events.firstIndex { if case .parsed = $0 { return true }; return false }
        let firstStep = events.firstIndex { stepNumber($0) != nil }
        #expect(firstRun != nil && firstStep != nil && firstRun! < firstStep!)
        let iterationSteps = events.compactMap { e -> Int? in if case .iteration(_, let it) = e { return it.step }; return nil }
        #expect(!iterationSteps.isEmpty && iterationSteps.allSatisfy { $0 < 25 }, "iterations only inside the steering range")
        if case .step(_, let rec)? = events.first(where: { stepNumber($0) != nil }) {
            #expect(rec.fitted?.width == 20 && rec.fittedBox == PixelBox(width: 20, height: 20), "fitted on the engine thread")
        }
        #expect(engine.shutdown(timeout: 5))
    }

    @Test func pauseLiveSettingsAndCancel() {
        let engine = ScriptedEngine(stepDelay: 0.01, startDelay: 0)
        let log = EventLog()
        engine.start { log.post($0) }
        let req = request(engine, steps: 400)
        let control = RunControl(runID: 1, settings: req.settings, version: 1)
        engine.submit(req, control: control)
        #expect(log.wait { stepNumber($0) == 3 })
        control.setPaused(true)
        var pausedAt = -1
        #expect(log.wait { if case .paused(_, let s) = $0 { pausedAt = s; return true }; return false })
        let countAtPause = log.snapshot.compactMap(stepNumber).count
        Thread.sleep(forTimeInterval: 0.15)
        #expect(log.snapshot.compactMap(stepNumber).count == countAtPause, "no steps while paused")
        #expect(countAtPause == pausedAt, "paused at the boundary before the next step")
        var s = req.settings
        s.guidance = 6
        control.update(s, version: 2)
        control.setPaused(false)
        var appliedAt = -1
        #expect(log.wait { if case .applied(_, 2, let st) = $0 { appliedAt = st; return true }; return false })
        #expect(appliedAt == pausedAt, "applied at the first boundary after the change")
        #expect(log.wait { stepNumber($0) == pausedAt + 2 })
        control.cancel()
        #expect(log.wait(isCancelled))
        #expect(!log.snapshot.contains(where: isFinished))
        #expect(engine.shutdown(timeout: 5))
    }

    @Test func aNewRunCancelsTheOldOne() {
        let engine = ScriptedEngine(stepDelay: 0.01, startDelay: 0)
        let log = EventLog()
        engine.start { log.post($0) }
        let first = request(engine, steps: 500)
        let c1 = RunControl(runID: 1, settings: first.settings, version: 1)
        engine.submit(first, control: c1)
        #expect(log.wait { stepNumber($0) == 2 })
        var second = request(engine, steps: 5)
        second.id = 2
        engine.submit(second, control: RunControl(runID: 2, settings: second.settings, version: 1))
        #expect(log.wait { if case .finished(2, _, _) = $0 { return true }; return false })
        #expect(c1.isCancelled && log.snapshot.contains { if case .cancelled(1, _) = $0 { return true }; return false })
        #expect(engine.shutdown(timeout: 5))
    }

    @Test func scriptedRunIsDeterministicAndSteeringHelps() {
        let g = try! PromptParser().parse("a dog to the right of a teddy bear")
        var s = ScriptedEngine(stepDelay: 0).defaults
        s.order = g.order
        func finalP(_ steered: Bool) -> Float {
            var t = s
            t.steering.mode = steered ? .steer : .observe
            var run = ScriptedRun(prompt: g.prompt, graph: g, settings: t)
            var last: Float = 0
            for k in 0..<t.steps { if let it = run.step(k).iterations.last { last = it.targetProbability } }
            return last
        }
        #expect(finalP(true) == finalP(true))
        #expect(finalP(true) > 0.9)
        #expect(finalP(true) > finalP(false))
    }

    /// The scripted run uses the product's refinement policy: the turn runs on across steps and a
    /// step's refinement ends only once every relation is satisfied, so the second relation is steered
    /// too (the old scripted rule restarted at relation 1 each step and stopped at its first success).
    @Test func scriptedRunSteersEveryRelationByTheProductsPolicy() {
        let g = try! PromptParser().parse("a dog to the right of a teddy bear and a cat above the dog")
        var s = ScriptedEngine(stepDelay: 0).defaults
        s.order = g.order
        let order = g.order
        #expect(order.count == 2)
        var run = ScriptedRun(prompt: g.prompt, graph: g, settings: s)
        var judged: [[Int]] = []
        var finalP: [Int: Float] = [:]
        for k in 0..<s.steps {
            let its = run.step(k).iterations
            judged.append(its.map(\.edge))
            for it in its { finalP[it.edge] = it.targetProbability }
            if let last = its.last, its.count < s.steering.maxIterations {
                // A step that ended early ended with every relation satisfied in that step.
                #expect(Set(its.filter { $0.note == "target reached" }.map(\.edge)) == Set(order), "step \(k)")
                #expect(last.note == "target reached")
            }
        }
        // The turn continues: each step starts with the relation after the last one judged.
        for k in 1..<judged.count where !judged[k].isEmpty && !judged[k - 1].isEmpty {
            let last = judged[k - 1].last!
            #expect(judged[k].first == order[(order.firstIndex(of: last)! + 1) % order.count], "step \(k)")
        }
        #expect(order.allSatisfy { (finalP[$0] ?? 0) > 0.9 })
    }
}

@Suite(.serialized) struct LiveEngineTests {
    @Test func missingWeightsAreAStatusNotACrash() {
        guard AssetLocator.toyDirectory(override: "/nonexistent-l2s-assets") == nil else { return }  // weights present: nothing to test
        let engine = LiveEngine(.embedded(assets: "/nonexistent-l2s-assets"))
        let log = EventLog()
        engine.start { log.post($0) }
        var message = ""
        #expect(log.wait { if case .status(.unavailable(let m)) = $0 { message = m; return true }; return false })
        #expect(message.contains("weights were not found") && message.contains("--demo"))
        var settings = engine.defaults
        settings.prompt = "a red circle left of a blue square"
        engine.submit(RunRequest(id: 1, settings: settings, version: 1),
                      control: RunControl(runID: 1, settings: engine.defaults, version: 1))
        #expect(log.wait { if case .failed(1, _) = $0 { return true }; return false })
        #expect(engine.shutdown(timeout: 5))
    }

    /// The real sampler path on a randomly initialised toy model: events, live settings, pause, cancel.
    @Test func steeredGeneratorDrivesTheUI() throws {
        let model = try ToyModel(config: .small, seed: 3)
        let vocab = ObjectVocabulary(Catalogue.classes.map(\.name))
        let generator = SteeredGenerator(model: model, classifier: nil, vocabulary: vocab)
        var s = LiveEngine(.embedded(assets: nil)).defaults
        s.steps = 4
        s.steering.startStep = 0
        s.steering.endStep = 2
        s.steering.maxIterations = 1
        let prompt = "a red circle to the left of a blue square"
        s.order = try PromptParser(vocabulary: vocab).parse(prompt).order
        s.prompt = prompt
        let control = RunControl(runID: 7, settings: s, version: 1, previewBox: PixelBox(width: 16, height: 16))
        var changed = s
        changed.guidance = 2
        control.update(changed, version: 2)   // applied at the first boundary
        let log = EventLog()
        LiveEngine.run(RunRequest(id: 7, settings: s, version: 1), control: control,
                       generator: generator, sink: { log.post($0) })
        let events = log.snapshot
        #expect(events.contains { if case .parsed(7, let g, let steerable) = $0 { return g.edges.count == 1 && steerable == [0] }; return false })
        #expect(events.contains { if case .applied(7, 2, 0) = $0 { return true }; return false })
        #expect(events.compactMap(stepNumber) == [0, 1, 2, 3])
        let its = events.compactMap { e -> IterationRecord? in if case .iteration(_, let it) = e { return it }; return nil }
        #expect(its.count == 2 && its.allSatisfy { $0.edge == 0 && $0.probabilities.count == 5 && $0.subjectMap.count == 256 })
        guard case .finished(7, let image, _)? = events.last else { Issue.record("no finish: \(events.last.map { "\($0)" } ?? "none")"); return }
        #expect(image.width == 32 && image.height == 32)
        if case .step(_, let rec)? = events.first(where: { stepNumber($0) != nil }) {
            #expect(rec.preview.width == 32 && rec.fitted?.width == 16)
        }
        // The toy model's steps carry the detector's reading of x̂₀ against the prompt.
        let readings = events.compactMap { e -> DetectorReading? in if case .step(_, let rec) = e { return rec.detector }; return nil }
        #expect(readings.count == 4)
        #expect(readings.allSatisfy { $0.objects.map(\.name) == ["red circle", "blue square"] && $0.relations.map(\.edge) == [0]
                                        && $0.relations[0].relation == .leftOf })
        // Cancelled before it starts: reported as cancelled.
        let c2 = RunControl(runID: 8, settings: s, version: 1)
        c2.cancel()
        let log2 = EventLog()
        LiveEngine.run(RunRequest(id: 8, settings: s, version: 1), control: c2, generator: generator, sink: { log2.post($0) })
        #expect(log2.snapshot.contains(where: isCancelled))
    }
}

@Suite struct SidecarTests {
    @Test func sidecarRecordsPromptSeedScheduleAndSteps() throws {
        var s = Fixture.running(twoRelations, steps: 50)
        s.apply(.applied(run: 1, version: 99, step: 3))
        let car = try #require(Sidecar.make(s, imageFile: "x.png"))
        #expect(car.prompt == twoRelations && car.seed == 1234 && car.steps == 50 && !car.partial)
        #expect(car.relations.map(\.relation) == ["to the right of", "above"])
        #expect(car.perStep.count == 50 && car.perStep[0].relations.first?.probabilities.count == 5)
        #expect(car.perStep[30].relations.isEmpty, "no evaluations outside the steering range")
        let dir = NSTemporaryDirectory() + "l2s-sidecar-\(getpid())"
        let png = try Sidecar.save(run: s.run!, state: s, directory: dir, base: "t")
        let back = try readPNG(path: png)
        #expect(back.width == 256 && back.height == 256, "a 32×32 image is saved ×8 by default")
        let json = try JSONDecoder().decode(Sidecar.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/t.json")))
        #expect(json == car.with(image: "t.png", upscale: 8, mapStrips: ["t-maps-rel1.png", "t-maps-rel2.png"], trace: "t.trace.json"))
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Settings changed after a run (for the next one) do not leak into the run's sidecar: every
    /// field comes from the settings the run sampled with (the review saw guidance and order taken
    /// from the UI's current settings beside the run's seed and schedule).
    @Test func sidecarKeepsTheRunsSettingsWhenTheUIChangesThemAfterwards() throws {
        var s = Fixture.running(twoRelations, steps: 50)
        let ran = try #require(s.run?.settings)
        _ = s.apply(.adjustGuidance(1))
        _ = s.apply(.adjustGuidance(1))
        _ = s.apply(.moveRelation(1))
        _ = s.apply(.toggleRelation)
        #expect(s.settings.guidance != ran.guidance && s.settings.order != ran.order && s.settings.disabled != ran.disabled,
                "the UI's settings did change")
        let car = try #require(Sidecar.make(s, imageFile: "x.png"))
        #expect(car.guidance == ran.guidance && car.seed == ran.seed && car.steps == ran.steps)
        #expect(car.order == ran.order && car.disabled == ran.disabled.sorted())
        #expect(car.schedule == ran.steering && car.relations.allSatisfy(\.enabled))
    }
}

extension Sidecar {
    func with(image: String, upscale: Int? = nil, mapStrips: [String]? = nil, trace: String? = nil) -> Sidecar {
        var c = self
        c.image = image; c.upscale = upscale; c.mapStrips = mapStrips; c.trace = trace
        return c
    }
}
