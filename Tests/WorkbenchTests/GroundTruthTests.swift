// Ground truth in the loop: the detector's reading of x̂₀ rides in the step record, survives the
// trace and replay, and the classifier pane shows a fooled classifier (p high, an object missing).

import Foundation
import Relations
import Testing
import Steering
import ToyWorld
@testable import Workbench

/// The chain prompt: "no green triangle in 3 of 4 seeds while both relations read p 0.99".
let chain = "a green triangle above a yellow star and a cyan bar to the right of the green triangle"

@Suite struct GroundTruthTests {
    /// x̂₀ with a yellow star and two cyan bars and no green triangle, read against `graph`.
    static func reading(for graph: RelationGraph) throws -> DetectorReading {
        let star = Catalogue.named("yellow star")!, bar = Catalogue.named("cyan bar")!
        let scene = Scene(size: 32, objects: [SceneObjectPlacement(objectClass: star, centre: SIMD2(9, 22), size: 9),
                                              SceneObjectPlacement(objectClass: bar, centre: SIMD2(24, 8), size: 9),
                                              SceneObjectPlacement(objectClass: bar, centre: SIMD2(24, 24), size: 7)])
        let request = try #require(DetectorReading.Request(graph: graph))
        return DetectorReading.read(image: SceneRenderer().render(scene), size: 32, asked: request)
    }

    /// The scripted run of `chain` to `steps` steps, the newest step's record re-posted with the reading
    /// (as the live engine posts it) and the classifier's newest reading of each relation set to p 0.99.
    static func fooled(steps: Int, tier: ColorTier = .palette256, ascii: Bool = false) throws -> ViewState {
        var s = Fixture.running(chain, steps: steps, tier: tier, ascii: ascii, vocabulary: Fixture.toyVocabulary)
        let run = try #require(s.run)
        var rec = try #require(run.steps.last)
        rec.detector = try reading(for: try #require(run.graph))
        s.apply(.step(run: run.id, rec))
        for e in 0..<2 {
            let k = try #require(s.run!.iterations.lastIndex { $0.edge == e })
            var it = s.run!.iterations[k]
            let target = try #require(run.graph?.edges[e].relation?.classIndex)
            let others = it.probabilities.indices.filter { $0 != target }.reduce(Float(0)) { $0 + it.probabilities[$1] }
            it.probabilities = it.probabilities.indices.map { $0 == target ? 0.99 : (others > 0 ? it.probabilities[$0] * 0.01 / others : 0) }
            it.targetProbability = 0.99
            s.run!.iterations[k] = it
        }
        return s
    }

    @Test func theReadingNamesTheMissingAndDuplicatedObjects() throws {
        let s = try Self.fooled(steps: 12)
        let r = try #require(s.run?.steps.last?.detector, "the reducer keeps the step's reading")
        #expect(r.object("green triangle")?.status == .missing)
        #expect(r.object("yellow star")?.status == .found)
        #expect(r.object("cyan bar")?.status == .duplicated && r.object("cyan bar")?.count == 2)
        #expect(r.relations.map(\.holds) == [nil, nil], "both relations involve the missing triangle")
        #expect(r.fools(edge: 0, probability: 0.99) && r.fools(edge: 1, probability: 0.99))
    }

    @Test func theClassifierPaneShowsAFooledClassifier() throws {
        let s = try Self.fooled(steps: 12)
        let full = Fixture.pane(Size(width: 96, height: 18)) { Widgets.classifier(s, in: $1, grid: &$0) }
        assertGolden("pane-classifier-fooled", full.plainText())
        let text = full.plainText()
        #expect(text.contains("green triangle missing") && text.contains("fooled"))
        let compact = Fixture.pane(Size(width: 60, height: 10)) { Widgets.classifier(s, in: $1, grid: &$0) }
        assertGolden("pane-classifier-fooled-compact", compact.plainText())
        // Short panes keep the relation rows (with their verdicts) before the objects line.
        let short = Fixture.pane(Size(width: 60, height: 5)) { Widgets.classifier(s, in: $1, grid: &$0) }
        assertGolden("pane-classifier-fooled-short", short.plainText())
        #expect(short.plainText().components(separatedBy: "fooled").count == 3, "both relations say fooled")
        let a = try Self.fooled(steps: 12, tier: .none, ascii: true)
        assertGolden("pane-classifier-fooled-ascii",
                     Fixture.pane(Size(width: 60, height: 10), { Widgets.classifier(a, in: $1, grid: &$0) }, ascii: true).plainText())
    }

    @Test func anEngineWithoutADetectorShowsNoReading() {
        // The scripted engine (like Stable Diffusion) has no detector: no reading, nothing drawn.
        let s = Fixture.running(chain, steps: 12, vocabulary: Fixture.toyVocabulary)
        #expect(s.run?.steps.allSatisfy { $0.detector == nil } == true)
        let text = Fixture.pane(Size(width: 96, height: 18)) { Widgets.classifier(s, in: $1, grid: &$0) }.plainText()
        #expect(!text.contains("detector") && !text.contains("fooled"))
    }

    @Test func theReadingSurvivesTheTraceAndReplay() throws {
        let s = try Self.fooled(steps: 12)
        let path = NSTemporaryDirectory() + "l2s-groundtruth-\(getpid())-\(UUID().uuidString).trace.json"
        defer { unlink(path) }
        try RunTrace.json(s.run!, graph: s.graph).write(to: URL(fileURLWithPath: path))
        let rec = try RunTrace.load(path: path)
        #expect(rec.steps.last?.detector == s.run!.steps.last?.detector && rec.steps.last?.detector != nil)
        #expect(rec.steps.dropLast().allSatisfy { $0.detector == nil })
        let request = RunRequest(id: 3, settings: rec.settings, version: 1)
        let replayed = ReplayEngine.events(of: rec, for: request).compactMap { e -> StepRecord? in
            if case .step(_, let r) = e { return r }
            return nil
        }
        #expect(replayed.last?.detector == rec.steps.last?.detector)
    }
}
