import Foundation
import Testing
@testable import Diffusion
@testable import Tensors

/// The tiny diffusers folders and their PyTorch references (Scripts/make_sd_fixtures.py).
enum TinySD {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path
    static func folder(_ name: String) -> String { fixtures + "/" + name }
    static func reference(_ name: String) throws -> SafetensorsFile {
        try SafetensorsFile(path: fixtures + "/\(name)-reference.safetensors")
    }
    static let prompt = "a red cube to the left of a blue sphere"
    static let captured = "up_blocks.1.attentions.0.transformer_blocks.0.attn2"
}

@Suite(.serialized) struct StableDiffusionParityTests {
    static let tolerance: Float = 1e-4

    /// Every component through `ParityCheck` (what `l2s verify` runs on full-size folders).
    @Test(arguments: ["tiny-sd", "tiny-sd2"])
    func componentsMatchDiffusers(name: String) throws {
        let model = try StableDiffusionModel(path: TinySD.folder(name))
        let check = ParityCheck(model: model, reference: try TinySD.reference(name), tolerance: Self.tolerance)
        let results = try check.run()
        #expect(results.count == 8)
        for r in results {
            print("parity \(name) \(r.component): \(r.error.map { String(format: "max-abs error / scale = %.2e", $0) } ?? "exact")")
            #expect(r.passed, "\(name) \(r.component): error \(r.error.map { "\($0)" } ?? "ids differ")")
        }
        // The captured layer is the one the reference recorded, at its place and size.
        let capture = AttentionCapture(keepOnTape: false, conditionalHalfOnly: false)
        let ref = try TinySD.reference(name)
        _ = GradMode.withoutGrad {
            model.unet(try! ref.tensor("unet.x"), timesteps: try! ref.tensor("unet.t").array, context: try! ref.tensor("text"), capture: capture)
        }
        let layer = try #require(capture.layers.first { $0.layer == TinySD.captured })
        #expect(layer.place == .up && layer.height == 8 && layer.width == 8)
    }

    /// The DDIM schedule StableDiffusionPipeline runs for 3 steps (the values are in `ParityCheck`).
    @Test(arguments: ["tiny-sd", "tiny-sd2"])
    func ddimTimestepsMatchPipeline(name: String) throws {
        let model = try StableDiffusionModel(path: TinySD.folder(name))
        let ref = try TinySD.reference(name)
        let settings = SamplerSettings(prompt: TinySD.prompt, steps: 3, guidanceScale: 7.5)
        var timesteps: [Int] = []
        _ = try Sampler(model: model).run(settings, startLatents: try ref.tensor("ddim.latents"), onStep: { timesteps.append($0.timestep) })
        #expect(timesteps == [667, 334, 1])
    }

    /// DPM-Solver++(2M) and Euler against diffusers' DPMSolverMultistepScheduler / EulerDiscreteScheduler
    /// (Scripts/make_sd_fixtures.py --dpm):
    /// the same timesteps and the same final latents after 4 and 16 steps with CFG 7.5.
    @Test(arguments: ["tiny-sd", "tiny-sd2"])
    func dpmSolverMatchesDiffusers(name: String) throws {
        let model = try StableDiffusionModel(path: TinySD.folder(name))
        let ref = try SafetensorsFile(path: TinySD.fixtures + "/\(name)-dpm-reference.safetensors")
        let start = try TinySD.reference(name).tensor("ddim.latents")
        for (kind, key) in [(SamplerKind.dpmSolverPP2M, "dpm"), (.euler, "euler")] {
            for n in [4, 16] {
                var timesteps: [Int] = []
                let settings = SamplerSettings(prompt: TinySD.prompt, steps: n, guidanceScale: 7.5, sampler: kind)
                let out = try Sampler(model: model).run(settings, startLatents: start, onStep: { timesteps.append($0.timestep) })
                #expect(timesteps == (try ref.tensor("\(key)\(n).timesteps")).array.map { Int($0) })
                let e = relativeError(out, try ref.tensor("\(key)\(n).out"))
                print("parity \(name) \(kind.rawValue) \(n) steps: max-abs error / scale = \(String(format: "%.2e", e))")
                #expect(e <= Self.tolerance)
            }
        }
    }
}
