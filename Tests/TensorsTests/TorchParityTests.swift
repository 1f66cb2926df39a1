import Foundation
import Testing
@testable import Tensors

/// Parity with PyTorch on fixed inputs: Scripts/make_tensor_fixtures.py stored inputs, outputs and the
/// input gradients of Σ out·r (r stored too) in Fixtures/torch_parity.safetensors.
@Suite("PyTorch parity") struct TorchParityTests {
    static let file: SafetensorsFile = {
        let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("torch_parity.safetensors")
        return try! SafetensorsFile(path: url.path)
    }()

    /// Runs `f` on the stored inputs, compares output and gradients with max-abs error ≤ tol·max(1, scale).
    func check(_ name: String, inputs n: Int, tol: Float = 1e-4, _ f: ([Tensor]) -> Tensor) throws {
        let file = Self.file
        let inputs = try (0..<n).map { try file.tensor("\(name).in\($0)") }
        for t in inputs { t.requiresGrad = true }
        let out = f(inputs)
        let expected = try file.tensor("\(name).out")
        #expect(out.count == expected.count, "\(name): output \(out.shape) vs \(expected.shape)")
        let scale = max(1, expected.maxAbs)
        let err = zip(out.array, expected.array).map { abs($0 - $1) }.max() ?? 0
        #expect(err <= tol * scale, "\(name): output max-abs error \(err)")
        let r = try file.tensor("\(name).upstream").reshaped(out.shape)
        (out * r).sum().backward()
        for i in 0..<n {
            let g = inputs[i].grad ?? Tensor(zeros: inputs[i].shape)
            let eg = try file.tensor("\(name).grad\(i)")
            let gs = max(1, eg.maxAbs)
            let ge = zip(g.array, eg.array).map { abs($0 - $1) }.max() ?? 0
            #expect(ge <= tol * gs, "\(name): grad of input \(i) max-abs error \(ge)")
        }
    }

    @Test func conv2dMatchesTorch() throws {
        try check("conv_s1p1", inputs: 3) { conv2d($0[0], weight: $0[1], bias: $0[2], stride: 1, padding: 1) }
        try check("conv_s2p1", inputs: 3) { conv2d($0[0], weight: $0[1], bias: $0[2], stride: 2, padding: 1) }
        try check("conv_1x1", inputs: 3) { conv2d($0[0], weight: $0[1], bias: $0[2]) }
    }

    @Test func normsMatchTorch() throws {
        try check("groupnorm", inputs: 3) { groupNorm($0[0], groups: 4, weight: $0[1], bias: $0[2], eps: 1e-5) }
        try check("groupnorm_eps6", inputs: 3) { groupNorm($0[0], groups: 2, weight: $0[1], bias: $0[2], eps: 1e-6) }
        try check("layernorm", inputs: 3) { layerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-5) }
    }

    @Test func attentionMatchesTorch() throws {
        try check("sdpa", inputs: 3) { scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2]).output }
        try check("sdpa_probs", inputs: 3) {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], returnProbabilities: true).probabilities!
        }
    }

    @Test func resizeMatchesTorch() throws {
        try check("bilinear_64_16", inputs: 1) { $0[0].resizeBilinear(height: 16, width: 16) }
        try check("bilinear_32_16", inputs: 1) { $0[0].resizeBilinear(height: 16, width: 16) }
        try check("bilinear_8_16", inputs: 1) { $0[0].resizeBilinear(height: 16, width: 16) }
        try check("bilinear_5x7_3x11", inputs: 1) { $0[0].resizeBilinear(height: 3, width: 11) }
        try check("nearest2x", inputs: 1) { $0[0].upsampleNearest2x() }
    }

    @Test func pointwiseAndSoftmaxMatchTorch() throws {
        try check("gelu", inputs: 1) { $0[0].gelu() }
        try check("gelu_tanh", inputs: 1) { $0[0].gelu(approximate: true) }
        try check("silu", inputs: 1) { $0[0].silu() }
        try check("softmax", inputs: 1) { $0[0].softmax() }
        try check("log_softmax", inputs: 1) { $0[0].logSoftmax() }
        let targets = try Self.file.tensor("cross_entropy.targets").array.map { Int($0) }
        try check("cross_entropy", inputs: 1) { crossEntropy($0[0], targets: targets).reshaped([1]) }
    }
}
