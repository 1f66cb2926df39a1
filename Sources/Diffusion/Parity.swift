import Foundation
import Tensors

/// max |a − b| / max(1, max |b|): the error relative to the output's scale (the parity measure).
public func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "shapes \(a.shape) vs \(b.shape)")
    var err: Float = 0, scale: Float = 1
    let pa = a.pointer, pb = b.pointer
    for i in 0..<a.count {
        err = max(err, abs(pa[i] - pb[i]))
        scale = max(scale, abs(pb[i]))
    }
    return err / scale
}

/// Compares a Stable Diffusion folder against reference outputs recorded with diffusers/transformers
/// (Scripts/make_sd_fixtures.py writes them: the tiny fixtures of the tests, and `--full` for the real
/// SD 1.5 / SD 2.1-base configs with random weights). Reference keys:
///   ids [2·77] (prompt, ""), text [2, 77, D]; unet.x, unet.t, unet.out (context = text);
///   attn.probs [B, heads, HW, 77] of `captured`; vae.z → vae.decoded; vae.x → vae.mean;
///   ddim.latents → ddim.out (3 DDIM steps, CFG 7.5) → ddim.image (decoded, [0, 1]).
/// Metadata: "prompt" and "captured" (the layer whose probabilities were recorded).
public struct ParityCheck {
    public struct Result: Sendable {
        public let component: String
        /// nil when the component is compared exactly (token ids).
        public let error: Float?
        public let passed: Bool
        public let seconds: Double
    }

    public let model: StableDiffusionModel
    public let reference: SafetensorsFile
    public let tolerance: Float

    public init(model: StableDiffusionModel, reference: SafetensorsFile, tolerance: Float = 1e-4) {
        self.model = model
        self.reference = reference
        self.tolerance = tolerance
    }

    public var prompt: String { reference.metadata["prompt"] ?? "a red cube to the left of a blue sphere" }
    public var captured: String { reference.metadata["captured"] ?? "up_blocks.1.attentions.0.transformer_blocks.0.attn2" }

    /// Runs every comparison the reference has, reporting each as it finishes.
    public func run(report: (Result) -> Void = { _ in }) throws -> [Result] {
        var results: [Result] = []
        func record(_ name: String, _ ours: Tensor, _ theirs: Tensor, since start: Date) {
            let e = relativeError(ours, theirs)
            let r = Result(component: name, error: e, passed: e <= tolerance, seconds: Date().timeIntervalSince(start))
            results.append(r)
            report(r)
        }
        try GradMode.withoutGrad {
            var start = Date()
            let ids = try reference.tensor("ids").array.map { Int($0) }
            let ok = model.tokenIDs(prompt) + model.tokenIDs("") == ids
            let r = Result(component: "token ids", error: nil, passed: ok, seconds: Date().timeIntervalSince(start))
            results.append(r)
            report(r)

            start = Date()
            record("text encoder", model.encode([prompt, ""]), try reference.tensor("text"), since: start)

            start = Date()
            let capture = AttentionCapture(keepOnTape: false, conditionalHalfOnly: false)
            let t = try reference.tensor("unet.t").array
            let out = model.unet(try reference.tensor("unet.x"), timesteps: t, context: try reference.tensor("text"), capture: capture)
            record("UNet", out, try reference.tensor("unet.out"), since: start)
            if let layer = capture.layers.first(where: { $0.layer == captured }) {
                record("cross-attention probabilities (\(captured))", layer.probabilities, try reference.tensor("attn.probs"), since: start)
            } else {
                let r = Result(component: "cross-attention probabilities: layer \(captured) not captured", error: nil, passed: false, seconds: 0)
                results.append(r)
                report(r)
            }

            start = Date()
            record("VAE decode", model.vae.decode(try reference.tensor("vae.z")), try reference.tensor("vae.decoded"), since: start)
            start = Date()
            record("VAE encode (mean)", model.vae.encode(try reference.tensor("vae.x")), try reference.tensor("vae.mean"), since: start)
        }
        let start = Date()
        let latents = try reference.tensor("ddim.latents")
        let saved = model.latentSize
        model.latentSize = latents.shape[2]
        defer { model.latentSize = saved }
        let settings = SamplerSettings(prompt: prompt, steps: 3, guidanceScale: 7.5)
        let out = try Sampler(model: model).run(settings, startLatents: latents)
        record("3 DDIM steps (CFG 7.5)", out, try reference.tensor("ddim.out"), since: start)
        let image = GradMode.withoutGrad { model.decode(out) * 0.5 + 0.5 }
        record("decoded image", image, try reference.tensor("ddim.image"), since: start)
        return results
    }
}
