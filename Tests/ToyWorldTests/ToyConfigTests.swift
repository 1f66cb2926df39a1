import Foundation
import Testing
import Diffusion
import Tensors
import ToyWorld

/// The embedded model's config is validated like an SD folder's (it was not validated at all: `image_size`
/// 33 corrupted the heap, `max_tokens` 0 asked for 2⁶⁴ bytes, negative heads gave `free(): invalid size`).
@Suite struct ToyConfigTests {
    static let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Assets/toy").path

    func rejected(_ edit: (inout ToyModelConfig) -> Void, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        var c = ToyModelConfig.small
        edit(&c)
        do {
            try c.validate()
            Issue.record("accepted (expected '\(fragment)')", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)".contains(fragment), "'\(fragment)' not in: \(error)", sourceLocation: sourceLocation)
        }
        #expect(throws: (any Error).self, sourceLocation: sourceLocation) { _ = try ToyModel(config: c) }
    }

    @Test func theShippedAndDefaultConfigsValidate() throws {
        try ToyModelConfig.small.validate()
        try ToyModelConfig.load(jsonFile: Self.shipped + "/config.json").validate()
    }

    @Test func valuesThatCrashedAreRejected() {
        rejected({ $0.image_size = 33; $0.unet.sample_size = 33 }, "sample_size 33 is not divisible by 4")
        rejected({ $0.image_size = 33 }, "image_size 33")
        rejected({ $0.image_size = -1 }, "image_size -1")
        rejected({ $0.image_size = 1 << 62 }, "image_size")
        rejected({ $0.max_tokens = 0 }, "max_tokens 0")
        rejected({ $0.max_tokens = 1 }, "max_tokens 1")
        rejected({ $0.max_tokens = 17 }, "max_tokens 17")
        rejected({ $0.text_encoder.max_position_embeddings = 2 }, "max_tokens 16 must be in 3…2")  // found by FuzzTests: an inverted range trapped
        rejected({ $0.text_encoder.num_attention_heads = -1 }, "num_attention_heads = -1")
        rejected({ $0.text_encoder.num_attention_heads = 0 }, "num_attention_heads = 0")
        rejected({ $0.unet.attention_head_dim = .one(0) }, "heads")
        rejected({ $0.unet.attention_head_dim = .one(-1) }, "heads")
        rejected({ $0.unet.in_channels = -1 }, "in_channels")
        rejected({ $0.unet.out_channels = 4 }, "RGB pixels")
        rejected({ $0.unet.sample_size = 0 }, "sample_size")
        rejected({ $0.unet.sample_size = 16 }, "unet.sample_size 16 ≠ image_size 32")
        rejected({ $0.unet.norm_eps = 0 }, "norm_eps")
        rejected({ $0.text_encoder.vocab_size = 5 }, "vocab_size")
        rejected({ $0.text_encoder.hidden_size = 32; $0.text_encoder.num_attention_heads = 4 }, "cross_attention_dim")
        rejected({ $0.scheduler.beta_end = 2 }, "beta_end")
        rejected({ $0.scheduler.num_train_timesteps = 0 }, "num_train_timesteps")
        rejected({ $0.default_steps = 0 }, "default_steps")
        rejected({ $0.default_guidance = .nan }, "default_guidance")
    }

    @Test func aBadConfigFileIsNamedWhenLoading() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("toy-config-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Self.shipped, toPath: dir)
        let url = URL(fileURLWithPath: dir + "/config.json")
        let text = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "\"image_size\" : 32", with: "\"image_size\" : 33")
        try text.write(to: url, atomically: true, encoding: .utf8)
        #expect { _ = try ToyModel.load(directory: dir) } throws: { "\($0)".contains(dir + "/config.json: image_size 33") }
    }

    @Test func theMemoryEstimateCoversTheWeights() throws {
        let model = try ToyModel(config: .small)
        let params = (model.unet.namedParameters() + model.textEncoder.namedParameters()).reduce(0) { $0 + $1.tensor.count }
        #expect(ToyModelConfig.small.memoryEstimate.weightBytes == Double(4 * params))
        #expect(throws: (any Error).self) { try ToyModelConfig.small.memoryEstimate.check(model: "toy", limit: 1e6) }
    }

    @Test func nanWeightsAreNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("toy-nan-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ToyModel(config: .small, seed: 2)
        model.textEncoder.text_model.final_layer_norm.weight.pointer[3] = .infinity
        try model.save(directory: dir, dtype: .f32)
        #expect { _ = try ToyModel.load(directory: dir) } throws: {
            "\($0)".contains("text_encoder.safetensors: tensor text_model.final_layer_norm.weight: +Inf at element 3")
        }
    }
}
