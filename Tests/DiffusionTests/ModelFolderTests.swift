import Foundation
import Testing
@testable import Diffusion
@testable import Tensors

/// A writable copy of a fixture folder, removed at deinit.
final class ScratchFolder {
    let path: String
    init(copying name: String) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-\(name)-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: TinySD.folder(name), toPath: path)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Rewrites one JSON file through `edit`.
    func editJSON(_ file: String, _ edit: (inout [String: Any]) -> Void) throws {
        let url = URL(fileURLWithPath: path + "/" + file)
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: url)
    }
}

@Suite struct ModelFolderTests {
    /// Runs `body`, expecting a ModelFolderError whose message contains every fragment.
    func expectError(_ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("no error (expected one mentioning \(fragments))", sourceLocation: sourceLocation)
        } catch let e as ModelFolderError {
            for f in fragments { #expect(e.description.contains(f), "'\(f)' not in: \(e.description)", sourceLocation: sourceLocation) }
        } catch {
            Issue.record("unexpected error type: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func readsBothFixtureFolders() throws {
        let sd1 = try ModelFolder(path: TinySD.folder("tiny-sd"))
        #expect(sd1.schedulerClass == "PNDMScheduler" && sd1.schedulerConfig.prediction_type == "epsilon")
        #expect(sd1.schedulerConfig.steps_offset == 1 && !sd1.schedulerConfig.clip_sample)
        #expect(sd1.unetWeights.hasSuffix("unet/diffusion_pytorch_model.safetensors"))
        #expect(!sd1.unetConfig.use_linear_projection && sd1.textEncoderConfig.hidden_act == "quick_gelu")
        let sd2 = try ModelFolder(path: TinySD.folder("tiny-sd2"))
        #expect(sd2.schedulerClass == "DDIMScheduler" && sd2.schedulerConfig.prediction_type == "v_prediction")
        #expect(sd2.unetWeights.hasSuffix("unet/diffusion_pytorch_model.fp16.safetensors"))
        #expect(sd2.textEncoderWeights.hasSuffix("text_encoder/model.fp16.safetensors"))
        #expect(sd2.unetConfig.use_linear_projection && sd2.unetConfig.heads(block: 1) == 4 && sd2.textEncoderConfig.hidden_act == "gelu")
        #expect(try sd2.loadTokenizer().padID == 0 && sd1.loadTokenizer().padID == 999)
    }

    @Test func modelConformsToTheSamplerProtocol() throws {
        let model = try StableDiffusionModel(path: TinySD.folder("tiny-sd"))
        #expect(model.latentShape == [4, 8, 8] && model.imageSize == 16 && model.sequenceLength == 77 && model.tokenOffset == 1)
        let tokens = model.tokens("a red cube")
        // the 1,000-entry vocabulary splits "cube" into pieces
        #expect(tokens.first?.range == 0..<1 && tokens.last?.range.upperBound == 10)
        #expect(tokens.map(\.id) == Array(model.tokenIDs("a red cube")[1...tokens.count]))
        var rng = RNG(seed: 1)
        let latents = Tensor.randn([1, 4, 8, 8], rng: &rng)
        let preview = model.preview(latents)
        #expect(preview.shape == [1, 3, 8, 8] && preview.array.allSatisfy { abs($0) <= 1 })
        // encode → decode shapes and range
        let image = GradMode.withoutGrad { model.decode(model.encodeImages(Tensor.rand([1, 3, 16, 16], rng: &rng, low: -1, high: 1))) }
        #expect(image.shape == [1, 3, 16, 16] && image.array.allSatisfy { abs($0) <= 1 })
        #expect(model.weightsHash.count == 16)
    }

    @Test func legacyVAEKeysAreRenamed() {
        #expect(ModelFolder.modernVAEKey("encoder.mid_block.attentions.0.query.weight") == "encoder.mid_block.attentions.0.to_q.weight")
        #expect(ModelFolder.modernVAEKey("decoder.mid_block.attentions.0.proj_attn.bias") == "decoder.mid_block.attentions.0.to_out.0.bias")
        #expect(ModelFolder.modernVAEKey("decoder.mid_block.attentions.0.group_norm.bias") == "decoder.mid_block.attentions.0.group_norm.bias")
    }

    @Test func missingFolderAndFiles() throws {
        expectError(["model folder not found", "/nonexistent/sd"]) { _ = try ModelFolder(path: "/nonexistent/sd") }
        let s = try ScratchFolder(copying: "tiny-sd")
        try FileManager.default.removeItem(atPath: s.path + "/vae/config.json")
        expectError(["missing file", "vae/config.json"]) { _ = try ModelFolder(path: s.path) }
        let t = try ScratchFolder(copying: "tiny-sd")
        try FileManager.default.removeItem(atPath: t.path + "/unet/diffusion_pytorch_model.safetensors")
        expectError(["missing file", "unet/diffusion_pytorch_model.safetensors"]) { _ = try ModelFolder(path: t.path) }
        try Data().write(to: URL(fileURLWithPath: t.path + "/unet/diffusion_pytorch_model.bin"))
        expectError(["unet", ".bin", "convert"]) { _ = try ModelFolder(path: t.path) }
        let u = try ScratchFolder(copying: "tiny-sd")
        try FileManager.default.removeItem(atPath: u.path + "/tokenizer/merges.txt")
        expectError(["missing file", "tokenizer/merges.txt"]) { _ = try ModelFolder(path: u.path).loadTokenizer() }
    }

    @Test func otherPipelinesAreRefusedByName() throws {
        for (cls, words) in [("StableDiffusionXLPipeline", "SDXL"), ("FluxPipeline", "Flux"), ("StableDiffusion3Pipeline", "SD3"),
                             ("StableDiffusionInpaintPipeline", "task-specific"), ("KandinskyPipeline", "unknown")] {
            let s = try ScratchFolder(copying: "tiny-sd")
            try s.editJSON("model_index.json") { $0["_class_name"] = cls }
            expectError(["model_index.json", cls, words, "StableDiffusionPipeline"]) { _ = try ModelFolder(path: s.path) }
        }
        let s = try ScratchFolder(copying: "tiny-sd")
        try s.editJSON("model_index.json") { $0["text_encoder"] = ["transformers", "T5EncoderModel"] }
        expectError(["model_index.json", "text_encoder is T5EncoderModel"]) { _ = try ModelFolder(path: s.path) }
    }

    @Test func unsupportedConfigValuesAreNamed() throws {
        let cases: [(String, String, Any, [String])] = [
            ("scheduler/scheduler_config.json", "prediction_type", "sample", ["scheduler_config.json", "prediction_type sample"]),
            ("scheduler/scheduler_config.json", "beta_schedule", "squaredcos_cap_v2", ["scheduler_config.json", "squaredcos_cap_v2"]),
            ("scheduler/scheduler_config.json", "rescale_betas_zero_snr", true, ["scheduler_config.json", "rescale_betas_zero_snr = true"]),
            ("scheduler/scheduler_config.json", "timestep_spacing", "karras", ["scheduler_config.json", "timestep_spacing karras"]),
            ("unet/config.json", "class_embed_type", "timestep", ["unet/config.json", "class_embed_type = \"timestep\""]),
            ("unet/config.json", "resnet_time_scale_shift", "scale_shift", ["unet/config.json", "resnet_time_scale_shift"]),
            ("unet/config.json", "up_block_types", ["UpBlock2D", "SimpleCrossAttnUpBlock2D"], ["unet/config.json", "SimpleCrossAttnUpBlock2D"]),
            ("text_encoder/config.json", "hidden_act", "relu", ["text_encoder/config.json", "hidden_act relu"]),
            ("vae/config.json", "shift_factor", 0.1159, ["vae/config.json", "shift_factor"]),
        ]
        for (file, key, value, fragments) in cases {
            let s = try ScratchFolder(copying: "tiny-sd")
            try s.editJSON(file) { $0[key] = value }
            expectError(fragments) { _ = try ModelFolder(path: s.path) }
        }
        let s = try ScratchFolder(copying: "tiny-sd")
        try s.editJSON("unet/config.json") { $0["cross_attention_dim"] = 64 }
        expectError(["hidden_size 32", "cross_attention_dim 64"]) { _ = try ModelFolder(path: s.path) }
    }

    @Test func truncatedWeightsNameTheFile() throws {
        let s = try ScratchFolder(copying: "tiny-sd")
        let file = s.path + "/vae/diffusion_pytorch_model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: file))
        let folder = try ModelFolder(path: s.path)
        expectError([file, "truncated or corrupt"]) { _ = try folder.loadVAE() }
    }

    @Test func mismatchedShapesAndKeysNameTheFileAndKeys() throws {
        // conv-shaped proj_in/out in the file, linear projection in the config
        let s = try ScratchFolder(copying: "tiny-sd")
        try s.editJSON("unet/config.json") { $0["use_linear_projection"] = true }
        expectError(["unet/diffusion_pytorch_model.safetensors", "mis-shaped", "'down_blocks.0.attentions.0.proj_in.weight' (model [8, 8], file [8, 8, 1, 1])"]) {
            _ = try ModelFolder(path: s.path).loadUNet()
        }
        // more layers in the config than in the file
        let t = try ScratchFolder(copying: "tiny-sd")
        try t.editJSON("text_encoder/config.json") { $0["num_hidden_layers"] = 3 }
        expectError(["text_encoder/model.safetensors", "missing key", "text_model.encoder.layers.2."]) { _ = try ModelFolder(path: t.path).loadTextEncoder() }
        // an extra tensor and an extra integer buffer
        let u = try ScratchFolder(copying: "tiny-sd")
        let file = u.path + "/vae/diffusion_pytorch_model.safetensors"
        var tensors = try SafetensorsFile(path: file).tensors().map { ($0.key, $0.value) }
        tensors.append(("decoder.extra.weight", Tensor(zeros: [2])))
        try writeSafetensors(tensors, to: file)
        expectError([file, "1 unexpected key(s): 'decoder.extra.weight'"]) { _ = try ModelFolder(path: u.path).loadVAE() }
    }

    @Test func sd2TextEncoderDepthAndGeluJustWork() throws {
        // SD2's OpenCLIP-H config: 23 layers, gelu — the config alone decides; here 1 layer, weights missing the other.
        let s = try ScratchFolder(copying: "tiny-sd2")
        try s.editJSON("text_encoder/config.json") { $0["num_hidden_layers"] = 1 }
        expectError(["text_encoder/model.fp16.safetensors", "unexpected key", "encoder.layers.1."]) { _ = try ModelFolder(path: s.path).loadTextEncoder() }
        var c = CLIPTextConfig()
        c.num_hidden_layers = 23; c.hidden_act = "gelu"; c.hidden_size = 64; c.num_attention_heads = 4; c.intermediate_size = 8; c.vocab_size = 10
        let m = try CLIPTextModel(config: c)
        #expect(m.text_model.encoder.layers.count == 23)
    }
}
