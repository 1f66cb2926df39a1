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

/// max |a − b| / max(1, max |b|): the error relative to the output's scale.
func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "shapes \(a.shape) vs \(b.shape)")
    var err: Float = 0, scale: Float = 1
    let pa = a.pointer, pb = b.pointer
    for i in 0..<a.count {
        err = max(err, abs(pa[i] - pb[i]))
        scale = max(scale, abs(pb[i]))
    }
    return err / scale
}

@Suite(.serialized) struct StableDiffusionParityTests {
    static let tolerance: Float = 1e-4

    func check(_ name: String, _ what: String, _ ours: Tensor, _ theirs: Tensor, sourceLocation: SourceLocation = #_sourceLocation) {
        let e = relativeError(ours, theirs)
        print("parity \(name) \(what): max-abs error / scale = \(String(format: "%.2e", e))")
        #expect(e <= Self.tolerance, "\(name) \(what): error \(e)", sourceLocation: sourceLocation)
    }

    @Test(arguments: ["tiny-sd", "tiny-sd2"])
    func componentsMatchDiffusers(name: String) throws {
        let model = try StableDiffusionModel(path: TinySD.folder(name))
        let ref = try TinySD.reference(name)
        try GradMode.withoutGrad {
            // tokens
            let ids = try ref.tensor("ids").array.map { Int($0) }
            #expect(model.tokenIDs(TinySD.prompt) + model.tokenIDs("") == ids)
            // text encoder
            let text = model.encode([TinySD.prompt, ""])
            check(name, "text encoder", text, try ref.tensor("text"))
            // UNet with per-item timesteps, and one layer's cross-attention probabilities
            let capture = AttentionCapture(keepOnTape: false, conditionalHalfOnly: false)
            let t = try ref.tensor("unet.t").array
            let out = model.unet(try ref.tensor("unet.x"), timesteps: t, context: try ref.tensor("text"), capture: capture)!
            check(name, "UNet", out, try ref.tensor("unet.out"))
            let layer = try #require(capture.layers.first { $0.layer == TinySD.captured })
            #expect(layer.place == .up && layer.height == 8 && layer.width == 8)
            check(name, "cross-attention probabilities", layer.probabilities, try ref.tensor("attn.probs"))
            // VAE
            check(name, "VAE decode", model.vae.decode(try ref.tensor("vae.z")), try ref.tensor("vae.decoded"))
            check(name, "VAE encode (mean)", model.vae.encode(try ref.tensor("vae.x")), try ref.tensor("vae.mean"))
        }
    }

    /// Three DDIM steps with CFG 7.5 from given latents, as StableDiffusionPipeline runs them, then the decoded image.
    @Test(arguments: ["tiny-sd", "tiny-sd2"])
    func ddimLoopMatchesPipeline(name: String) throws {
        let model = try StableDiffusionModel(path: TinySD.folder(name))
        let ref = try TinySD.reference(name)
        let settings = SamplerSettings(prompt: TinySD.prompt, steps: 3, guidanceScale: 7.5)
        var timesteps: [Int] = []
        let out = try Sampler(model: model).run(settings, startLatents: try ref.tensor("ddim.latents"), onStep: { timesteps.append($0.timestep) })
        #expect(timesteps == [667, 334, 1])
        check(name, "3 DDIM steps", out, try ref.tensor("ddim.out"))
        let image = GradMode.withoutGrad { model.decode(out) * 0.5 + 0.5 }
        check(name, "decoded image", image, try ref.tensor("ddim.image"))
    }
}
