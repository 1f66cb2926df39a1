import Foundation
import Tensors

/// Scheduler configuration with the field names of diffusers' `scheduler/scheduler_config.json`.
public struct SchedulerConfig: Codable, Equatable, Sendable {
    public var num_train_timesteps: Int = 1000
    public var beta_start: Float = 0.00085
    public var beta_end: Float = 0.012
    public var beta_schedule: String = "scaled_linear"
    public var prediction_type: String = "epsilon"
    public var steps_offset: Int = 1
    public var set_alpha_to_one: Bool = false
    public var clip_sample: Bool = false
    public var clip_sample_range: Float = 1
    public var timestep_spacing: String = "leading"

    public init() {}

    /// The embedded toy model's schedule: linear betas 1e-4…0.02 over 1000 steps, x̂₀ clipped to [−1, 1].
    public static var pixelSpace: SchedulerConfig {
        var c = SchedulerConfig()
        c.beta_start = 1e-4; c.beta_end = 0.02; c.beta_schedule = "linear"; c.steps_offset = 0
        c.set_alpha_to_one = true; c.clip_sample = true
        return c
    }

    enum CodingKeys: String, CodingKey {
        case num_train_timesteps, beta_start, beta_end, beta_schedule, prediction_type, steps_offset,
             set_alpha_to_one, clip_sample, clip_sample_range, timestep_spacing
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = SchedulerConfig()
        try c.update(.num_train_timesteps, &d.num_train_timesteps); try c.update(.beta_start, &d.beta_start)
        try c.update(.beta_end, &d.beta_end); try c.update(.beta_schedule, &d.beta_schedule)
        try c.update(.prediction_type, &d.prediction_type); try c.update(.steps_offset, &d.steps_offset)
        try c.update(.set_alpha_to_one, &d.set_alpha_to_one); try c.update(.clip_sample, &d.clip_sample)
        try c.update(.clip_sample_range, &d.clip_sample_range); try c.update(.timestep_spacing, &d.timestep_spacing)
        self = d
    }

    /// Checks names, ranges and that the betas are physically valid; throws a message naming `file` and the field.
    public func validate(file: String = "scheduler") throws {
        let f = FieldCheck(file: file), T = ConfigBounds.maxTrainTimesteps
        guard ["linear", "scaled_linear"].contains(beta_schedule) else { throw f.fail("beta_schedule \(beta_schedule)") }
        guard ["epsilon", "v_prediction"].contains(prediction_type) else { throw f.fail("prediction_type \(prediction_type)") }
        guard TimestepSpacing(rawValue: timestep_spacing) != nil else { throw f.fail("timestep_spacing \(timestep_spacing)") }
        // Physically valid: 0 < β < 1 everywhere and non-decreasing (so every ᾱ_t is in (0, 1) and falls).
        try f.int("num_train_timesteps", num_train_timesteps, 1...T)
        try f.float("beta_start", beta_start, 0...1, openBelow: true, openAbove: true)
        try f.float("beta_end", beta_end, 0...1, openBelow: true, openAbove: true)
        guard beta_start <= beta_end else { throw f.fail("beta_start \(beta_start) > beta_end \(beta_end) (betas must not decrease)") }
        try f.int("steps_offset", steps_offset, 0...(num_train_timesteps - 1))
        try f.float("clip_sample_range", clip_sample_range, 0...1e6, openBelow: true)
    }

    /// Whether a run of `steps` steps fits this schedule (at most one step per training timestep).
    public func accepts(steps: Int) -> Bool { steps >= 1 && steps <= num_train_timesteps }

    /// ᾱ_t for t in 0..<num_train_timesteps (cumulative product of 1 − β), in Double.
    public func alphasCumprod() -> [Double] {
        let n = num_train_timesteps
        guard n > 1 else { return [1 - Double(beta_start)] }  // torch.linspace(start, end, 1) = [start]
        var betas: [Double]
        if beta_schedule == "scaled_linear" {
            let a = Double(beta_start).squareRoot(), b = Double(beta_end).squareRoot()
            betas = (0..<n).map { let v = a + (b - a) * Double($0) / Double(n - 1); return v * v }
        } else {
            betas = (0..<n).map { Double(beta_start) + (Double(beta_end) - Double(beta_start)) * Double($0) / Double(n - 1) }
        }
        var acc = 1.0
        return betas.map { acc *= 1 - $0; return acc }
    }
}

/// How a run's timesteps are spread over the training range: diffusers' `timestep_spacing`.
public enum TimestepSpacing: String, Sendable, CaseIterable {
    /// Multiples of ⌊T/N⌋ plus `steps_offset` (SD 1.x/2.x).
    case leading
    /// Counted down from T: round(T − k·T/N) − 1.
    case trailing
    /// Evenly from T − 1 down to 0, rounded.
    case linspace
}

extension SchedulerConfig {
    /// The spacing `timestep_spacing` names (`validate` rejects any other string).
    public var spacing: TimestepSpacing { TimestepSpacing(rawValue: timestep_spacing) ?? .leading }

    /// The timesteps of a `steps`-step run, noisiest first. Leading and linspace spacing place `points`
    /// (default `steps`) points over the training range and keep the noisiest `steps`: DPM-Solver++
    /// places `steps + 1`, as diffusers' DPMSolverMultistepScheduler does.
    public func timesteps(steps: Int, points: Int? = nil) -> [Int] {
        let T = num_train_timesteps, n = points ?? steps
        let ascending: [Int]
        switch spacing {
        case .trailing:
            let ratio = Double(T) / Double(steps)
            return (0..<steps).map { Int((Double(T) - Double($0) * ratio).rounded()) - 1 }
        case .linspace:
            ascending = (0..<n).map { k in Int((Double(T - 1) * Double(k) / Double(max(n - 1, 1))).rounded()) }
        case .leading:
            let ratio = T / n
            ascending = (0..<n).map { k in k * ratio + steps_offset }
        }
        return Array(ascending.reversed().prefix(steps))
    }

    /// σ_t = √((1 − ᾱ_t)/ᾱ_t) at each timestep, then the final σ = 0 (DPM-Solver and Euler).
    func sigmas(at timesteps: [Int]) -> [Double] {
        let ac = alphasCumprod()
        return timesteps.map { t in let a = ac[min(max(t, 0), ac.count - 1)]; return ((1 - a) / a).squareRoot() } + [0]
    }
}

/// A noise scheduler for one run, as the denoising loop drives it (the shape candle's and Apple's
/// schedulers have). The loop keeps the scheduler's own sample; `inputScale` turns it into the
/// variance-preserving latent that the UNet and steering see.
public protocol DiffusionScheduler {
    /// The run's timesteps, noisiest first.
    var timesteps: [Int] { get }
    /// What the initial N(0, I) noise is multiplied by.
    var initNoiseSigma: Float { get }
    /// The factor from the sample at step `index` to the variance-preserving latent.
    func inputScale(index: Int) -> Float
    /// One step at `index` of `timesteps`: the sample at the next timestep, and x̂₀.
    mutating func step(modelOutput: Tensor, index: Int, sample: Tensor) -> (previous: Tensor, x0: Tensor)
}

extension DiffusionScheduler {
    /// Schedulers on the variance-preserving latent itself (DDIM, DPM-Solver) start from N(0, I).
    public var initNoiseSigma: Float { 1 }
    public func inputScale(index: Int) -> Float { 1 }

    /// The variance-preserving latent for the sample at step `index` (the sample itself at scale 1).
    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor {
        let scale = inputScale(index: index)
        return scale == 1 ? sample : sample * scale
    }

    /// The sample for a variance-preserving latent at step `index`: `scaleModelInput` undone.
    public func unscaleModelInput(_ latent: Tensor, index: Int) -> Tensor {
        let scale = inputScale(index: index)
        return scale == 1 ? latent : latent / scale
    }
}

/// DDIM (η = 0) as diffusers' DDIMScheduler, for one `steps`-step run: deterministic, gives x̂₀ at
/// every step, and invertible.
public struct DDIMScheduler: DiffusionScheduler, Sendable {
    public let config: SchedulerConfig
    public let timesteps: [Int]
    public let alphasCumprod: [Double]
    public let finalAlphaCumprod: Double
    /// T/N: diffusers' DDIM steps from t to t − T/N whatever the spacing.
    let stride: Int

    public init(config: SchedulerConfig, steps: Int) {
        self.config = config
        timesteps = config.timesteps(steps: steps)
        stride = config.num_train_timesteps / steps
        alphasCumprod = config.alphasCumprod()
        finalAlphaCumprod = config.set_alpha_to_one ? 1 : alphasCumprod[0]
    }

    func alpha(_ t: Int) -> Double { t >= 0 ? alphasCumprod[min(t, alphasCumprod.count - 1)] : finalAlphaCumprod }

    /// Splits a model output into (x̂₀, ε̂) at timestep t, honouring prediction type and clipping.
    public func predict(modelOutput: Tensor, sample: Tensor, t: Int) -> (x0: Tensor, eps: Tensor) {
        let a = alpha(t), sa = Float(a.squareRoot()), sb = Float((1 - a).squareRoot())
        var x0: Tensor, eps: Tensor
        if config.prediction_type == "v_prediction" {
            x0 = sample * sa - modelOutput * sb
            eps = modelOutput * sa + sample * sb
        } else {
            x0 = (sample - modelOutput * sb) / sa
            eps = modelOutput
        }
        if config.clip_sample {
            let r = config.clip_sample_range
            x0 = x0.clamped(-r, r)
        }
        return (x0, eps)
    }

    /// One DDIM step from `timesteps[index]` to the next timestep (the clean end past the last).
    public func step(modelOutput: Tensor, index: Int, sample: Tensor) -> (previous: Tensor, x0: Tensor) {
        let t = timesteps[index]
        let (x0, eps) = predict(modelOutput: modelOutput, sample: sample, t: t)
        let ap = alpha(t - stride)
        let prev = x0 * Float(ap.squareRoot()) + eps * Float((1 - ap).squareRoot())
        return (prev, x0)
    }

    /// One inversion step: from x at `t` (a step's target timestep) up to the next noisier timestep
    /// `tNext`, using the model's ε̂ at (x, t) — DDIM's deterministic map run backwards.
    public func invertStep(eps: Tensor, sample: Tensor, from t: Int, to tNext: Int) -> Tensor {
        let a = alpha(t), an = alpha(tNext)
        let x0 = (sample - eps * Float((1 - a).squareRoot())) / Float(a.squareRoot())
        return x0 * Float(an.squareRoot()) + eps * Float((1 - an).squareRoot())
    }

    /// Forward noising q(x_t | x_0): √ᾱ·x0 + √(1−ᾱ)·ε.
    public func addNoise(_ x0: Tensor, noise: Tensor, t: Int) -> Tensor {
        let a = alpha(t)
        return x0 * Float(a.squareRoot()) + noise * Float((1 - a).squareRoot())
    }
}

/// Which sampler the denoising loop runs.
public enum SamplerKind: String, Codable, Sendable, CaseIterable {
    /// DDIM (η = 0): deterministic and invertible (the default; inversion and the paper use it).
    case ddim
    /// DPM-Solver++ (2M), diffusers' DPMSolverMultistepScheduler defaults (second order, data
    /// prediction, first order at the first and the last step, final σ = 0): good images in ~20 steps.
    case dpmSolverPP2M = "dpm++2m"
    /// Euler, diffusers' EulerDiscreteScheduler defaults.
    case euler
}

extension SamplerKind {
    /// This sampler's scheduler for one `steps`-step run on `config`.
    public func makeScheduler(config: SchedulerConfig, steps: Int) -> any DiffusionScheduler {
        switch self {
        case .ddim: return DDIMScheduler(config: config, steps: steps)
        case .dpmSolverPP2M: return DPMSolverMultistep(config: config, steps: steps)
        case .euler: return EulerDiscrete(config: config, steps: steps)
        }
    }
}

/// DPM-Solver++(2M) as diffusers' `DPMSolverMultistepScheduler` with its defaults (algorithm
/// "dpmsolver++", solver_order 2, midpoint second-order update, lower-order final step, final sigma
/// zero, no thresholding), on the folder's betas, prediction type, timestep spacing and steps offset.
/// Stateful: it keeps the previous step's x̂₀.
public struct DPMSolverMultistep: DiffusionScheduler, Sendable {
    public let config: SchedulerConfig
    public let timesteps: [Int]
    /// σ_t = √((1 − ᾱ)/ᾱ) at each timestep, then 0.
    let sigmas: [Double]
    private var previousX0: Tensor?

    public init(config: SchedulerConfig, steps: Int) {
        self.config = config
        timesteps = config.timesteps(steps: steps, points: steps + 1)
        sigmas = config.sigmas(at: timesteps)
    }

    /// (α_t, σ_t) of the variance-preserving latent for a σ of the variance-exploding form.
    static func alphaSigma(_ sigma: Double) -> (Double, Double) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        return (alpha, sigma * alpha)
    }

    /// One step at index `i` of `timesteps`: returns x at the next timestep and x̂₀.
    public mutating func step(modelOutput: Tensor, index i: Int, sample: Tensor) -> (previous: Tensor, x0: Tensor) {
        let (alphaS, sigmaS) = Self.alphaSigma(sigmas[i])
        let x0: Tensor
        if config.prediction_type == "v_prediction" {
            x0 = sample * Float(alphaS) - modelOutput * Float(sigmaS)
        } else {
            x0 = (sample - modelOutput * Float(sigmaS)) / Float(alphaS)
        }
        defer { previousX0 = x0 }
        let next = sigmas[i + 1]
        if next == 0 { return (x0, x0) }  // the final step to σ = 0 lands on x̂₀
        let (alphaT, sigmaT) = Self.alphaSigma(next)
        let lambdaT = log(alphaT) - log(sigmaT), lambdaS = log(alphaS) - log(sigmaS)
        let h = lambdaT - lambdaS
        let firstOrder = i == 0 || previousX0 == nil || i == timesteps.count - 1
        let coefficient = Float(alphaT * (exp(-h) - 1))
        var x = sample * Float(sigmaT / sigmaS) - x0 * coefficient
        if !firstOrder, let m1 = previousX0 {
            let (alphaS1, sigmaS1) = Self.alphaSigma(sigmas[i - 1])
            let lambdaS1 = log(alphaS1) - log(sigmaS1)
            let r0 = (lambdaS - lambdaS1) / h
            let d1 = (x0 - m1) * Float(1 / r0)
            x = x - d1 * (0.5 * coefficient)
        }
        return (x, x0)
    }
}

/// Euler (diffusers' `EulerDiscreteScheduler` defaults: no churn, σ interpolation "linear", final σ = 0)
/// on the folder's betas, prediction type, timestep spacing and steps offset. It works on
/// x = x_vp · √(σ² + 1): the sampler scales the initial noise by `initNoiseSigma` and the UNet
/// input by `inputScale(index:)`.
public struct EulerDiscrete: DiffusionScheduler, Sendable {
    public let config: SchedulerConfig
    public let timesteps: [Int]
    let sigmas: [Double]

    public init(config: SchedulerConfig, steps: Int) {
        self.config = config
        timesteps = config.timesteps(steps: steps)
        sigmas = config.sigmas(at: timesteps)
    }

    /// σ_max, or √(σ_max² + 1) under leading spacing, as diffusers' `init_noise_sigma`.
    public var initNoiseSigma: Float {
        let m = sigmas.max() ?? 1
        return Float(config.spacing == .leading ? (m * m + 1).squareRoot() : m)
    }

    /// 1/√(σ² + 1): the UNet input (and the variance-preserving latent) is x times this.
    public func inputScale(index i: Int) -> Float { Float(1 / (sigmas[i] * sigmas[i] + 1).squareRoot()) }

    /// One Euler step at index `i`: returns x at the next σ and x̂₀.
    public func step(modelOutput: Tensor, index i: Int, sample: Tensor) -> (previous: Tensor, x0: Tensor) {
        let sigma = sigmas[i]
        let x0: Tensor
        if config.prediction_type == "v_prediction" {
            x0 = modelOutput * Float(-sigma / (sigma * sigma + 1).squareRoot()) + sample / Float(sigma * sigma + 1)
        } else {
            x0 = sample - modelOutput * Float(sigma)
        }
        let derivative = (sample - x0) / Float(sigma)
        return (sample + derivative * Float(sigmas[i + 1] - sigma), x0)
    }
}
