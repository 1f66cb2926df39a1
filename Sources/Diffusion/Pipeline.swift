import Foundation
import Formats
import Tensors

/// What the sampler needs from a text-to-image model: text encoding, the denoiser, a noise schedule
/// and a way to turn latents into pixels. The embedded toy model (pixel space) and Stable Diffusion
/// (VAE latents) both conform.
public protocol TextToImageModel: AnyObject {
    var unet: UNet2DConditionModel { get }
    /// The noise schedule the model was trained on; each run builds its scheduler from it.
    var schedulerConfig: SchedulerConfig { get }
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
        if !Self.stepRange.contains(steps) { return "steps must be in \(Self.stepRange.spelled) (got \(steps))" }
        if !Self.guidanceRange.contains(guidanceScale) { return "guidance must be in \(Self.guidanceRange.spelled) (got \(guidanceScale))" }
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

/// Sampling with the settings' scheduler (DDIM, DPM-Solver++ 2M or Euler), classifier-free guidance, a
/// per-step hook (steering) and per-step events.
public final class Sampler {
    public let model: TextToImageModel
    public init(model: TextToImageModel) { self.model = model }

    /// The initial noise for a seed (reproducible: same seed → bit-identical latent).
    public func initialNoise(seed: UInt64, batch: Int = 1) -> Tensor {
        var rng = RNG(seed: seed)
        return Tensor.randn([batch] + model.latentShape, rng: &rng)
    }

    /// ε̂ with CFG for latents [B, C, H, W] (contexts [B, T, D]): uncond + s·(cond − uncond); s = 1
    /// runs the conditional branch only. `capture` records the pass's attention: the conditional
    /// item i is at batch index `conditionalOffset(guidance:batch:) + i`.
    public func guidedPrediction(_ x: Tensor, timestep: Int, cond: Tensor, uncond: Tensor, guidance: Float,
                                 capture: AttentionCapture? = nil) -> Tensor {
        if guidance == 1 {
            return model.unet(x, timesteps: [Float(timestep)], context: cond, capture: capture)
        }
        let both = model.unet(Tensor.concat([x, x], axis: 0), timesteps: [Float(timestep)],
                              context: Tensor.concat([uncond, cond], axis: 0), capture: capture)
        let halves = both.chunked(2, axis: 0)
        return halves[0] + (halves[1] - halves[0]) * guidance
    }

    /// Where `guidedPrediction`'s conditional items start in its UNet batch of `batch` latents.
    public static func conditionalOffset(guidance: Float, batch: Int) -> Int { guidance == 1 ? 0 : batch }

    /// Runs the denoising loop from step index `stepIndex` (0: the whole run) to the end and returns the
    /// final latent. `startLatents` is where it starts: at step 0 the initial noise (default: the seed's),
    /// which the scheduler scales by its `initNoiseSigma`; past 0 the latent at that step as the run
    /// reported it (`StepEvent.latents` of the step before), so a run cut after k steps resumes exactly.
    /// DPM-Solver++ keeps no history across a resume, so its first resumed step is first order.
    /// `settingsAtStep` is called first at every step boundary, before the hook and the UNet (a caller
    /// that changes settings live, and its hook, rely on that order); its guidance applies from that
    /// step on (prompt, steps, seed and sampler are fixed once the run starts). `onStep` sees every step.
    public func run(_ settings: SamplerSettings, from stepIndex: Int = 0, startLatents: Tensor? = nil, hook: StepHook? = nil,
                    cancel: CancellationToken? = nil,
                    settingsAtStep: ((Int) -> SamplerSettings)? = nil,
                    onStep: ((StepEvent) -> Void)? = nil) throws -> Tensor {
        if let m = settings.validationError() { throw SamplerError.invalidSettings(m) }
        let trainSteps = model.schedulerConfig.num_train_timesteps
        guard model.schedulerConfig.accepts(steps: settings.steps) else {
            throw SamplerError.invalidSettings("steps must be at most the scheduler's num_train_timesteps (\(trainSteps)); got \(settings.steps)")
        }
        guard (0..<settings.steps).contains(stepIndex) else {
            throw SamplerError.invalidSettings("the start step must be in 0…\(settings.steps - 1) (got \(stepIndex))")
        }
        guard stepIndex == 0 || startLatents != nil else {
            throw SamplerError.invalidSettings("resuming at step \(stepIndex) needs the latents of that step")
        }
        return try GradMode.withoutGrad {
            let cond = model.encode([settings.prompt])
            let uncond = model.encode([settings.negativePrompt])
            var scheduler = settings.sampler.makeScheduler(config: model.schedulerConfig, steps: settings.steps)
            var x = startLatents ?? initialNoise(seed: settings.seed)
            if stepIndex == 0 && scheduler.initNoiseSigma != 1 { x = x * scheduler.initNoiseSigma }
            var current = settings, start = Date()
            return try Sampler.denoise(x, scheduler: &scheduler, from: stepIndex, beforeStep: { latent, i, t in
                if cancel?.isCancelled == true { throw SamplerError.cancelled(atStep: i) }
                start = Date()
                current = settingsAtStep?(i) ?? settings
                return hook?.refine(latents: latent, step: i, timestep: t, totalSteps: settings.steps, context: cond)
            }, predict: { latent, _, t in
                guidedPrediction(latent, timestep: t, cond: cond, uncond: uncond, guidance: current.guidanceScale)
            }, afterStep: { i, t, x, x0 in
                onStep?(StepEvent(step: i, totalSteps: settings.steps, timestep: t, latents: x, predictedClean: x0,
                                  seconds: Date().timeIntervalSince(start)))
            })
        }
    }

    /// The denoising loop that sampling and reconstruction (`Inversion`, the dataset builder) share:
    /// from step `stepIndex` of the scheduler's timesteps to the end, starting at the scheduler's
    /// `sample` there. At each step `beforeStep` sees the variance-preserving latent and may replace it
    /// (steering; nil keeps it), `predict` gives the model output for it, and the scheduler steps;
    /// `afterStep` sees the new sample and x̂₀. Returns the final sample.
    public static func denoise<S: DiffusionScheduler>(
        _ sample: Tensor, scheduler: inout S, from stepIndex: Int = 0,
        beforeStep: (_ latent: Tensor, _ index: Int, _ timestep: Int) throws -> Tensor?,
        predict: (_ latent: Tensor, _ index: Int, _ timestep: Int) -> Tensor,
        afterStep: (_ index: Int, _ timestep: Int, _ sample: Tensor, _ x0: Tensor) -> Void = { _, _, _, _ in }
    ) rethrows -> Tensor {
        var x = sample
        for i in stepIndex..<scheduler.timesteps.count {
            let t = scheduler.timesteps[i]
            var latent = scheduler.scaleModelInput(x, index: i)
            // Euler works on x·√(σ²+1): a refined latent goes back into its space, and the UNet sees it scaled again.
            if let refined = try beforeStep(latent, i, t) {
                x = scheduler.unscaleModelInput(refined, index: i)
                latent = scheduler.scaleModelInput(x, index: i)
            }
            let (next, x0) = scheduler.step(modelOutput: predict(latent, i, t), index: i, sample: x)
            x = next
            afterStep(i, t, x, x0)
        }
        return x
    }

    /// `denoise` with nothing before a step (reconstruction: no steering, no cancellation).
    public static func denoise<S: DiffusionScheduler>(
        _ sample: Tensor, scheduler: inout S, from stepIndex: Int = 0,
        predict: (_ latent: Tensor, _ index: Int, _ timestep: Int) -> Tensor,
        afterStep: (_ index: Int, _ timestep: Int, _ sample: Tensor, _ x0: Tensor) -> Void = { _, _, _, _ in }
    ) -> Tensor {
        denoise(sample, scheduler: &scheduler, from: stepIndex, beforeStep: { _, _, _ in nil }, predict: predict, afterStep: afterStep)
    }
}
