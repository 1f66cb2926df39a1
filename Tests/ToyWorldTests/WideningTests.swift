import Foundation
import Testing
import Tensors
import ToyWorld

/// `ToyModel.widened`: a UNet twice as wide that computes the same function (Net2WiderNet).
@Suite struct WideningTests {
    private static func maxRelativeError(_ a: Tensor, _ b: Tensor) -> Float {
        let x = a.array, y = b.array
        let scale = max(x.map(abs).max() ?? 0, 1e-6)
        return zip(x, y).map { abs($0 - $1) }.max()! / scale
    }

    /// Same prediction and the same cross-attention maps, with the symmetry-breaking noise on.
    @Test func widenedModelComputesTheSameFunction() throws {
        let narrow = try ToyModel(config: .small, seed: 3)
        // A random model's weights are small; scale the norms' gains so every block matters.
        for (name, t) in narrow.unet.stateDict() where name.hasSuffix("norm1.weight") || name.hasSuffix("norm2.weight") {
            for i in 0..<t.count { t.pointer[i] = 1 + 0.5 * Float((i * 7) % 5) / 5 }
        }
        let wide = try narrow.widened(symmetryNoise: 0.05, seed: 9)
        #expect(wide.config.unet.block_out_channels == [64, 128, 128])
        #expect(wide.config.text_encoder == narrow.config.text_encoder)
        #expect(wide.unet.parameterCount > 3 * narrow.unet.parameterCount)

        var rng = RNG(seed: 21)
        let sample = Tensor.randn([2, 3, 32, 32], rng: &rng)
        let context = narrow.encode(["a red circle to the left of a blue square", ""])
        #expect(Self.maxRelativeError(context, wide.encode(["a red circle to the left of a blue square", ""])) == 0)
        let timesteps: [Float] = [37, 701]
        let a = narrow.unet(sample, timesteps: timesteps, context: context)
        let b = wide.unet(sample, timesteps: timesteps, context: context)
        #expect(Self.maxRelativeError(a, b) < 1e-4)

        let mapsA = narrow.unet.crossAttention(sample, timesteps: timesteps, context: context)
        let mapsB = wide.unet.crossAttention(sample, timesteps: timesteps, context: context)
        #expect(mapsA.count == mapsB.count && !mapsA.isEmpty)
        for (x, y) in zip(mapsA, mapsB) {
            #expect(x.layer == y.layer && x.heads == y.heads)
            #expect(Self.maxRelativeError(x.probabilities, y.probabilities) < 1e-4)
        }
    }

    /// The two copies of an input channel get different weights (so training separates them), and
    /// they still sum to the narrow weight; without noise they are equal halves.
    @Test func copiesDifferButSumToTheNarrowWeight() throws {
        let narrow = try ToyModel(config: .small, seed: 4)
        let name = "down_blocks.1.resnets.0.conv2.weight"
        let old = try #require(narrow.unet.stateDict().first { $0.0 == name }?.1)
        for noise: Float in [0, 0.05] {
            let wide = try narrow.widened(symmetryNoise: noise, seed: 1)
            let new = try #require(wide.unet.stateDict().first { $0.0 == name }?.1)
            #expect(new.shape == [128, 128, 3, 3])
            // Output row 5 copies old row 2; input columns 6 and 7 are the two halves of old column 3.
            let o = 5, c = 3
            var differs = false
            for k in 0..<9 {
                let even = new.pointer[(o * 128 + 2 * c) * 9 + k], odd = new.pointer[(o * 128 + 2 * c + 1) * 9 + k]
                let narrowValue = old.pointer[((o / 2) * 64 + c) * 9 + k]
                #expect(abs(even + odd - narrowValue) < 1e-6)
                if abs(even - odd) > 1e-7 { differs = true }
            }
            #expect(differs == (noise > 0))
        }
    }
}
