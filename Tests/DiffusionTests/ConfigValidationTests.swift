import Foundation
import Testing
@testable import Diffusion
@testable import Tensors

/// Config values that crashed the -Ounchecked release build (hostile-input-test §2b) are refused by
/// the validators with a line naming the field; the memory estimate matches the built modules.
@Suite struct ConfigValidationTests {
    static var tinyUNet: UNet2DConditionConfig { try! ModelFolder(path: TinySD.folder("tiny-sd")).unetConfig }
    static var tinyText: CLIPTextConfig { try! ModelFolder(path: TinySD.folder("tiny-sd")).textEncoderConfig }
    static var tinyVAE: AutoencoderKLConfig { try! ModelFolder(path: TinySD.folder("tiny-sd")).vaeConfig }

    func expectRejected(_ fragment: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("accepted (expected an error mentioning '\(fragment)')", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)".contains(fragment), "'\(fragment)' not in: \(error)", sourceLocation: sourceLocation)
            #expect(!"\(error)".contains("\n"), "not one line: \(error)", sourceLocation: sourceLocation)
        }
    }

    static let huge = 1 << 62

    @Test(arguments: [
        ("norm_num_groups", 0), ("norm_num_groups", -8), ("attention_head_dim", 0), ("attention_head_dim", -1),
        ("num_attention_heads", 0), ("sample_size", 0), ("sample_size", -1), ("sample_size", huge), ("sample_size", 7),
        ("downsample_padding", -8), ("downsample_padding", 1_000_000_000), ("block_out_channels", -8),
        ("block_out_channels", huge), ("layers_per_block", -1), ("layers_per_block", 100_000_000), ("in_channels", -1),
        ("cross_attention_dim", 0), ("freq_shift", 5),
    ])
    func unetValuesThatCrashedAreRejected(field: String, value: Int) {
        var c = Self.tinyUNet
        switch field {
        case "norm_num_groups": c.norm_num_groups = value
        case "attention_head_dim": c.attention_head_dim = .one(value)
        case "num_attention_heads": c.num_attention_heads = .one(value)
        case "sample_size": c.sample_size = value
        case "downsample_padding": c.downsample_padding = value
        case "block_out_channels": c.block_out_channels[0] = value
        case "layers_per_block": c.layers_per_block = value
        case "in_channels": c.in_channels = value
        case "cross_attention_dim": c.cross_attention_dim = value
        default: c.freq_shift = value
        }
        let name = field == "attention_head_dim" || field == "num_attention_heads" ? "heads" : field
        expectRejected(name) { try c.validate() }
        expectRejected(name) { _ = try UNet2DConditionModel(config: c) }
    }

    /// Sets each (field, value) on a copy of `base` and expects validation to name the field.
    func expectEachRejected<C>(_ base: C, _ cases: [(String, WritableKeyPath<C, Int>, Int)], validate: (C) throws -> Void,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        for (name, field, value) in cases {
            var c = base
            c[keyPath: field] = value
            expectRejected(name, sourceLocation: sourceLocation) { try validate(c) }
        }
    }

    @Test func textEncoderValuesThatCrashedAreRejected() {
        expectEachRejected(Self.tinyText, [
            ("num_attention_heads", \.num_attention_heads, 0), ("num_attention_heads", \.num_attention_heads, -1),
            ("divisible", \.num_attention_heads, 3), ("intermediate_size", \.intermediate_size, -1),
            ("intermediate_size", \.intermediate_size, Self.huge), ("vocab_size", \.vocab_size, 100_000_000),
            ("max_position_embeddings", \.max_position_embeddings, 0), ("num_hidden_layers", \.num_hidden_layers, -8),
            ("num_hidden_layers", \.num_hidden_layers, Self.huge), ("hidden_size", \.hidden_size, 0),
        ], validate: { try $0.validate() })
    }

    @Test func vaeValuesThatCrashedAreRejected() {
        expectEachRejected(Self.tinyVAE, [
            ("in_channels", \.in_channels, -1), ("out_channels", \.out_channels, Int.max), ("norm_num_groups", \.norm_num_groups, 0),
            ("layers_per_block", \.layers_per_block, -1), ("block_out_channels", \.block_out_channels[1], 100_000_000),
            ("latent_channels", \.latent_channels, 0),
        ], validate: { try $0.validate() })
    }

    @Test func schedulersMustBePhysical() {
        var c = SchedulerConfig()
        c.beta_start = 2
        expectRejected("beta_start") { try c.validate() }
        c = SchedulerConfig(); c.beta_end = -1
        expectRejected("beta_end") { try c.validate() }
        c = SchedulerConfig(); c.beta_start = 0.02; c.beta_end = 0.01
        expectRejected("must not decrease") { try c.validate() }
        c = SchedulerConfig(); c.num_train_timesteps = 0
        expectRejected("num_train_timesteps") { try c.validate() }
        c = SchedulerConfig(); c.num_train_timesteps = Int.max
        expectRejected("num_train_timesteps") { try c.validate() }
        c = SchedulerConfig(); c.steps_offset = Int.max
        expectRejected("steps_offset") { try c.validate() }
        c = SchedulerConfig(); c.beta_start = .nan
        expectRejected("beta_start") { try c.validate() }
        // T = 1 is valid and gives a finite schedule (was 0/0 = NaN).
        c = SchedulerConfig(); c.num_train_timesteps = 1; c.steps_offset = 0
        #expect(throws: Never.self) { try c.validate() }
        #expect(c.alphasCumprod().count == 1 && c.alphasCumprod()[0].isFinite)
        #expect(!c.accepts(steps: 2) && c.accepts(steps: 1))
    }

    @Test func theValidatorNoLongerDividesByZeroThroughAFolder() throws {
        let scratch = try ScratchFolder(copying: "tiny-sd")
        try scratch.editJSON("unet/config.json") { $0["norm_num_groups"] = 0 }
        expectRejected("norm_num_groups = 0") { _ = try ModelFolder(path: scratch.path) }
    }

    @Test func parameterCountsMatchTheBuiltModules() throws {
        func count(_ m: Module) -> Double { Double(m.namedParameters().reduce(0) { $0 + $1.tensor.count }) }
        for name in ["tiny-sd", "tiny-sd2"] {
            let f = try ModelFolder(path: TinySD.folder(name))
            #expect(f.unetConfig.parameterCount == count(try UNet2DConditionModel(config: f.unetConfig)), "\(name) unet")
            #expect(f.textEncoderConfig.parameterCount == count(try CLIPTextModel(config: f.textEncoderConfig)), "\(name) text")
            #expect(f.vaeConfig.parameterCount == count(try AutoencoderKL(config: f.vaeConfig)), "\(name) vae")
        }
        var u = Self.tinyUNet
        u.layers_per_block = 2; u.use_linear_projection = true; u.attention_head_dim = .list([2, 4])
        #expect(u.parameterCount == count(try UNet2DConditionModel(config: u)))
        var v = Self.tinyVAE
        v.mid_block_add_attention = false; v.use_quant_conv = false; v.layers_per_block = 2
        #expect(v.parameterCount == count(try AutoencoderKL(config: v)))
        // SD 1.5's published counts: UNet 859,520,964, CLIP ViT-L/14 text 123,060,480, VAE 83,653,863.
        #expect(UNet2DConditionConfig().parameterCount == 859_520_964)
        #expect(CLIPTextConfig().parameterCount == 123_060_480)
        #expect(AutoencoderKLConfig().parameterCount == 83_653_863)
    }

    @Test func anOversizedModelIsRefusedBeforeLoading() throws {
        let scratch = try ScratchFolder(copying: "tiny-sd")
        // In range but big: 8192-channel blocks are ~10 GB of fp32 weights.
        try scratch.editJSON("unet/config.json") { $0["block_out_channels"] = [8192, 8192]; $0["norm_num_groups"] = 32 }
        try scratch.editJSON("vae/config.json") { _ in }
        let folder = try ModelFolder(path: scratch.path)
        let estimate = folder.memoryEstimate()
        #expect(estimate.weightBytes > 10e9)
        expectRejected("needs about") { try estimate.check(model: "this model", limit: 8e9) }
        expectRejected("more than the 1 MB available") {
            _ = try StableDiffusionModel(path: TinySD.folder("tiny-sd"), memoryLimit: 1e6)
        }
        #expect(throws: Never.self) { _ = try StableDiffusionModel(path: TinySD.folder("tiny-sd"), memoryLimit: 1e9) }
        expectRejected("latent size 3") { _ = try StableDiffusionModel(path: TinySD.folder("tiny-sd"), latentSize: 3) }
        #expect(MemoryEstimate.parseBytes("2G") == 2_147_483_648 && MemoryEstimate.parseBytes("-1") == nil)
    }

    @Test func vocabularyIdsMustFitTheEmbeddings() throws {
        let scratch = try ScratchFolder(copying: "tiny-sd")
        let url = URL(fileURLWithPath: scratch.path + "/tokenizer/vocab.json")
        var vocab = try JSONDecoder().decode([String: Int].self, from: Data(contentsOf: url))
        vocab["<|endoftext|>"] = 1000  // the text encoder has 1000 embeddings: ids 0…999
        try JSONEncoder().encode(vocab).write(to: url)
        expectRejected("outside the text encoder's 1000 embeddings") { _ = try ModelFolder(path: scratch.path).loadTokenizer() }
        vocab["<|endoftext|>"] = -1
        try JSONEncoder().encode(vocab).write(to: url)
        expectRejected("negative or too large") { _ = try ModelFolder(path: scratch.path).loadTokenizer() }
    }

    @Test func aNaNWeightIsNamed() throws {
        let scratch = try ScratchFolder(copying: "tiny-sd")
        let file = scratch.path + "/unet/diffusion_pytorch_model.safetensors"
        let st = try SafetensorsFile(path: file)
        var tensors = try st.names.map { ($0, try st.tensor($0)) }
        let k = tensors.firstIndex { $0.0 == "mid_block.resnets.0.conv1.weight" }!
        tensors[k].1.pointer[5] = .nan
        try writeSafetensors(tensors, to: file)
        expectRejected("'mid_block.resnets.0.conv1.weight' holds NaN at element 5") { _ = try ModelFolder(path: scratch.path).loadUNet() }
        tensors[k].1.pointer[5] = -.infinity
        try writeSafetensors(tensors, to: file)
        expectRejected("-Inf at element 5") { _ = try ModelFolder(path: scratch.path).loadUNet() }
    }
}
