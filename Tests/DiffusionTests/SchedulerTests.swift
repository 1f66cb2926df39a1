import Testing
@testable import Diffusion
@testable import Tensors

@Suite struct SchedulerTests {
    @Test func leadingTimestepsMatchDiffusers() {
        // diffusers DDIMScheduler(steps_offset=1, leading), 50 steps: 981, 961, …, 1
        let sd = DDIMScheduler(config: SchedulerConfig())
        let ts = sd.timesteps(steps: 50)
        #expect(ts.count == 50 && ts.first == 981 && ts.last == 1 && ts[1] == 961)
        let toy = DDIMScheduler(config: .pixelSpace)
        #expect(toy.timesteps(steps: 50).first == 980 && toy.timesteps(steps: 50).last == 0)
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
            let s = DDIMScheduler(config: config)
            let steps = 20
            var x = Tensor.randn([1, 3, 4, 4], rng: &rng)
            var last = x
            for t in s.timesteps(steps: steps) {
                let a = s.alphasCumprod[t]
                let eps = (x - x0 * Float(a.squareRoot())) / Float((1 - a).squareRoot())
                (x, last) = s.step(modelOutput: eps, t: t, sample: x, steps: steps)
            }
            // SD's schedule ends at ᾱ₀ < 1 (set_alpha_to_one false), so compare the final x̂₀.
            let err = zip(last.array, x0.array).map { abs($0 - $1) }.max()!
            #expect(err < 2e-3, "DDIM with an oracle ended \(err) from x0")
        }
    }

    /// DDIM inversion followed by DDIM sampling with the same ε is the identity (without x̂₀ clipping,
    /// which inversion must not use).
    @Test func inversionStepInvertsStep() {
        var rng = RNG(seed: 4)
        var config = SchedulerConfig.pixelSpace
        config.clip_sample = false
        let s = DDIMScheduler(config: config)
        let x = Tensor.randn([1, 3, 4, 4], rng: &rng)
        let eps = Tensor.randn([1, 3, 4, 4], rng: &rng)
        let up = s.invertStep(eps: eps, sample: x, from: 480, to: 500)
        let back = s.step(modelOutput: eps, t: 500, sample: up, steps: 50).previous
        #expect(zip(back.array, x.array).map { abs($0 - $1) }.max()! < 1e-4)
    }
}
