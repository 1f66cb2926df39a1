import Foundation
import Tensors
import Diffusion

/// Configuration of the embedded toy text-to-image model (Assets/toy/config.json).
public struct ToyModelConfig: Codable, Equatable, Sendable {
    public var image_size: Int = 32
    public var max_tokens: Int = 16
    public var unet: UNet2DConditionConfig
    public var text_encoder: CLIPTextConfig
    public var scheduler: SchedulerConfig = .pixelSpace
    /// Default sampling settings for this model. The shipped config says 15: fewer DDIM steps drew the
    /// named objects exactly once more often (tuning list: `exact` 0.881 at 15, 0.833 at 50, 0.744 at
    /// 100; README "Denoising steps, measured"). 50 here is for configs that do not say.
    public var default_steps: Int = 50
    /// 1.5, by measurement on the v2 step-7,250 weights: 1.25 had the best base `exact` on the tuning
    /// prompts (0.80 vs 0.73) and held out (0.76 vs 0.72), but lowered steered accuracy (0.90 vs 0.92)
    /// and every chain figure (steered success 0.655 vs 0.700, exact 0.600 vs 0.665); README "The
    /// embedded model".
    public var default_guidance: Float = 1.5

    /// The default size: UNet 32/64/64 channels at 32/16/8 px with cross-attention at 16 and 8, a
    /// 2-layer causal text transformer of width 64 over the world's word vocabulary.
    public static var small: ToyModelConfig {
        var u = UNet2DConditionConfig()
        u.in_channels = 3; u.out_channels = 3
        u.block_out_channels = [32, 64, 64]
        u.layers_per_block = 1
        u.down_block_types = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
        u.up_block_types = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
        u.attention_head_dim = .one(4)
        u.cross_attention_dim = 64
        u.norm_num_groups = 16
        u.sample_size = 32
        var t = CLIPTextConfig()
        t.vocab_size = WordTokenizer.vocabulary.count
        t.hidden_size = 64; t.intermediate_size = 256; t.num_attention_heads = 4; t.num_hidden_layers = 2
        t.max_position_embeddings = 16; t.hidden_act = "quick_gelu"
        return ToyModelConfig(unet: u, text_encoder: t)
    }

    public init(unet: UNet2DConditionConfig, text_encoder: CLIPTextConfig) {
        self.unet = unet
        self.text_encoder = text_encoder
    }

    /// Checks every field (each part's ranges, then how the parts fit together: RGB pixel latents,
    /// `image_size` through the UNet's down-sampling, token counts within the encoder's positions and
    /// the word vocabulary within its embeddings); throws a message naming `file` and the field.
    public func validate(file: String = "toy/config.json") throws {
        try unet.validate(file: "\(file) unet")
        try text_encoder.validate(file: "\(file) text_encoder")
        try scheduler.validate(file: "\(file) scheduler")
        func fail(_ m: String) -> ConfigError { ConfigError.unsupported("\(file): \(m)") }
        guard unet.in_channels == 3, unet.out_channels == 3 else {
            throw fail("unet in/out_channels \(unet.in_channels)/\(unet.out_channels) (the toy model works on RGB pixels: 3/3)")
        }
        let factor = 1 << (unet.block_out_channels.count - 1)
        guard (1...256).contains(image_size), image_size % factor == 0 else {
            throw fail("image_size \(image_size) must be in 1…256 and a multiple of \(factor) (the UNet's down-sampling factor)")
        }
        guard unet.sample_size == image_size else { throw fail("unet.sample_size \(unet.sample_size) ≠ image_size \(image_size)") }
        guard max_tokens >= 3, max_tokens <= text_encoder.max_position_embeddings else {
            throw fail("max_tokens \(max_tokens) must be in 3…\(text_encoder.max_position_embeddings) (text_encoder.max_position_embeddings)")
        }
        guard text_encoder.vocab_size >= WordTokenizer.vocabulary.count else {
            throw fail("text_encoder.vocab_size \(text_encoder.vocab_size) < the \(WordTokenizer.vocabulary.count) words the tokenizer emits")
        }
        guard unet.cross_attention_dim == text_encoder.hidden_size else {
            throw fail("unet.cross_attention_dim \(unet.cross_attention_dim) ≠ text_encoder.hidden_size \(text_encoder.hidden_size)")
        }
        guard (1...min(1000, scheduler.num_train_timesteps)).contains(default_steps) else {
            throw fail("default_steps \(default_steps) must be in 1…\(min(1000, scheduler.num_train_timesteps))")
        }
        guard default_guidance.isFinite, (0...50).contains(default_guidance) else {
            throw fail("default_guidance \(default_guidance) must be in 0…50")
        }
    }

    /// Weights (fp32) and peak activations of a guided, steered pass, from the config alone.
    public var memoryEstimate: MemoryEstimate {
        MemoryEstimate(weightBytes: 4 * (unet.parameterCount + text_encoder.parameterCount),
                       activationBytes: max(unet.tapedActivationBytes(side: image_size), text_encoder.activationBytes))
    }
}

/// Where the shipped weights live: `--assets`/`L2S_ASSETS`; else found from the executable's real
/// path (not the current directory): `Assets/` in a directory above it (the checkout of
/// `.build/<triple>/<config>/l2s`), or `share/l2s/Assets` of its install prefix (`PREFIX/bin/l2s`);
/// last, `./Assets`.
public enum AssetLocator {
    /// An explicit directory (`override`, else `L2S_ASSETS`) is the only place looked at when given,
    /// so a mistyped path is an error rather than a silent fall-back to other weights.
    public static func toyDirectory(override: String? = nil) -> String? {
        var candidates: [String] = []
        if let explicit = override ?? ProcessInfo.processInfo.environment["L2S_ASSETS"] {
            let dir = explicit.hasSuffix("/toy") ? explicit : explicit + "/toy"
            return FileManager.default.fileExists(atPath: dir + "/config.json") ? URL(fileURLWithPath: dir).standardized.path : nil
        }
        // The running binary's own path (argv[0] may be a bare name found on PATH, or a symlink).
        let path = Bundle.main.executablePath ?? CommandLine.arguments.first ?? "."
        let exe = URL(fileURLWithPath: path).resolvingSymlinksInPath().deletingLastPathComponent()
        candidates.append(exe.appendingPathComponent("../share/l2s/Assets").path)
        var dir = exe
        for _ in 0..<5 {
            candidates.append(dir.appendingPathComponent("Assets").path)
            dir = dir.deletingLastPathComponent()
        }
        candidates.append(FileManager.default.currentDirectoryPath + "/Assets")
        for c in candidates {
            let dir = c.hasSuffix("/toy") ? c : c + "/toy"
            if FileManager.default.fileExists(atPath: dir + "/config.json") { return URL(fileURLWithPath: dir).standardized.path }
        }
        return nil
    }
}

/// Errors loading the toy model.
public enum ToyModelError: Error, CustomStringConvertible {
    case assetsNotFound
    /// A weights file holds NaN or Inf (`detail` names the first tensor and element).
    case damagedWeights(file: String, detail: String)
    public var description: String {
        switch self {
        case .assetsNotFound:
            return "the embedded model's weights were not found (looked for toy/config.json in --assets or $L2S_ASSETS when given, else in Assets/ above the program, PREFIX/share/l2s/Assets and ./Assets)"

        case let .damagedWeights(file, detail):
            return "\(file): tensor \(detail) (the first non-finite value; the file is damaged)"
        }
    }
}

/// The embedded pixel-space model: UNet + causal text transformer + word tokenizer. Latents are the
/// RGB pixels in [−1, 1], so `decode` is the identity.
public final class ToyModel: TextToImageModel {
    public let config: ToyModelConfig
    public let unet: UNet2DConditionModel
    public let textEncoder: CLIPTextModel
    public let tokenizer = WordTokenizer()
    public var schedulerConfig: SchedulerConfig { config.scheduler }
    public private(set) var weightsHash: String = "untrained"

    /// Builds the networks with random weights; the config is validated and its memory estimate
    /// checked against `MemoryEstimate.available` first, so nothing is allocated for a bad config.
    public init(config: ToyModelConfig, seed: UInt64 = 0) throws {
        try config.validate()
        try config.memoryEstimate.check(model: "the toy model")
        self.config = config
        unet = try UNet2DConditionModel(config: config.unet, seed: seed)
        textEncoder = try CLIPTextModel(config: config.text_encoder, seed: seed &+ 1)
    }

    /// Loads config.json, unet.safetensors and text_encoder.safetensors from a directory.
    public static func load(directory: String) throws -> ToyModel {
        let config = try ToyModelConfig.load(jsonFile: directory + "/config.json")
        try config.validate(file: directory + "/config.json")
        let model = try ToyModel(config: config)
        let unetFile = try SafetensorsFile(path: directory + "/unet.safetensors")
        let textFile = try SafetensorsFile(path: directory + "/text_encoder.safetensors")
        try model.unet.loadStateDict(from: unetFile)
        try model.textEncoder.loadStateDict(from: textFile)
        for (file, module) in [("unet.safetensors", model.unet), ("text_encoder.safetensors", model.textEncoder)] as [(String, Module)] {
            if let bad = firstNonFiniteParameter(module) {
                throw ToyModelError.damagedWeights(file: directory + "/" + file, detail: bad)
            }
        }
        model.weightsHash = unetFile.metadata["hash"] ?? fileHash(directory + "/unet.safetensors")
        model.unet.requiresGrad(false)
        model.textEncoder.requiresGrad(false)
        return model
    }

    /// Loads the shipped model (see `AssetLocator`).
    public static func loadEmbedded(assets: String? = nil) throws -> ToyModel {
        guard let dir = AssetLocator.toyDirectory(override: assets) else { throw ToyModelError.assetsNotFound }
        return try load(directory: dir)
    }

    public var latentShape: [Int] { [config.unet.in_channels, config.image_size, config.image_size] }
    public var sequenceLength: Int { config.max_tokens }
    public var tokenOffset: Int { 1 }
    public func tokenIDs(_ prompt: String) -> [Int] { tokenizer.encode(prompt, maxLength: config.max_tokens) }
    public func tokens(_ prompt: String) -> [PromptToken] {
        Array(tokenizer.tokenize(prompt).prefix(config.max_tokens - 2))
    }
    public func encode(_ prompts: [String]) -> Tensor { textEncoder(prompts.map(tokenIDs)) }
    public func decode(_ latents: Tensor) -> Tensor { latents }

    /// Writes config.json and the two weight files (fp16 by default) into `directory`.
    public func save(directory: String, dtype: SafetensorsDType = .f16, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeFilesAtomically([(directory + "/config.json", try enc.encode(config))])
        try unet.save(to: directory + "/unet.safetensors", dtype: dtype, metadata: metadata)
        try textEncoder.save(to: directory + "/text_encoder.safetensors", dtype: dtype, metadata: metadata)
    }
}

/// FNV-1a 64 of a file's bytes, as 16 hex digits (a cheap identity for sidecars, not security).
public func fileHash(_ path: String) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "unknown" }
    var h = FNV1a64()
    data.withUnsafeBytes { h.mix($0) }
    return h.hex
}
