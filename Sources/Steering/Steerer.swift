import Foundation
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
}

/// The steering part of the settings: one value, editable between steps.
public struct SteeringSchedule: Codable, Equatable, Sendable {
    public var enabled: Bool = true
    /// Steps [startStep, endStep) are steered.
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

    public init() {}

    /// The paper's settings: steps [0, 25) of 50, plain step 5 (7.5 for SD1.4), 16 iterations, near-zero loss targets.
    public static var paper: SteeringSchedule {
        var s = SteeringSchedule()
        s.startStep = 0; s.endStep = 25; s.stepSizes = [5]; s.update = .plain; s.maxIterations = 16
        s.probabilityTarget = 1; s.lossTarget = 7e-5
        return s
    }

    /// Largest step sizes accepted: the update RMS (latent units) for `.normalized`, s for `.plain`.
    public static let maxNormalizedStep: Float = 10
    public static let maxPlainStep: Float = 100

    public func stepSize(at step: Int) -> Float { stepSizes.isEmpty ? 0 : stepSizes[min(max(step - startStep, 0), stepSizes.count - 1)] }

    public func validationError() -> String? {
        if startStep < 0 || endStep < startStep { return "steering range must satisfy 0 ≤ start ≤ end" }
        if maxIterations < 0 || maxIterations > 100 { return "iterations must be in 0…100" }
        // 0…100 for either rule (the workbench's range); the CLI holds normalized steps to 0…10, and the
        // steerer skips any iteration whose update RMS would exceed `Steerer.maxUpdateRMS`.
        if stepSizes.contains(where: { !$0.isFinite || $0 < 0 || $0 > SteeringSchedule.maxPlainStep }) {
            return "step sizes must be finite and in 0…\(Int(SteeringSchedule.maxPlainStep))"
        }
        return nil
    }
}

/// One relation to steer, resolved to token positions in the model's framed sequence.
public struct SteeringTarget: Sendable, Equatable {
    public var subject: String
    public var object: String
    public var relation: SpatialRelation
    public var subjectTokens: Range<Int>
    public var objectTokens: Range<Int>
    public init(subject: String, object: String, relation: SpatialRelation, subjectTokens: Range<Int>, objectTokens: Range<Int>) {
        self.subject = subject; self.object = object; self.relation = relation
        self.subjectTokens = subjectTokens; self.objectTokens = objectTokens
    }
    public var label: String { "\(subject) \(relation.displayName) \(object)" }
}

/// What one refinement iteration saw and did.
public struct SteeringIteration: Sendable {
    public let step: Int
    public let iteration: Int
    /// Index into the targets list of the relation judged this iteration.
    public let target: Int
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
}

/// The Learn-to-Steer refinement loop as a sampler hook: at each steered step, up to `maxIterations`
/// times, take the conditional UNet pass on the tape up to the last cross-attention layer, read the
/// subject/object maps, score the target relation, and descend the loss w.r.t. the latent.
/// Relations take turns (round-robin) across iterations.
public final class Steerer: StepHook {
    public let unet: UNet2DConditionModel
    public let classifier: RelationClassifier?
    public var targets: [SteeringTarget]
    /// Round-robin order over `targets` indices (disabled relations left out).
    public var order: [Int]
    public var schedule: SteeringSchedule
    /// Sees every iteration (the TUI and `--trace`).
    public var onIteration: ((SteeringIteration) -> Void)?
    /// Log lines (skipped iterations etc.).
    public var onLog: ((String) -> Void)?
    /// Consulted at each step boundary for live edits.
    public var scheduleProvider: ((Int) -> (SteeringSchedule, [Int]))?
    /// Largest RMS change of the latent one iteration may make (latents have RMS ≈ 1; a bigger step is
    /// skipped and logged instead of exploding the latent).
    public static let maxUpdateRMS: Float = 10
    /// The round-robin turn counter (continues across steps).
    public private(set) var turn = 0

    public init(unet: UNet2DConditionModel, classifier: RelationClassifier?, targets: [SteeringTarget], schedule: SteeringSchedule) {
        self.unet = unet
        self.classifier = classifier
        self.targets = targets
        self.order = Array(targets.indices)
        self.schedule = schedule
    }

    public func refine(latents: Tensor, step: Int, timestep: Int, totalSteps: Int, context: Tensor) -> Tensor {
        if let provider = scheduleProvider { (schedule, order) = provider(step) }
        let active = order.filter { targets.indices.contains($0) }
        guard schedule.enabled, step >= schedule.startStep, step < schedule.endStep, !active.isEmpty,
              schedule.maxIterations > 0 else { return latents }
        if schedule.loss == .learned && classifier == nil { return latents }
        var z = latents
        // Round-robin continues across steps (a persistent turn counter), and a step's refinement ends
        // only once every active relation has reached its target this step. (The authors' loop restarts
        // at the first relation each step and stops as soon as the current one is satisfied; with a
        // reachable target that would leave later relations unsteered.)
        var satisfied = Set<Int>()
        for k in 0..<schedule.maxIterations {
            let ti = active[turn % active.count]
            turn += 1
            let start = Date()
            guard let result = evaluate(z, step: step, timestep: timestep, totalSteps: totalSteps, context: context, target: targets[ti]) else {
                onLog?("step \(step) iteration \(k): non-finite loss or gradient, iteration skipped")
                continue
            }
            let reached = result.targetProbability >= schedule.probabilityTarget || result.loss <= schedule.lossTarget
            var note: String? = reached ? "target reached" : nil
            if reached {
                satisfied.insert(ti)
            } else {
                satisfied.remove(ti)
                let s = schedule.stepSize(at: step)
                let g = result.gradient
                // The update's RMS: s for the normalized rule, s·rms(∇z) for the plain one.
                let gradientRMS = result.gradientNorm / Float(g.count).squareRoot()
                let updateRMS = schedule.update == .normalized ? s : s * gradientRMS
                if gradientRMS == 0 {
                    note = "zero gradient"
                } else if !(updateRMS <= Steerer.maxUpdateRMS) {
                    // A finite but huge step would push the latent far outside anything the UNet has seen
                    // (then to Inf/NaN and a black image): skip it, as for a non-finite gradient.
                    note = "update skipped"
                    onLog?("step \(step) iteration \(k): update RMS \(updateRMS) > \(Steerer.maxUpdateRMS) would explode the latent, iteration skipped")
                } else if schedule.update == .normalized {
                    z = noGrad { z - g * (s / gradientRMS) }
                } else {
                    z = noGrad { z - g * s }
                }
            }
            if let onIteration {  // the maps are copied out only for a listener (not in evaluations)
                let sm = MapStack(result.subjectMaps, layers: result.layers), om = MapStack(result.objectMaps, layers: result.layers)
                onIteration(SteeringIteration(step: step, iteration: k, target: ti, probabilities: result.probabilities,
                                              targetProbability: result.targetProbability, loss: result.loss,
                                              gradientNorm: result.gradientNorm, subjectMap: sm.map(), objectMap: om.map(),
                                              subjectStack: sm, objectStack: om, seconds: Date().timeIntervalSince(start), note: note))
            }
            if satisfied.isSuperset(of: active) { break }
        }
        return z
    }

    struct Evaluation {
        let loss: Float
        let probabilities: [Float]
        let targetProbability: Float
        let gradient: Tensor
        let gradientNorm: Float
        /// The subject's and object's maps [C, 16, 16] and the layers of their channels (for `onIteration`).
        let subjectMaps: Tensor
        let objectMaps: Tensor
        let layers: [MapLayer]
    }

    /// Loss, class probabilities and ∂loss/∂z for one relation at latent z; nil if anything is non-finite.
    func evaluate(_ z: Tensor, step: Int, timestep: Int, totalSteps: Int, context: Tensor, target: SteeringTarget) -> Evaluation? {
        var probs: [Float] = []
        var mapsOut: (Tensor, Tensor)? = nil
        var mapLayers: [MapLayer] = []
        let layers = unet.crossAttentionLayerCount
        let (value, grads) = valueAndGradients(at: [z]) { inputs in
            let capture = AttentionCapture(keepOnTape: true)
            _ = unet(inputs[0], timesteps: [Float(timestep)], context: context, capture: capture, captureLimit: layers)
            let subject = AttentionMaps.maps(capture.layers, tokenSpan: target.subjectTokens)
            let object = AttentionMaps.maps(capture.layers, tokenSpan: target.objectTokens)
            mapsOut = (subject, object)
            mapLayers = MapStack.layers(of: capture.layers)
            switch schedule.loss {
            case .learned:
                let c = classifier!
                let maps = Tensor.stack([subject, object], axis: 0).unsqueezed(0)
                let classifierStep = c.config.classifierStep(for: step * 50 / max(totalSteps, 1))
                let logits = c(maps, steps: [classifierStep])
                probs = noGrad { logits.softmax() }.array
                return crossEntropy(logits, targets: [target.relation.classIndex])
            case .handcrafted:
                let (loss, p) = handcraftedLoss(subject: subject, object: object, relation: target.relation, margin: schedule.handcraftedMargin)
                probs = p
                return loss
            }
        }
        let g = grads[0]
        var sq: Double = 0
        for i in 0..<g.count { sq += Double(g.pointer[i]) * Double(g.pointer[i]) }
        let norm = Float(sq.squareRoot())
        guard value.item.isFinite, norm.isFinite, let (s, o) = mapsOut else { return nil }
        let p = probs.indices.contains(target.relation.classIndex) ? probs[target.relation.classIndex] : 0
        return Evaluation(loss: value.item, probabilities: probs, targetProbability: p, gradient: g, gradientNorm: norm,
                          subjectMaps: s, objectMaps: o, layers: mapLayers)
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
