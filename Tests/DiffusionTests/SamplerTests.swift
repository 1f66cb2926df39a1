import Foundation
import Testing
@testable import Diffusion
@testable import Tensors

/// Scales the latent at odd steps, so a test sees whether the hook's edit survives a resume.
private final class ScalingHook: StepHook {
    func refine(latents: Tensor, step: Int, timestep: Int, totalSteps: Int, context: Tensor) -> Tensor {
        step % 2 == 0 ? latents : noGrad { latents * 1.02 }
    }
}

@Suite struct SamplerTests {
    /// A run cut after k steps and resumed at k from the latent it reported gives the full run's latent
    /// bit for bit (DDIM and Euler are stateless; Euler's latent stays in its own scaled space).
    @Test(arguments: [SamplerKind.ddim, .euler])
    func resumingAtAStepRepeatsTheRun(kind: SamplerKind) throws {
        let model = try StableDiffusionModel(path: TinySD.folder("tiny-sd"))
        let settings = SamplerSettings(prompt: TinySD.prompt, seed: 3, steps: 6, guidanceScale: 7.5, sampler: kind)
        for hook in [nil, ScalingHook()] as [StepHook?] {
            var reported: [Tensor] = [], steps: [Int] = []
            let full = try Sampler(model: model).run(settings, hook: hook, onStep: { reported.append($0.latents) })
            let resumed = try Sampler(model: model).run(settings, from: 4, startLatents: reported[3], hook: hook,
                                                        onStep: { steps.append($0.step) })
            #expect(steps == [4, 5])
            #expect(resumed.array == full.array, "\(kind) resumed at step 4, hook \(hook != nil)")
        }
    }

    /// DPM-Solver++ resumes without its multistep history: the first resumed step is first order, so the
    /// result is close to the full run but not the same.
    @Test func dpmSolverResumesAtFirstOrder() throws {
        let model = try StableDiffusionModel(path: TinySD.folder("tiny-sd"))
        let settings = SamplerSettings(prompt: TinySD.prompt, seed: 3, steps: 6, guidanceScale: 7.5, sampler: .dpmSolverPP2M)
        var reported: [Tensor] = []
        let full = try Sampler(model: model).run(settings, onStep: { reported.append($0.latents) })
        let resumed = try Sampler(model: model).run(settings, from: 3, startLatents: reported[2])
        #expect(resumed.array != full.array && relativeError(resumed, full) < 0.5)
    }

    @Test func aResumeNeedsAStepOfTheRunAndItsLatents() throws {
        let model = try StableDiffusionModel(path: TinySD.folder("tiny-sd"))
        let settings = SamplerSettings(prompt: TinySD.prompt, steps: 4)
        let latents = Sampler(model: model).initialNoise(seed: 1)
        #expect(throws: SamplerError.self) { try Sampler(model: model).run(settings, from: 4, startLatents: latents) }
        #expect(throws: SamplerError.self) { try Sampler(model: model).run(settings, from: -1, startLatents: latents) }
        #expect(throws: SamplerError.self) { try Sampler(model: model).run(settings, from: 2) }
    }
}
