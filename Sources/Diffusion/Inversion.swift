// Inversion: DDIM run backwards from a clean latent to a noisy one, and the reconstruction back down
// the one denoising loop (`Sampler.denoise`). Steering's dataset builder records attention maps on
// that way down; `l2s invert` reports how well an image survives the round trip.

import Foundation
import Tensors

/// PSNR in dB of `a` against `b`, both in [−1, 1] (peak-to-peak 2).
public func psnr(_ a: Tensor, _ b: Tensor) -> Double {
    var mse = 0.0
    for i in 0..<a.count { let d = Double(a.pointer[i] - b.pointer[i]); mse += d * d }
    mse /= Double(max(a.count, 1))
    return mse == 0 ? 99 : 10 * Foundation.log10(4 / mse)
}

/// DDIM inversion (conditional branch only, no x̂₀ clipping) with optional fixed-point refinement:
/// at each step up, ε̂ is re-evaluated at the current estimate of the noisier latent and the step
/// repeated (the paper's SD data path uses 5 iterations).
public struct Inversion {
    public let model: TextToImageModel
    public let fixedPointIterations: Int
    public init(model: TextToImageModel, fixedPointIterations: Int = 0) {
        self.model = model
        self.fixedPointIterations = fixedPointIterations
    }

    /// The model's DDIM scheduler for a `steps`-step run without x̂₀ clipping (inversion and
    /// reconstruction both use it).
    public func scheduler(steps: Int) -> DDIMScheduler {
        var config = model.schedulerConfig
        config.clip_sample = false
        return DDIMScheduler(config: config, steps: steps)
    }

    /// Inverts clean latent x0 up to the latent at step index `downTo` of an `steps`-step schedule
    /// (0 = the noisiest). Returns that latent and the trajectory (noisiest first).
    public func invert(_ x0: Tensor, context: Tensor, steps: Int, downTo stepIndex: Int = 0) -> (Tensor, [Tensor]) {
        noGrad {
            let s = scheduler(steps: steps)
            let timesteps = s.timesteps
            var x = x0
            var trajectory: [Tensor] = [x0]
            // Walk the schedule backwards: from the clean end (t_prev of the last step) up to timesteps[stepIndex].
            let up = Array(timesteps[stepIndex...].reversed())
            var tFrom = -1
            for tNext in up {
                var eps = model.unet(x, timesteps: [Float(max(tFrom, 0))], context: context)
                var next = s.invertStep(eps: eps, sample: x, from: tFrom, to: tNext)
                for _ in 0..<fixedPointIterations {
                    eps = model.unet(next, timesteps: [Float(tNext)], context: context)
                    next = s.invertStep(eps: eps, sample: x, from: tFrom, to: tNext)
                }
                x = next
                trajectory.append(x)
                tFrom = tNext
            }
            return (x, trajectory.reversed())
        }
    }

    /// Inverts up to step index `from` and reconstructs (DDIM down with the same context); returns the
    /// reconstruction and its PSNR against x0.
    public func roundTrip(_ x0: Tensor, context: Tensor, steps: Int, from stepIndex: Int = 0) -> (Tensor, Double) {
        noGrad {
            let (xT, _) = invert(x0, context: context, steps: steps, downTo: stepIndex)
            var s = scheduler(steps: steps)
            let x = Sampler.denoise(xT, scheduler: &s, from: stepIndex, predict: { x, _, t in
                model.unet(x, timesteps: [Float(t)], context: context)
            })
            return (x, psnr(x, x0))
        }
    }
}
