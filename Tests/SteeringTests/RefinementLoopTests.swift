import Testing
@testable import Steering

/// A fake evaluator: relation r's probability is `base[r] + rise · (descents of r)`; it records every
/// call, and returns nil (non-finite) on the calls listed in `nonFiniteCalls`.
struct FakeEvaluator: RelationEvaluator {
    struct Score: RelationScore {
        let target: Int, targetProbability: Float, gradientNorm: Float, gradientCount: Int
        var objectsPresent = true
        var loss: Float { 1 - min(targetProbability, 1) }
    }
    /// Calls (0-based) on which an object looks absent.
    var absentCalls: Set<Int> = []
    var base: [Float]
    var rise: Float = 0
    var gradientNorm: Float = 2
    var gradientCount = 4
    var nonFiniteCalls: Set<Int> = []
    private(set) var judged: [Int] = []
    /// `needsGradient` of every call.
    private(set) var gradientAsked: [Bool] = []
    private(set) var descents: [(target: Int, scale: Float)] = []

    init(base: [Float], rise: Float = 0) { self.base = base; self.rise = rise }

    mutating func evaluate(edge target: Int, step: Int, needsGradient: Bool) -> Score? {
        judged.append(target)
        gradientAsked.append(needsGradient)
        if nonFiniteCalls.contains(judged.count - 1) { return nil }
        let p = base[target] + rise * Float(descents.filter { $0.target == target }.count)
        return Score(target: target, targetProbability: p, gradientNorm: gradientNorm, gradientCount: gradientCount,
                     objectsPresent: !absentCalls.contains(judged.count - 1))
    }

    mutating func descend(along evaluation: Score, scale: Float) { descents.append((evaluation.target, scale)) }
}

func schedule(iterations: Int, pTarget: Float = 0.9, update: SteeringUpdate = .plain, stepSize: Float = 0.5) -> SteeringSettings {
    var s = SteeringSettings()
    s.startStep = 0; s.endStep = 10; s.maxIterations = iterations
    s.probabilityTarget = pTarget; s.lossTarget = -1; s.update = update; s.stepSizes = [stepSize]
    return s
}

@Suite struct RefinementLoopTests {
    /// `.observe` (the unsteered half of an A/B pair): each active relation is judged once per step,
    /// in turn, the latent never moves, and nothing counts as reached; outside the range nothing runs.
    @Test func observeJudgesEachRelationOnceAndNeverDescends() {
        var loop = RefinementLoop()
        var e = FakeEvaluator(base: [0.1, 0.95, 0.1])
        var s = schedule(iterations: 5)
        s.mode = .observe
        s.endStep = 2
        var notes: [String?] = []
        for step in 0..<4 { loop.refine(&e, step: step, active: [2, 0, 1], schedule: s, onIteration: { notes.append($0.note) }) }
        #expect(e.judged == [2, 0, 1, 2, 0, 1])
        #expect(e.descents.isEmpty && notes.allSatisfy { $0 == nil })
        #expect(loop.turn == 6)
        #expect(e.gradientAsked == Array(repeating: false, count: 6), "observing never asks for ∇")
        var steered = FakeEvaluator(base: [0.1])
        loop.refine(&steered, step: 0, active: [0], schedule: schedule(iterations: 2))
        #expect(steered.gradientAsked == [true, true])
    }

    @Test func theTurnIsKeptAcrossSteps() {
        var loop = RefinementLoop()
        var e = FakeEvaluator(base: [0.1, 0.1, 0.1])
        let s = schedule(iterations: 2)
        for step in 0..<3 { loop.refine(&e, step: step, active: [0, 1, 2], schedule: s) }
        // Step 1 starts where step 0 stopped (not again at relation 0).
        #expect(e.judged == [0, 1, 2, 0, 1, 2])
        #expect(loop.turn == 6)
    }

    /// p ≥ target does not end a step while an object looks absent: the loop keeps descending.
    @Test func aReachedRelationWithAnAbsentObjectIsRefinedFurther() {
        var loop = RefinementLoop()
        var e = FakeEvaluator(base: [0.95])
        e.absentCalls = [0, 1]
        var notes: [String?] = []
        loop.refine(&e, step: 0, active: [0], schedule: schedule(iterations: 5), onIteration: { notes.append($0.note) })
        #expect(e.judged == [0, 0, 0])
        #expect(e.descents.count == 2)
        #expect(notes == [nil, nil, "target reached"])
    }

    @Test func aStepEndsOnlyWhenEveryRelationIsSatisfied() {
        var loop = RefinementLoop()
        // Relation 5 is satisfied from the start; relation 7 after two descents.
        var e = FakeEvaluator(base: [0, 0, 0, 0, 0, 0.95, 0, 0.5], rise: 0.25)
        var notes: [String?] = []
        loop.refine(&e, step: 0, active: [5, 7], schedule: schedule(iterations: 20), onIteration: { notes.append($0.note) })
        // The first satisfied relation does not end the step; it ends once 7 is satisfied too.
        #expect(e.judged == [5, 7, 5, 7, 5, 7])
        #expect(e.descents.map(\.target) == [7, 7])
        #expect(notes == ["target reached", nil, "target reached", nil, "target reached", "target reached"])
    }

    @Test func satisfactionCountsWithinOneStepOnly() {
        var loop = RefinementLoop()
        var e = FakeEvaluator(base: [0.95, 0.1], rise: 0.9)   // relation 1 is satisfied after one descent
        let s = schedule(iterations: 3)
        loop.refine(&e, step: 0, active: [0, 1], schedule: s)   // 0 ✓, 1 ✗ (descends), 0 ✓
        loop.refine(&e, step: 1, active: [0, 1], schedule: s)   // 1 ✓, then 0 must be satisfied again in this step
        #expect(e.judged == [0, 1, 0, 1, 0])
        #expect(e.descents.map(\.target) == [1])
    }

    @Test func aNonFiniteIterationIsSkippedAndLogged() {
        var loop = RefinementLoop()
        var e = FakeEvaluator(base: [0.1, 0.1])
        e.nonFiniteCalls = [1]
        var logs: [String] = []
        var seen: [Int] = []
        loop.refine(&e, step: 4, active: [0, 1], schedule: schedule(iterations: 4),
                    onIteration: { seen.append($0.iteration) }, onLog: { logs.append($0) })
        #expect(e.judged == [0, 1, 0, 1])
        #expect(seen == [0, 2, 3])                 // iteration 1 reported nowhere but the log
        #expect(e.descents.map(\.target) == [0, 0, 1])
        #expect(logs == ["step 4 iteration 1: non-finite loss or gradient, iteration skipped"])
    }

    @Test func theUpdateRuleSetsTheScale() {
        var loop = RefinementLoop()
        var plain = FakeEvaluator(base: [0.1])
        loop.refine(&plain, step: 0, active: [0], schedule: schedule(iterations: 1, update: .plain, stepSize: 0.5))
        #expect(plain.descents.map(\.scale) == [0.5])
        var normalized = FakeEvaluator(base: [0.1])   // ‖g‖ = 4 over 4 elements: rms 2, scale s / rms
        normalized.gradientNorm = 4
        loop.refine(&normalized, step: 0, active: [0], schedule: schedule(iterations: 1, update: .normalized, stepSize: 0.5))
        #expect(normalized.descents.map(\.scale) == [0.25])
        var flat = FakeEvaluator(base: [0.1])
        flat.gradientNorm = 0
        var notes: [String?] = []
        loop.refine(&flat, step: 0, active: [0], schedule: schedule(iterations: 1, update: .normalized),
                    onIteration: { notes.append($0.note) })
        #expect(flat.descents.isEmpty && notes == ["zero gradient"])
    }

    @Test func stepsOutsideTheRangeOrWithNothingActiveAreNotRefined() {
        var loop = RefinementLoop()
        var e = FakeEvaluator(base: [0.1])
        var s = schedule(iterations: 3)
        s.startStep = 2; s.endStep = 4
        for step in [0, 1, 4, 9] { loop.refine(&e, step: step, active: [0], schedule: s) }
        loop.refine(&e, step: 2, active: [], schedule: s)
        s.mode = .off
        loop.refine(&e, step: 3, active: [0], schedule: s)
        #expect(e.judged.isEmpty && loop.turn == 0)
    }
}
