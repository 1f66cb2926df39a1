import Foundation
import Tensors

/// A token of a prompt with its character span (Int offsets into the prompt's Characters), so a word
/// can be mapped to the token positions whose attention maps belong to it.
public struct PromptToken: Sendable, Equatable {
    public let id: Int
    public let text: String
    public let range: Range<Int>
    public init(id: Int, text: String, range: Range<Int>) { self.id = id; self.text = text; self.range = range }
}

/// What the sampler needs from a text-to-image model: text encoding, the denoiser, a scheduler and a
/// way to turn latents into pixels. The embedded toy model (pixel space) and Stable Diffusion (VAE
/// latents) both conform.
public protocol TextToImageModel: AnyObject {
    var unet: UNet2DConditionModel { get }
    var scheduler: DDIMScheduler { get }
    /// Latent shape [C, H, W] for the model's native image size.
    var latentShape: [Int] { get }
    /// Token sequence length the text encoder takes (with BOS/EOS/padding).
    var sequenceLength: Int { get }
    /// Token ids for a prompt, framed and padded to `sequenceLength`.
    func tokenIDs(_ prompt: String) -> [Int]
    /// The prompt's tokens without framing; sequence position = index + `tokenOffset`.
    func tokens(_ prompt: String) -> [PromptToken]
    /// Offset of the first prompt token in the framed sequence (1 for a BOS token).
    var tokenOffset: Int { get }
    /// Text context [B, T, D] for the prompts.
    func encode(_ prompts: [String]) -> Tensor
    /// Pixels [B, 3, H, W] in [−1, 1] from (predicted clean) latents.
    func decode(_ latents: Tensor) -> Tensor
    /// A cheap RGB preview [B, 3, h, w] in [−1, 1] of latents (toy: the pixels; SD: a linear projection).
    func preview(_ latents: Tensor) -> Tensor
    /// A short hash of the weights, saved in sidecars.
    var weightsHash: String { get }
}

extension TextToImageModel {
    public func preview(_ latents: Tensor) -> Tensor { decode(latents) }
}

/// The sampling request: everything that decides the image. A value; the TUI edits copies.
public struct SamplerSettings: Sendable, Equatable, Codable {
    public var prompt: String
    public var negativePrompt: String = ""
    public var seed: UInt64 = 0
    public var steps: Int = 50
    public var guidanceScale: Float = 4
    public var sampler: SamplerKind = .ddim
    public init(prompt: String, negativePrompt: String = "", seed: UInt64 = 0, steps: Int = 50, guidanceScale: Float = 4,
                sampler: SamplerKind = .ddim) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.seed = seed
        self.steps = steps
        self.guidanceScale = guidanceScale
        self.sampler = sampler
    }

    // Accepted values (the CLI, the TUI and `validationError` share them).
    public static let stepRange: ClosedRange<Int> = 1...1000
    public static let guidanceRange: ClosedRange<Float> = 0...50

    /// Checks ranges; returns a user-facing message for the first bad value.
    public func validationError() -> String? {
        if !Self.stepRange.contains(steps) { return "steps must be in 1…1000 (got \(steps))" }
        if !Self.guidanceRange.contains(guidanceScale) { return "guidance must be in 0…50 (got \(guidanceScale))" }
        return nil
    }
}

/// What the sampler reports after each denoising step.
public struct StepEvent {
    public let step: Int
    public let totalSteps: Int
    public let timestep: Int
    /// x_{t_prev} after this step.
    public let latents: Tensor
    /// The model's clean-image estimate x̂₀ at this step.
    public let predictedClean: Tensor
    /// Cross-attention of the conditional branch at this step (when capture is on).
    public let attention: [CapturedAttention]
    public let seconds: Double
}

/// Lets steering change the latent before each denoising step (the paper's refinement loop).
public protocol StepHook: AnyObject {
    /// Returns the latent to denoise at `step` (the input, or a refined copy). `context` is the
    /// conditional text context [1, T, D].
    func refine(latents: Tensor, step: Int, timestep: Int, totalSteps: Int, context: Tensor) -> Tensor
}

/// Cooperative cancellation shared between a UI and a running sampler.
public final class CancellationToken: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    public init() {}
    public func cancel() { lock.lock(); cancelled = true; lock.unlock() }
    public var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }
}

/// Errors a sampling run reports instead of crashing.
public enum SamplerError: Error, CustomStringConvertible {
    case invalidSettings(String)
    case cancelled(atStep: Int)
    public var description: String {
        switch self {
        case .invalidSettings(let m): return "invalid settings: \(m)"
        case .cancelled(let s): return "cancelled at step \(s)"
        }
    }
}

/// DDIM (or DPM-Solver++ 2M, or Euler) sampling with classifier-free guidance, a per-step hook (steering) and per-step events.
public final class Sampler {
    public let model: TextToImageModel
    public init(model: TextToImageModel) { self.model = model }

    /// The initial noise for a seed (reproducible: same seed → bit-identical latent).
    public func initialNoise(seed: UInt64, batch: Int = 1) -> Tensor {
        var rng = RNG(seed: seed)
        return Tensor.randn([batch] + model.latentShape, rng: &rng)
    }

    /// ε̂ with CFG for one latent [1, C, H, W]: uncond + s·(cond − uncond); s ≤ 1 runs the conditional
    /// branch only. Captures the conditional branch's attention when `capture` is given.
    public func guidedPrediction(_ x: Tensor, timestep: Int, cond: Tensor, uncond: Tensor, guidance: Float,
                                 capture: AttentionCapture?) -> Tensor {
        if guidance == 1 {
            return model.unet(x, timesteps: [Float(timestep)], context: cond, capture: capture)!
        }
        let both = model.unet(Tensor.concat([x, x], axis: 0), timesteps: [Float(timestep)],
                              context: Tensor.concat([uncond, cond], axis: 0), capture: capture)!
        let halves = both.chunked(2, axis: 0)
        return halves[0] + (halves[1] - halves[0]) * guidance
    }

    /// Runs the whole denoising loop. `settingsAtStep` is called first at every step boundary, before
    /// the hook and the UNet (a caller that changes settings live, and its hook, rely on that order);
    /// its guidance applies from that step on (prompt, steps, seed and sampler are fixed once the run
    /// starts). Returns the final latent; `onStep` sees every step.
    public func run(_ settings: SamplerSettings, startLatents: Tensor? = nil, hook: StepHook? = nil,
                    captureAttention: Bool = false, cancel: CancellationToken? = nil,
                    settingsAtStep: ((Int) -> SamplerSettings)? = nil,
                    onStep: ((StepEvent) -> Void)? = nil) throws -> Tensor {
        if let m = settings.validationError() { throw SamplerError.invalidSettings(m) }
        let trainSteps = model.scheduler.config.num_train_timesteps
        guard model.scheduler.config.accepts(steps: settings.steps) else {
            throw SamplerError.invalidSettings("steps must be at most the scheduler's num_train_timesteps (\(trainSteps)); got \(settings.steps)")
        }
        return try GradMode.withoutGrad {
            let cond = model.encode([settings.prompt])
            let uncond = model.encode([settings.negativePrompt])
            var x = startLatents ?? initialNoise(seed: settings.seed)
            let scheduler = model.scheduler
            var solver = settings.sampler == .dpmSolverPP2M ? DPMSolverMultistep(config: scheduler.config, steps: settings.steps) : nil
            let euler = settings.sampler == .euler ? EulerDiscrete(config: scheduler.config, steps: settings.steps) : nil
            let timesteps = solver?.timesteps ?? euler?.timesteps ?? scheduler.timesteps(steps: settings.steps)
            if let euler { x = x * euler.initialNoiseSigma }
            for (i, t) in timesteps.enumerated() {
                if cancel?.isCancelled == true { throw SamplerError.cancelled(atStep: i) }
                let start = Date()
                let current = settingsAtStep?(i) ?? settings
                // Euler works on x·√(σ²+1); the UNet and the steering hook see the variance-preserving latent.
                let scale = euler?.inputScale(index: i) ?? 1
                if let hook {
                    let refined = hook.refine(latents: scale == 1 ? x : x * scale, step: i, timestep: t, totalSteps: settings.steps, context: cond)
                    x = scale == 1 ? refined : refined / scale
                }
                let capture = captureAttention ? AttentionCapture() : nil
                let eps = guidedPrediction(scale == 1 ? x : x * scale, timestep: t, cond: cond, uncond: uncond,
                                           guidance: current.guidanceScale, capture: capture)
                let (prev, x0): (Tensor, Tensor)
                if solver != nil {
                    (prev, x0) = solver!.step(modelOutput: eps, index: i, sample: x)
                } else if let euler {
                    (prev, x0) = euler.step(modelOutput: eps, index: i, sample: x)
                } else {
                    (prev, x0) = scheduler.step(modelOutput: eps, t: t, sample: x, steps: settings.steps)
                }
                x = prev
                onStep?(StepEvent(step: i, totalSteps: settings.steps, timestep: t, latents: x, predictedClean: x0,
                                  attention: capture?.layers ?? [], seconds: Date().timeIntervalSince(start)))
            }
            return x
        }
    }
}
