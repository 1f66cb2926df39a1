import Testing
@testable import Diffusion
@testable import Tensors

@Suite struct UNetTests {
    /// The truncated steering pass sees every cross-attention layer with the same maps as a full pass.
    @Test func crossAttentionMatchesACapturedFullPass() throws {
        let model = try StableDiffusionModel(path: TinySD.folder("tiny-sd"))
        let context = model.encode([TinySD.prompt])
        let x = Sampler(model: model).initialNoise(seed: 2)
        let capture = AttentionCapture(keepOnTape: true)
        let (full, maps) = GradMode.withoutGrad {
            (model.unet(x, timesteps: [500], context: context, capture: capture),
             model.unet.crossAttention(x, timesteps: [500], context: context))
        }
        #expect(full.shape == x.shape)
        #expect(maps.count == model.unet.crossAttentionLayerCount)
        #expect(maps.map(\.layer) == capture.layers.map(\.layer))
        for (a, b) in zip(maps, capture.layers) { #expect(a.probabilities.array == b.probabilities.array, "\(a.layer)") }
    }
}
