import Testing
@testable import Diffusion
@testable import Tensors

@Suite struct SchedulerTests {
    @Test func leadingTimestepsMatchDiffusers() {
        // diffusers DDIMScheduler(steps_offset=1, leading), 50 steps: 981, 961, …, 1
        let ts = DDIMScheduler(config: SchedulerConfig(), steps: 50).timesteps
        #expect(ts.count == 50 && ts.first == 981 && ts.last == 1 && ts[1] == 961)
        let toy = DDIMScheduler(config: .pixelSpace, steps: 50).timesteps
        #expect(toy.first == 980 && toy.last == 0)
    }

    @Test func scaledLinearAlphasMatchDiffusers() {
        // torch: (linspace(0.00085**0.5, 0.012**0.5, 1000)**2), cumprod(1 - betas)
        let a = SchedulerConfig().alphasCumprod()
        #expect(abs(a[0] - 0.99915) < 1e-6)
        #expect(abs(a[999] - 0.004660098513077238) < 1e-7)  // torch float64
    }

    /// With the exact noise as the model output, DDIM walks back to the clean sample.
    @Test func oracleDenoisingRecoversTheCleanSample() {
        var rng = RNG(seed: 3)
        let x0 = Tensor.rand([1, 3, 4, 4], rng: &rng, low: -0.9, high: 0.9)
        for config in [SchedulerConfig(), SchedulerConfig.pixelSpace] {
            let s = DDIMScheduler(config: config, steps: 20)
            var x = Tensor.randn([1, 3, 4, 4], rng: &rng)
            var last = x
            for (i, t) in s.timesteps.enumerated() {
                let a = s.alphasCumprod[t]
                let eps = (x - x0 * Float(a.squareRoot())) / Float((1 - a).squareRoot())
                (x, last) = s.step(modelOutput: eps, index: i, sample: x)
            }
            // SD's schedule ends at ᾱ₀ < 1 (set_alpha_to_one false), so compare the final x̂₀.
            let err = zip(last.array, x0.array).map { abs($0 - $1) }.max()!
            #expect(err < 2e-3, "DDIM with an oracle ended \(err) from x0")
        }
    }

    /// DDIM inversion followed by DDIM sampling with the same ε is the identity (without x̂₀ clipping,
    /// which inversion must not use).
    @Test func inversionStepInvertsStep() throws {
        var rng = RNG(seed: 4)
        var config = SchedulerConfig.pixelSpace
        config.clip_sample = false
        let s = DDIMScheduler(config: config, steps: 50)
        let x = Tensor.randn([1, 3, 4, 4], rng: &rng)
        let eps = Tensor.randn([1, 3, 4, 4], rng: &rng)
        let up = s.invertStep(eps: eps, sample: x, from: 480, to: 500)
        let index = try #require(s.timesteps.firstIndex(of: 500))
        let back = s.step(modelOutput: eps, index: index, sample: up).previous
        #expect(zip(back.array, x.array).map { abs($0 - $1) }.max()! < 1e-4)
    }

    /// The one spacing function against diffusers' `set_timesteps` (numpy, T = 1000): DDIM and Euler
    /// space N points, DPM-Solver++ N + 1 and drops the cleanest; trailing is the same for all three.
    @Test func timestepSpacingMatchesDiffusers() {
        func config(_ spacing: TimestepSpacing, offset: Int = 1) -> SchedulerConfig {
            var c = SchedulerConfig()
            c.timestep_spacing = spacing.rawValue; c.steps_offset = offset
            return c
        }
        let expected: [(SamplerKind, TimestepSpacing, [Int])] = [
            (.ddim, .leading, [801, 601, 401, 201, 1]),
            (.ddim, .linspace, [999, 749, 500, 250, 0]),
            (.ddim, .trailing, [999, 799, 599, 399, 199]),
            (.euler, .leading, [801, 601, 401, 201, 1]),
            (.euler, .linspace, [999, 749, 500, 250, 0]),
            (.dpmSolverPP2M, .leading, [831, 665, 499, 333, 167]),
            (.dpmSolverPP2M, .linspace, [999, 799, 599, 400, 200]),
            (.dpmSolverPP2M, .trailing, [999, 799, 599, 399, 199]),
        ]
        for (kind, spacing, timesteps) in expected {
            #expect(kind.makeScheduler(config: config(spacing), steps: 5).timesteps == timesteps, "\(kind) \(spacing)")
        }
        #expect(config(.linspace).timesteps(steps: 1) == [0])
        var unknown = SchedulerConfig()
        unknown.timestep_spacing = "karras"
        #expect(unknown.spacing == .leading && (try? unknown.validate()) == nil)
    }

    /// Only Euler works off the variance-preserving latent: its input scale is 1/√(σ² + 1) and its
    /// initial noise is scaled up; DDIM and DPM-Solver++ pass the sample through untouched.
    @Test func inputScalingIsEulersOnly() {
        var rng = RNG(seed: 6)
        let x = Tensor.randn([1, 3, 2, 2], rng: &rng)
        for kind in [SamplerKind.ddim, .dpmSolverPP2M] {
            let s = kind.makeScheduler(config: SchedulerConfig(), steps: 10)
            #expect(s.initNoiseSigma == 1 && s.inputScale(index: 3) == 1)
            #expect(s.scaleModelInput(x, index: 3).array == x.array && s.unscaleModelInput(x, index: 3).array == x.array)
        }
        let euler = EulerDiscrete(config: SchedulerConfig(), steps: 10)
        let sigma = euler.sigmas[0]
        #expect(euler.inputScale(index: 0) == Float(1 / (sigma * sigma + 1).squareRoot()))
        #expect(euler.initNoiseSigma == Float((sigma * sigma + 1).squareRoot()))
        let round = euler.unscaleModelInput(euler.scaleModelInput(x, index: 0), index: 0)
        #expect(zip(round.array, x.array).allSatisfy { abs($0 - $1) < 1e-6 })
    }
}
