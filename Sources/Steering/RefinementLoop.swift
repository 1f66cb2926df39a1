// The Learn-to-Steer refinement policy, once: which relation is judged at each iteration, when a
// step's refinement ends, what happens to a non-finite iteration, and how the step size becomes an
// update. What "judge a relation" and "move the latent" mean is the evaluator's business: the
// Steerer's is a UNet pass plus the relation classifier (or the handcrafted loss); the Workbench's
// scripted demo engine pushes discs. Both run this loop, so the demo and the UI tests see the
// product's policy.

import Foundation

/// What the loop needs to know about one evaluation of a relation.
public protocol RelationScore {
    /// p(the asked-for relation), in [0, 1].
    var targetProbability: Float { get }
    var loss: Float { get }
    /// ‖∇z loss‖₂.
    var gradientNorm: Float { get }
    /// Number of elements of the gradient (the RMS of the normalised update is norm / √count).
    var gradientCount: Int { get }
    /// False while a named object looks absent (the step's refinement then does not end on p alone).
    var objectsPresent: Bool { get }
}

extension RelationScore {
    public var objectsPresent: Bool { true }
}

/// Judges one relation at the current latent and moves the latent; the loop decides which and when.
public protocol RelationEvaluator {
    associatedtype Evaluation: RelationScore
    /// Scores the relation of graph edge `edge` at the current latent at denoising step `step`; nil
    /// when the loss or the gradient is not finite. `needsGradient` is false when the loop will not
    /// descend along this evaluation (`.observe`): the evaluator may then skip ∇ (and report a zero
    /// gradient norm).
    mutating func evaluate(edge: Int, step: Int, needsGradient: Bool) -> Evaluation?
    /// Moves the latent by −scale · gradient of `evaluation`.
    mutating func descend(along evaluation: Evaluation, scale: Float)
}

/// One refinement iteration as the loop ran it.
public struct RefinementIteration<Evaluation> {
    public let step: Int
    /// The iteration's index within its step.
    public let iteration: Int
    /// The graph edge of the relation judged.
    public let edge: Int
    public let evaluation: Evaluation
    /// Wall time of the evaluation and the update.
    public let seconds: Double
    /// "target reached", "zero gradient" or "update skipped"; nil for an ordinary descent step.
    public let note: String?
}

/// The refinement policy. Relations take turns round-robin, and the turn counter continues across
/// steps; a step's refinement ends once every active relation has reached its target within that
/// step (or after `maxIterations`); an iteration whose loss or gradient is not finite is skipped and
/// logged; the update is the plain z −= s·∇z or the normalised z −= s·∇z / rms(∇z).
///
/// (The authors' loop restarts at the first relation each step and stops as soon as the current one
/// is satisfied; with a reachable target that leaves later relations unsteered, so this one does not.)
public struct RefinementLoop: Sendable {
    /// Largest RMS change of the latent one iteration may make (latents have RMS ≈ 1; a bigger step is
    /// skipped and logged instead of exploding the latent).
    public static let maxUpdateRMS: Float = 10

    /// The round-robin turn counter (continues across steps).
    public private(set) var turn = 0

    public init() {}

    /// Whether `schedule` evaluates anything at `step` with these active relations.
    public static func refines(_ schedule: SteeringSettings, step: Int, active: [Int]) -> Bool {
        guard schedule.mode != .off, step >= schedule.startStep, step < schedule.endStep, !active.isEmpty else { return false }
        return schedule.mode == .observe || schedule.maxIterations > 0
    }

    /// Runs step `step`'s refinement over the `active` relations (graph edge indices, in turn order), moving the
    /// evaluator's latent. `onIteration` sees every iteration that was not skipped; `onLog` gets a line
    /// for each skipped one.
    public mutating func refine<E: RelationEvaluator>(_ evaluator: inout E, step: Int, active: [Int],
                                                      schedule: SteeringSettings,
                                                      onIteration: ((RefinementIteration<E.Evaluation>) -> Void)? = nil,
                                                      onLog: ((String) -> Void)? = nil) {
        guard Self.refines(schedule, step: step, active: active) else { return }
        // `.observe` (the read-only half of an A/B pair): each active relation judged once, in turn,
        // and the latent left as it is.
        let observing = schedule.mode == .observe
        var satisfied = Set<Int>()
        for k in 0..<(observing ? active.count : schedule.maxIterations) {
            let edge = active[turn % active.count]
            turn += 1
            let start = Date()
            guard let result = evaluator.evaluate(edge: edge, step: step, needsGradient: !observing) else {
                onLog?("step \(step) iteration \(k): non-finite loss or gradient, iteration skipped")
                continue
            }
            let note = observing ? nil : respond(to: result, edge: edge, step: step, iteration: k, schedule: schedule,
                                                  evaluator: &evaluator, satisfied: &satisfied, onLog: onLog)
            onIteration?(RefinementIteration(step: step, iteration: k, edge: edge, evaluation: result,
                                             seconds: Date().timeIntervalSince(start), note: note))
            if !observing && satisfied.isSuperset(of: active) { break }
        }
    }

    /// A steering iteration's answer to one evaluation: a relation that reached its target counts as
    /// satisfied; otherwise the latent descends (unless the update would be zero or explode). Returns
    /// the iteration's note.
    private func respond<E: RelationEvaluator>(to result: E.Evaluation, edge: Int, step: Int, iteration k: Int,
                                               schedule: SteeringSettings, evaluator: inout E, satisfied: inout Set<Int>,
                                               onLog: ((String) -> Void)?) -> String? {
        let reached = (result.targetProbability >= schedule.probabilityTarget || result.loss <= schedule.lossTarget)
            && result.objectsPresent
        if reached {
            satisfied.insert(edge)
            return "target reached"
        }
        satisfied.remove(edge)
        let s = schedule.stepSize(at: step)
        // The update's RMS: s for the normalised rule, s·rms(∇z) for the plain one.
        let rms = result.gradientNorm / Float(max(result.gradientCount, 1)).squareRoot()
        let updateRMS = schedule.update == .normalized ? s : s * rms
        if rms == 0 { return "zero gradient" }
        guard updateRMS <= Self.maxUpdateRMS else {
            // A finite but huge step pushes the latent far outside anything the UNet has seen (then to
            // Inf/NaN and a black image): skip it, as for a non-finite gradient.
            onLog?("step \(step) iteration \(k): update RMS \(updateRMS) > \(Self.maxUpdateRMS) would explode the latent, iteration skipped")
            return "update skipped"
        }
        switch schedule.update {
        case .normalized: evaluator.descend(along: result, scale: s / rms)
        case .plain: evaluator.descend(along: result, scale: s)
        }
        return nil
    }
}
