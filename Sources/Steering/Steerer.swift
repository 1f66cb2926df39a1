import Foundation
import Formats
import Relations
import Tensors
import Diffusion

/// How a refinement iteration moves the latent.
public enum SteeringUpdate: String, Codable, Sendable, CaseIterable {
    /// The paper's plain gradient step: z −= s·∇z.
    case plain
    /// A normalised step: z −= s·∇z / rms(∇z), so the update's RMS is s (robust across steps/models).
    case normalized
}

/// Which loss judges the arrangement.
public enum SteeringLoss: String, Codable, Sendable, CaseIterable {
    /// Cross-entropy of the learned relation classifier (the paper).
    case learned
    /// A hand-made baseline: hinge on the difference of the two maps' centroids along the relation's axis.
    case handcrafted
    /// Presence only: the hinge of `SteeringSettings.presenceFloor` over each object's attention peak
    /// (Attend-and-Excite style), no relation term — the ablation beside relation-only and both.
    case presence
}

/// What a run does with its relations: steer them, only read the classifier along (the unsteered
/// half of an A/B pair: one evaluation per relation and step, the latent never moves), or nothing.
public enum SteeringMode: String, Codable, Sendable, CaseIterable {
    case steer
    case observe
    case off
}

/// The steering part of the settings: one value, editable between steps.
public struct SteeringSettings: Codable, Equatable, Sendable {
    public var mode: SteeringMode = .steer
    /// Steps [startStep, endStep) are steered (default: the first half of a 50-step run; see `defaultEnd`).
    public var startStep: Int = 0
    public var endStep: Int = 25
    /// Step size per step (the last value repeats); with `.normalized` it is the update RMS.
    public var stepSizes: [Float] = [0.1]
    public var update: SteeringUpdate = .normalized
    /// Refinement iterations per steered step (the paper: 16).
    public var maxIterations: Int = 3
    /// Stop a step's refinement once p(target) reaches this (1 disables).
    public var probabilityTarget: Float = 0.9
    /// Stop once the loss is at or below this (the paper: 1e-5 … 7e-5 by step).
    public var lossTarget: Float = 0
    public var loss: SteeringLoss = .learned
    /// Margin of the handcrafted loss, as a fraction of the map width.
    public var handcraftedMargin: Float = 0.1
    /// Weight of the object-presence term added to the relation loss: w · Σ relu(floor − peak) over
    /// subject and object (`AttentionMaps.peak`). With w > 0 (or the presence loss) a step's
    /// refinement also does not end while an object's peak is below the floor. 0 = relation only.
    public var presenceWeight: Float = 0
    /// Attention peak below which an object counts as absent.
    public var presenceFloor: Float = 0.3

    public init() {}

    /// The default end of the steered range for a run of `steps` steps: its first half (rounded up),
    /// the paper's 25 of 50 — the early steps, where the layout forms.
    public static func defaultEnd(steps: Int) -> Int { (max(steps, 0) + 1) / 2 }

    /// Whether the presence term is in the loss and the stop rule.
    public var steersPresence: Bool { loss == .presence || presenceWeight > 0 }

    enum CodingKeys: String, CodingKey {
        case mode, startStep, endStep, stepSizes, update, maxIterations, probabilityTarget, lossTarget, loss
        case handcraftedMargin, presenceWeight, presenceFloor
    }
    /// Before `mode` existed: steering on or off.
    private enum LegacyKeys: String, CodingKey { case enabled }

    /// Reads schedules written before a field existed (a trace from an older version) with that
    /// field's default.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SteeringSettings()
        if let m = try c.decodeIfPresent(SteeringMode.self, forKey: .mode) {
            mode = m
        } else {
            let enabled = try decoder.container(keyedBy: LegacyKeys.self).decodeIfPresent(Bool.self, forKey: .enabled)
            mode = enabled == false ? .off : d.mode
        }
        startStep = try c.decodeIfPresent(Int.self, forKey: .startStep) ?? d.startStep
        endStep = try c.decodeIfPresent(Int.self, forKey: .endStep) ?? d.endStep
        stepSizes = try c.decodeIfPresent([Float].self, forKey: .stepSizes) ?? d.stepSizes
        update = try c.decodeIfPresent(SteeringUpdate.self, forKey: .update) ?? d.update
        maxIterations = try c.decodeIfPresent(Int.self, forKey: .maxIterations) ?? d.maxIterations
        probabilityTarget = try c.decodeIfPresent(Float.self, forKey: .probabilityTarget) ?? d.probabilityTarget
        lossTarget = try c.decodeIfPresent(Float.self, forKey: .lossTarget) ?? d.lossTarget
        loss = try c.decodeIfPresent(SteeringLoss.self, forKey: .loss) ?? d.loss
        handcraftedMargin = try c.decodeIfPresent(Float.self, forKey: .handcraftedMargin) ?? d.handcraftedMargin
        presenceWeight = try c.decodeIfPresent(Float.self, forKey: .presenceWeight) ?? d.presenceWeight
        presenceFloor = try c.decodeIfPresent(Float.self, forKey: .presenceFloor) ?? d.presenceFloor
    }

    /// The paper's settings: steps [0, 25) of 50, plain step 5 (7.5 for SD1.4), 16 iterations, near-zero loss targets.
    public static var paper: SteeringSettings {
        var s = SteeringSettings()
        s.startStep = 0; s.endStep = 25; s.stepSizes = [5]; s.update = .plain; s.maxIterations = 16
        s.probabilityTarget = 1; s.lossTarget = 7e-5
        return s
    }

    // Accepted values (the CLI, the TUI and `validationError` share them).
    public static let presenceWeightRange: ClosedRange<Float> = 0...100
    public static let presenceFloorRange: ClosedRange<Float> = 0...1
    public static let iterationRange: ClosedRange<Int> = 0...100
    public static let probabilityTargetRange: ClosedRange<Float> = 0...1
    public static let lossTargetRange: ClosedRange<Float> = 0...1000
    /// Steered steps lie in 0…`maxStep` (the most steps a run can have, `SamplerSettings.stepRange`).
    public static let maxStep = SamplerSettings.stepRange.upperBound

    /// Largest step sizes accepted: the update RMS (latent units) for `.normalized`, s for `.plain`.
    public static let maxNormalizedStep: Float = 10
    public static let maxPlainStep: Float = 100

    public func stepSize(at step: Int) -> Float { stepSizes.isEmpty ? 0 : stepSizes[min(max(step - startStep, 0), stepSizes.count - 1)] }

    /// The largest step size this schedule's update rule accepts (CLI, TUI and library share it).
    public var maxStepSize: Float { update == .normalized ? SteeringSettings.maxNormalizedStep : SteeringSettings.maxPlainStep }

    public func validationError() -> String? {
        if startStep < 0 || endStep < startStep { return "steering range must satisfy 0 ≤ start ≤ end" }
        if !Self.iterationRange.contains(maxIterations) { return "iterations must be in \(Self.iterationRange.spelled)" }
        if !Self.probabilityTargetRange.contains(probabilityTarget) { return "p target must be in \(Self.probabilityTargetRange.spelled)" }
        if !Self.lossTargetRange.contains(lossTarget) { return "loss target must be a number in 0…\(Int(Self.lossTargetRange.upperBound))" }
        let limit = maxStepSize
        if stepSizes.contains(where: { !$0.isFinite || $0 < 0 || $0 > limit }) { return "step sizes must be in 0…\(Int(limit)) for the \(update.rawValue) update" }
        if !Self.presenceWeightRange.contains(presenceWeight) { return "presence weight must be in \(Self.presenceWeightRange.spelled)" }
        if !Self.presenceFloorRange.contains(presenceFloor) { return "presence floor must be in \(Self.presenceFloorRange.spelled)" }
        return nil
    }
}

/// One relation to steer, resolved to token positions in the model's framed sequence.
public struct SteeringTarget: Sendable, Equatable {
    /// The relation's index in the prompt graph's edges (how the order, the UI and sidecars name it).
    public var edge: Int
    public var subject: String
    public var object: String
    public var relation: SpatialRelation
    public var subjectTokens: Range<Int>
    public var objectTokens: Range<Int>
    public init(edge: Int, subject: String, object: String, relation: SpatialRelation, subjectTokens: Range<Int>, objectTokens: Range<Int>) {
        self.edge = edge
        self.subject = subject; self.object = object; self.relation = relation
        self.subjectTokens = subjectTokens; self.objectTokens = objectTokens
    }
    public var label: String { "\(subject) \(relation.displayName) \(object)" }
}

/// What one refinement iteration saw and did.
public struct SteeringIteration: Sendable {
    public let step: Int
    public let iteration: Int
    /// The graph edge of the relation judged this iteration.
    public let edge: Int
    /// Class probabilities (5, classifier order) — for the handcrafted loss, a soft read-out of the centroids.
    public let probabilities: [Float]
    public let targetProbability: Float
    public let loss: Float
    public let gradientNorm: Float
    /// Mean over channels of the subject's and object's 16×16 maps (row-major).
    public let subjectMap: [Float]
    public let objectMap: [Float]
    /// The same maps per layer and head (the classifier's C channels).
    public let subjectStack: MapStack?
    public let objectStack: MapStack?
    public let seconds: Double
    /// Set when the iteration was skipped (NaN/Inf) or ended the step's refinement.
    public let note: String?
    /// Attention peaks of the subject and the object (`AttentionMaps.peak`).
    public var peaks: [Float] = []
}

/// The Learn-to-Steer refinement loop as a sampler hook: at each steered step, up to `maxIterations`
/// times, take the conditional UNet pass on the tape up to the last cross-attention layer, read the
/// subject/object maps, score the target relation, and descend the loss w.r.t. the latent. The policy
/// (round-robin across steps, early stop, non-finite skip, update rule) is `RefinementLoop`'s; this
/// class is its UNet + classifier evaluator.
public final class Steerer: StepHook {
    public let unet: UNet2DConditionModel
    public let classifier: RelationClassifier?
    /// The relations it can steer, keyed by graph edge index.
    public let targets: [Int: SteeringTarget]
    /// Round-robin order over graph edge indices (disabled relations left out); edges without a
    /// target are passed over. The caller sets it and `schedule` between steps (`SteeredGenerator`
    /// does, from the run's settings, at each step boundary).
    public var order: [Int]
    public var schedule: SteeringSettings
    /// Sees every iteration (the TUI and `--trace`).
    public var onIteration: ((SteeringIteration) -> Void)?
    /// Log lines (skipped iterations etc.).
    public var onLog: ((String) -> Void)?
    private var loop = RefinementLoop()
    /// Largest RMS change of the latent one iteration may make (see `RefinementLoop.maxUpdateRMS`).
    public static let maxUpdateRMS: Float = RefinementLoop.maxUpdateRMS
    /// The round-robin turn counter (continues across steps).
    public var turn: Int { loop.turn }

    public init(unet: UNet2DConditionModel, classifier: RelationClassifier?, targets: [SteeringTarget], schedule: SteeringSettings) {
        self.unet = unet
        self.classifier = classifier
        self.targets = Dictionary(targets.map { ($0.edge, $0) }, uniquingKeysWith: { first, _ in first })
        self.order = targets.map(\.edge)
        self.schedule = schedule
    }

    public func refine(latents: Tensor, step: Int, timestep: Int, totalSteps: Int, context: Tensor) -> Tensor {
        let active = order.filter { targets[$0] != nil }
        guard RefinementLoop.refines(schedule, step: step, active: active) else { return latents }
        if schedule.loss == .learned && classifier == nil { return latents }
        var evaluator = LatentEvaluator(steerer: self, latents: latents, timestep: timestep, totalSteps: totalSteps, context: context)
        // The maps are copied out only for a listener (not in evaluations).
        let report: ((RefinementIteration<Evaluation>) -> Void)? = onIteration.map { listener in
            { it in
                let result = it.evaluation
                let sm = MapStack(result.subjectMaps, layers: result.layers), om = MapStack(result.objectMaps, layers: result.layers)
                listener(SteeringIteration(step: it.step, iteration: it.iteration, edge: it.edge, probabilities: result.probabilities,
                                           targetProbability: result.targetProbability, loss: result.loss,
                                           gradientNorm: result.gradientNorm, subjectMap: sm.map(), objectMap: om.map(),
                                           subjectStack: sm, objectStack: om, seconds: it.seconds, note: it.note,
                                           peaks: result.peaks))
            }
        }
        loop.refine(&evaluator, step: step, active: active, schedule: schedule, onIteration: report, onLog: onLog)
        return evaluator.latents
    }

    /// The Steerer's side of the loop: `evaluate` at the current latent, and a step down the gradient.
    struct LatentEvaluator: RelationEvaluator {
        let steerer: Steerer
        var latents: Tensor
        let timestep: Int
        let totalSteps: Int
        let context: Tensor

        func evaluate(edge: Int, step: Int, needsGradient: Bool) -> Evaluation? {
            steerer.evaluate(latents, step: step, timestep: timestep, totalSteps: totalSteps, context: context,
                             target: steerer.targets[edge]!, needsGradient: needsGradient)
        }

        mutating func descend(along evaluation: Evaluation, scale: Float) {
            let z = latents
            latents = noGrad { z - evaluation.gradient * scale }
        }
    }

    struct Evaluation: RelationScore {
        let loss: Float
        let probabilities: [Float]
        let targetProbability: Float
        let gradient: Tensor
        let gradientNorm: Float
        /// The subject's and object's maps [C, 16, 16] and the layers of their channels (for `onIteration`).
        let subjectMaps: Tensor
        let objectMaps: Tensor
        let layers: [MapLayer]
        /// Subject's and object's attention peaks, and whether both reach the floor (true when the
        /// schedule does not steer presence).
        let peaks: [Float]
        let objectsPresent: Bool
        var gradientCount: Int { gradient.count }
    }

    /// Loss, class probabilities and ∂loss/∂z for one relation at latent z; nil if anything is non-finite.
    /// Without `needsGradient` (observing) the pass runs off the tape and ∂loss/∂z is reported as zero.
    func evaluate(_ z: Tensor, step: Int, timestep: Int, totalSteps: Int, context: Tensor, target: SteeringTarget,
                  needsGradient: Bool = true) -> Evaluation? {
        var probs: [Float] = []
        var mapsOut: (Tensor, Tensor)? = nil
        var mapLayers: [MapLayer] = []
        var peaks: [Float] = []
        func loss(_ inputs: [Tensor]) -> Tensor {
            let captured = unet.crossAttention(inputs[0], timesteps: [Float(timestep)], context: context)
            let subject = AttentionMaps.maps(captured, tokenSpan: target.subjectTokens)
            let object = AttentionMaps.maps(captured, tokenSpan: target.objectTokens)
            mapsOut = (subject, object)
            mapLayers = MapStack.layers(of: captured)
            // The presence term goes on the tape only when it is steered; otherwise the peaks are read
            // off the tape, for a listener only.
            var presence: Tensor? = nil
            if schedule.steersPresence {
                let subjectPeak = AttentionMaps.peak(captured, tokenSpan: target.subjectTokens)
                let objectPeak = AttentionMaps.peak(captured, tokenSpan: target.objectTokens)
                peaks = [subjectPeak.item, objectPeak.item]
                let floor = Tensor(scalar: schedule.presenceFloor)
                presence = (floor - subjectPeak).relu() + (floor - objectPeak).relu()
            } else if onIteration != nil {
                peaks = noGrad { [target.subjectTokens, target.objectTokens].map { AttentionMaps.peak(captured, tokenSpan: $0).item } }
            }
            let relation: Tensor
            switch schedule.loss {
            case .learned:
                let c = classifier!
                let maps = Tensor.stack([subject, object], axis: 0).unsqueezed(0)
                // The classifier was trained on step indices of a 50-step schedule: rescale this run's step.
                let classifierStep = c.config.classifierStep(for: step * 50 / max(totalSteps, 1))
                let logits = c(maps, steps: [classifierStep])
                probs = noGrad { logits.softmax() }.array
                relation = crossEntropy(logits, targets: [target.relation.classIndex])
            case .handcrafted, .presence:
                let (loss, p) = handcraftedLoss(subject: subject, object: object, relation: target.relation, margin: schedule.handcraftedMargin)
                probs = p
                if schedule.loss == .presence, let presence { return presence }
                relation = loss
            }
            return presence.map { relation + $0 * schedule.presenceWeight } ?? relation
        }
        let (value, g): (Tensor, Tensor)
        if needsGradient {
            let (v, grads) = valueAndGradients(at: [z], loss)
            (value, g) = (v, grads[0])
        } else {
            (value, g) = (noGrad { loss([z]) }, Tensor(zeros: z.shape))
        }
        var sq: Double = 0
        for i in 0..<g.count { sq += Double(g.pointer[i]) * Double(g.pointer[i]) }
        let norm = Float(sq.squareRoot())
        guard value.item.isFinite, norm.isFinite, let (s, o) = mapsOut else { return nil }
        let p = probs.indices.contains(target.relation.classIndex) ? probs[target.relation.classIndex] : 0
        let present = !schedule.steersPresence || peaks.allSatisfy { $0 >= schedule.presenceFloor }
        return Evaluation(loss: value.item, probabilities: probs, targetProbability: p, gradient: g, gradientNorm: norm,
                          subjectMaps: s, objectMaps: o, layers: mapLayers, peaks: peaks, objectsPresent: present)
    }
}

/// Hinge loss on map centroids: for "left of", relu(cx_subject − cx_object + margin), and so on.
/// Returns the loss and a 5-class pseudo-probability read-out (softmax of signed centroid gaps) so the
/// UI can show the same bars for both losses.
public func handcraftedLoss(subject: Tensor, object: Tensor, relation: SpatialRelation, margin: Float) -> (Tensor, [Float]) {
    let size = subject.shape[1]
    let coords = Tensor((0..<size).map { (Float($0) + 0.5) / Float(size) })
    func centroid(_ m: Tensor) -> (Tensor, Tensor) {
        let mean = m.mean(axes: [0])                       // [s, s]
        let total = mean.sum() + 1e-8
        let cx = (mean * coords.reshaped([1, size])).sum() / total
        let cy = (mean * coords.reshaped([size, 1])).sum() / total
        return (cx, cy)
    }
    let (sx, sy) = centroid(subject), (ox, oy) = centroid(object)
    let gap: Tensor
    switch relation {
    case .leftOf: gap = sx - ox
    case .rightOf: gap = ox - sx
    case .above: gap = sy - oy
    case .below: gap = oy - sy
    }
    let loss = (gap + margin).relu()
    let dx = (sx - ox).item, dy = (sy - oy).item
    // pseudo-logits: above, below, is, left, right
    let logits: [Float] = [-dy, dy, -1e9, -dx, dx].map { $0 * 20 }
    let m = logits.max()!
    let e = logits.map { Foundation.exp($0 - m) }
    let s = e.reduce(0, +)
    return (loss, e.map { $0 / s })
}
