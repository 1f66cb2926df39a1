import Foundation
import Tensors

// Reading a diffusers-format Stable Diffusion 1.x/2.x folder (stable-diffusion-notes.md §4):
// model_index.json must name StableDiffusionPipeline; unet/, vae/, text_encoder/, tokenizer/ and
// scheduler/ hold configs and safetensors weights (`diffusion_pytorch_model[.fp16].safetensors`,
// `model[.fp16].safetensors`). Loading is strict: every parameter needs a value of the right shape
// and every key in a file must name a parameter, except the documented allow-list and legacy names
// (old VAE files' `query/key/value/proj_attn`, possibly with 1×1-conv-shaped weights). The scheduler
// config gives only numbers; sampling is DDIM whatever `_class_name` says, with the two fixes
// StableDiffusionPipeline applies (steps_offset 1, no x̂₀ clipping).

/// Why a model folder cannot be used. Every case names the file (and the key, where one is at fault).
public enum ModelFolderError: Error, CustomStringConvertible, Equatable {
    case missingFolder(String)
    case missingFile(String)
    /// The folder holds another kind of pipeline (SDXL, Flux, …).
    case notStableDiffusion(file: String, pipeline: String, why: String)
    case unsupported(file: String, detail: String)
    case malformed(file: String, detail: String)
    /// A weights file that cannot be read or does not fit the model its config describes.
    case weights(file: String, detail: String)

    public var description: String {
        switch self {
        case .missingFolder(let p): return "model folder not found: \(p)"
        case .missingFile(let p): return "missing file: \(p)"
        case let .notStableDiffusion(file, pipeline, why):
            return "\(file): '\(pipeline)' is not supported — \(why); this program runs Stable Diffusion 1.x/2.x folders (StableDiffusionPipeline)"
        case let .unsupported(file, detail): return "\(file): unsupported: \(detail)"
        case let .malformed(file, detail): return "\(file): cannot read: \(detail)"
        case let .weights(file, detail): return "\(file): \(detail)"
        }
    }
}

/// A diffusers Stable Diffusion folder with its configs read and checked and its weight files found.
public struct ModelFolder: Sendable {
    public let path: String
    public let unetConfig: UNet2DConditionConfig
    public let textEncoderConfig: CLIPTextConfig
    public let vaeConfig: AutoencoderKLConfig
    /// The scheduler numbers, with StableDiffusionPipeline's fixes applied.
    public let schedulerConfig: SchedulerConfig
    /// The scheduler class the folder ships (a hint only; sampling uses DDIM).
    public let schedulerClass: String
    public let unetWeights: String
    public let vaeWeights: String
    public let textEncoderWeights: String

    /// Keys a weights file may hold that name no parameter (buffers of old exports).
    public static let ignoredKeys: Set<String> = ["text_model.embeddings.position_ids", "embeddings.position_ids"]

    /// Reads and checks `path`'s configs and finds its weights; `preferFP16` picks the `.fp16`
    /// variant when both exist.
    public init(path: String, preferFP16: Bool = false) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            throw ModelFolderError.missingFolder(path)
        }
        self.path = path
        let index = try ModelFolder.jsonObject(path + "/model_index.json")
        try ModelFolder.checkPipeline(index, file: path + "/model_index.json")

        let unetFile = path + "/unet/config.json"
        try ModelFolder.checkUNetExtras(file: unetFile)
        unetConfig = try ModelFolder.decode(UNet2DConditionConfig.self, unetFile)

        let textFile = path + "/text_encoder/config.json"
        let textJSON = try ModelFolder.jsonObject(textFile)
        if let arch = textJSON["architectures"] as? [String], !arch.contains("CLIPTextModel") {
            throw ModelFolderError.unsupported(file: textFile, detail: "architectures \(arch) (expected CLIPTextModel)")
        }
        textEncoderConfig = try ModelFolder.decode(CLIPTextConfig.self, textFile)

        let vaeFile = path + "/vae/config.json"
        vaeConfig = try ModelFolder.decode(AutoencoderKLConfig.self, vaeFile)

        let schedFile = path + "/scheduler/scheduler_config.json"
        let schedJSON = try ModelFolder.jsonObject(schedFile)
        schedulerClass = schedJSON["_class_name"] as? String ?? "unknown"
        try ModelFolder.checkSchedulerExtras(file: schedFile)
        var sched = try ModelFolder.decode(SchedulerConfig.self, schedFile)
        sched.steps_offset = 1
        sched.clip_sample = false
        schedulerConfig = sched

        func check(_ file: String, _ validate: () throws -> Void) throws {
            do { try validate() } catch ConfigError.unsupported(let m) { throw ModelFolderError.unsupported(file: file, detail: m) }
        }
        let (u, t, v) = (unetConfig, textEncoderConfig, vaeConfig)
        try check(unetFile) { try u.validate(file: "") }
        try check(textFile) { try t.validate(file: "") }
        try check(vaeFile) { try v.validate(file: "") }
        try check(schedFile) { try sched.validate(file: "") }
        guard textEncoderConfig.hidden_size == unetConfig.cross_attention_dim else {
            throw ModelFolderError.unsupported(file: textFile, detail: "hidden_size \(textEncoderConfig.hidden_size) ≠ the UNet's cross_attention_dim \(unetConfig.cross_attention_dim)")
        }
        guard vaeConfig.latent_channels == unetConfig.in_channels, unetConfig.in_channels == unetConfig.out_channels else {
            throw ModelFolderError.unsupported(file: unetFile, detail: "in/out_channels \(unetConfig.in_channels)/\(unetConfig.out_channels) vs the VAE's latent_channels \(vaeConfig.latent_channels) (inpainting and depth UNets are not supported)")
        }
        unetWeights = try ModelFolder.weightsFile(path + "/unet", base: "diffusion_pytorch_model", preferFP16: preferFP16)
        vaeWeights = try ModelFolder.weightsFile(path + "/vae", base: "diffusion_pytorch_model", preferFP16: preferFP16)
        textEncoderWeights = try ModelFolder.weightsFile(path + "/text_encoder", base: "model", preferFP16: preferFP16)
    }

    /// Memory for the whole pipeline at latent side `latentSide` (default: the UNet's sample_size),
    /// from the configs alone: fp32 weights of the three networks, plus the larger of the UNet's and
    /// the VAE decoder's peak activations.
    public func memoryEstimate(latentSide: Int? = nil) -> MemoryEstimate {
        let side = latentSide ?? unetConfig.sample_size
        let weights = 4 * (unetConfig.parameterCount + textEncoderConfig.parameterCount + vaeConfig.parameterCount)
        let activations = max(unetConfig.activationBytes(side: side), vaeConfig.activationBytes(latentSide: side),
                              textEncoderConfig.activationBytes)
        return MemoryEstimate(weightBytes: weights, activationBytes: activations)
    }

    // MARK: Loading components

    /// The UNet with the folder's weights.
    public func loadUNet() throws -> UNet2DConditionModel {
        // No random initial values: the strict load below replaces every parameter (missing keys throw).
        let unet = try ParameterInitialization.deferred { try UNet2DConditionModel(config: unetConfig) }
        try ModelFolder.load(unet, from: unetWeights)
        return unet
    }

    /// The text encoder with the folder's weights.
    public func loadTextEncoder() throws -> CLIPTextModel {
        let model = try ParameterInitialization.deferred { try CLIPTextModel(config: textEncoderConfig) }
        // transformers < 5 writes keys under `text_model.`, transformers 5 without that prefix.
        try ModelFolder.load(model, from: textEncoderWeights, rename: { $0.hasPrefix("text_model.") ? $0 : "text_model." + $0 })
        return model
    }

    /// The VAE with the folder's weights (legacy attention names accepted).
    public func loadVAE() throws -> AutoencoderKL {
        let vae = try ParameterInitialization.deferred { try AutoencoderKL(config: vaeConfig) }
        try ModelFolder.load(vae, from: vaeWeights, rename: ModelFolder.modernVAEKey,
                             squeezing: { $0.contains("mid_block.attentions.") && $0.hasSuffix(".weight") })
        return vae
    }

    /// The tokenizer from `tokenizer/` (pad token and length from its config).
    public func loadTokenizer() throws -> CLIPTokenizer {
        let dir = path + "/tokenizer"
        do {
            let tok = try CLIPTokenizer(folder: dir)
            if let (symbol, id) = tok.vocabulary.first(where: { $0.value >= textEncoderConfig.vocab_size }) {
                throw ModelFolderError.unsupported(file: dir + "/vocab.json",
                                                   detail: "id \(id) of '\(symbol)' is outside the text encoder's \(textEncoderConfig.vocab_size) embeddings")
            }
            guard tok.vocabulary.count <= textEncoderConfig.vocab_size else {
                throw ModelFolderError.unsupported(file: dir + "/vocab.json",
                                                   detail: "\(tok.vocabulary.count) entries but the text encoder has \(textEncoderConfig.vocab_size) embeddings")
            }
            guard tok.maxLength <= textEncoderConfig.max_position_embeddings else {
                throw ModelFolderError.unsupported(file: dir + "/tokenizer_config.json",
                                                   detail: "model_max_length \(tok.maxLength) > the text encoder's \(textEncoderConfig.max_position_embeddings) positions")
            }
            return tok
        } catch let e as ConfigError {
            switch e {
            case .missingFile(let f): throw ModelFolderError.missingFile(f)
            case .malformed(let f, let why): throw ModelFolderError.malformed(file: f, detail: why)
            case .unsupported(let why): throw ModelFolderError.unsupported(file: dir, detail: why)
            }
        }
    }

    /// Maps a legacy VAE key (`…mid_block.attentions.0.query.weight`) to its diffusers name.
    public static func modernVAEKey(_ key: String) -> String {
        for (old, new) in [("query", "to_q"), ("key", "to_k"), ("value", "to_v"), ("proj_attn", "to_out.0")] {
            for kind in ["weight", "bias"] where key.hasSuffix(".attentions.0.\(old).\(kind)") {
                return String(key.dropLast(old.count + kind.count + 1)) + "\(new).\(kind)"
            }
        }
        return key
    }

    /// Strictly loads `file` into `module`: keys renamed by `rename`, [out, in, 1, 1] values of the
    /// (renamed) keys `squeezing` accepts reshaped to [out, in], `ignoredKeys` skipped. Errors name the
    /// file and the keys at fault.
    public static func load(_ module: Module, from file: String, rename: (String) -> String = { $0 },
                            squeezing: (String) -> Bool = { _ in false }) throws {
        let st: SafetensorsFile
        do {
            st = try SafetensorsFile(path: file, skipping: Set(SafetensorsFile.otherDTypeSizes.keys))
        } catch let e as SafetensorsError {
            throw ModelFolderError.weights(file: file, detail: "unreadable safetensors (truncated or corrupt?): \(e.description)")
        }
        if let bad = st.skipped.keys.sorted().first(where: { !ignoredKeys.contains($0) }) {
            throw ModelFolderError.weights(file: file, detail: "tensor '\(bad)' has dtype \(st.skipped[bad]!.dtype), not a float weight type")
        }
        let params = Dictionary(module.namedParameters().map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        // Match keys and shapes from the header first, so nothing is read (or changed) for a file that does not fit.
        var plan: [(name: String, key: String, shape: [Int])] = []
        var fileKey: [String: String] = [:]
        var unexpected: [String] = [], misshaped: [String] = []
        for name in st.names where !ignoredKeys.contains(name) {
            let key = rename(name)
            guard let p = params[key] else { unexpected.append(name); continue }
            if let other = fileKey[key] {
                throw ModelFolderError.weights(file: file, detail: "keys '\(other)' and '\(name)' both give '\(key)'")
            }
            fileKey[key] = name
            var shape = st.info(name)!.shape
            if shape.count == 4, shape[2] == 1, shape[3] == 1, p.rank == 2, squeezing(key) { shape = [shape[0], shape[1]] }
            guard shape == p.shape else {
                misshaped.append("'\(name)' (model \(p.shape), file \(st.info(name)!.shape))")
                continue
            }
            plan.append((name, key, shape))
        }
        let missing = params.keys.filter { fileKey[$0] == nil }.sorted()
        if !missing.isEmpty || !unexpected.isEmpty || !misshaped.isEmpty {
            func list(_ items: [String]) -> String {
                let shown = items.prefix(5).joined(separator: ", ")
                return items.count > 5 ? "\(shown), … (\(items.count - 5) more)" : shown
            }
            var parts: [String] = []
            if !missing.isEmpty { parts.append("\(missing.count) missing key(s): " + list(missing.map { "'\($0)'" })) }
            if !unexpected.isEmpty { parts.append("\(unexpected.count) unexpected key(s): " + list(unexpected.sorted().map { "'\($0)'" })) }
            if !misshaped.isEmpty { parts.append("\(misshaped.count) mis-shaped key(s): " + list(misshaped.sorted())) }
            throw ModelFolderError.weights(file: file, detail: "does not fit the model its config describes: " + parts.joined(separator: "; "))
        }
        // Each tensor is converted straight into its parameter (no temporary; peak memory is the model)
        // and checked for NaN/Inf in the same pass, so a damaged file is named instead of giving a black
        // image. A damaged tensor leaves the module partly loaded; the callers then discard it.
        for (name, key, _) in plan {
            let parameter = params[key]!
            let bad: Int?
            do { bad = try st.read(name, into: parameter) } catch let e as SafetensorsError {
                throw ModelFolderError.weights(file: file, detail: e.description)
            }
            if let bad {
                throw ModelFolderError.weights(file: file, detail: "tensor '\(name)' holds \(nonFiniteDescription(parameter.pointer[bad], at: bad)) (the first non-finite value; the file is damaged)")
            }
        }
    }

    // MARK: Checks

    static func jsonObject(_ file: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: file) else { throw ModelFolderError.missingFile(file) }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelFolderError.malformed(file: file, detail: "not a JSON object")
        }
        return object
    }

    static func decode<T: Decodable>(_ type: T.Type, _ file: String) throws -> T {
        guard let data = FileManager.default.contents(atPath: file) else { throw ModelFolderError.missingFile(file) }
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            throw ModelFolderError.malformed(file: file, detail: "\(error)")
        }
    }

    static func checkPipeline(_ index: [String: Any], file: String) throws {
        let name = index["_class_name"] as? String ?? "(no _class_name)"
        let why: String
        switch name {
        case "StableDiffusionPipeline":
            for (component, expected) in [("unet", ["UNet2DConditionModel"]), ("vae", ["AutoencoderKL"]),
                                          ("text_encoder", ["CLIPTextModel"]), ("tokenizer", ["CLIPTokenizer", "CLIPTokenizerFast"])] {
                guard let entry = index[component] as? [Any], entry.count == 2, let cls = entry[1] as? String else {
                    throw ModelFolderError.malformed(file: file, detail: "no '\(component)' entry [library, class]")
                }
                guard expected.contains(cls) else {
                    throw ModelFolderError.unsupported(file: file, detail: "\(component) is \(cls) (expected \(expected.joined(separator: " or ")))")
                }
            }
            return
        case let n where n.contains("XL"): why = "SDXL needs two text encoders, pooled text and size conditioning"
        case let n where n.hasPrefix("Flux"): why = "Flux is a rectified-flow transformer with a T5 encoder, not a UNet"
        case let n where n.hasPrefix("StableDiffusion3"): why = "SD3 is an MMDiT with three text encoders"
        case let n where n.hasPrefix("StableDiffusion") && n != "StableDiffusionPipeline":
            why = "a task-specific variant (inpainting, img2img, depth, upscale …) of another pipeline class"
        default: why = "unknown pipeline class"
        }
        throw ModelFolderError.notStableDiffusion(file: file, pipeline: name, why: why)
    }

    /// A JSON value as far as the checks below need it.
    enum Scalar: Decodable, Equatable, CustomStringConvertible {
        case null, bool(Bool), number(Double), string(String), other

        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let d = try? c.decode(Double.self) { self = .number(d) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else { self = .other }
        }

        var description: String {
            switch self {
            case .null: return "null"
            case .bool(let b): return "\(b)"
            case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? "\(Int(d))" : "\(d)"
            case .string(let s): return "\"\(s)\""
            case .other: return "a list or object"
            }
        }
    }

    /// UNet config fields our UNet2DConditionConfig does not model: each must have SD 1.x/2.x's value.
    static func checkUNetExtras(file: String) throws {
        let required: [(String, [Scalar])] = [
            ("mid_block_type", [.string("UNetMidBlock2DCrossAttn")]), ("resnet_time_scale_shift", [.string("default")]),
            ("time_embedding_type", [.string("positional")]), ("class_embed_type", []), ("addition_embed_type", []),
            ("num_class_embeds", []), ("encoder_hid_dim", []), ("encoder_hid_dim_type", []), ("time_cond_proj_dim", []),
            ("time_embedding_dim", []), ("timestep_post_act", []), ("time_embedding_act_fn", []),
            ("cross_attention_norm", []), ("conv_in_kernel", [.number(3)]), ("conv_out_kernel", [.number(3)]),
            ("dual_cross_attention", [.bool(false)]), ("resnet_out_scale_factor", [.number(1)]),
            ("resnet_skip_time_act", [.bool(false)]), ("attention_type", [.string("default")]),
            ("mid_block_only_cross_attention", [.bool(false)]), ("class_embeddings_concat", [.bool(false)]),
            ("reverse_transformer_layers_per_block", []), ("transformer_layers_per_block", [.number(1)]),
            ("only_cross_attention", [.bool(false)]),
        ]
        try checkValues(file: file, required)
    }

    static func checkSchedulerExtras(file: String) throws {
        try checkValues(file: file, [("trained_betas", []), ("rescale_betas_zero_snr", [.bool(false)]), ("thresholding", [.bool(false)])])
    }

    /// Each key must be absent, null or one of its allowed values.
    private static func checkValues(file: String, _ required: [(String, [Scalar])]) throws {
        let json = try decode([String: Scalar].self, file)
        for (key, allowed) in required {
            let value = json[key] ?? .null
            guard value == .null || allowed.contains(value) else {
                let expected = (allowed.map(\.description) + ["null"]).joined(separator: " or ")
                throw ModelFolderError.unsupported(file: file, detail: "\(key) = \(value) (only \(expected) is implemented)")
            }
        }
    }

    /// The weights file of a component folder: `<base>.safetensors` or `<base>.fp16.safetensors`.
    static func weightsFile(_ dir: String, base: String, preferFP16: Bool) throws -> String {
        let fm = FileManager.default
        guard fm.fileExists(atPath: dir) else { throw ModelFolderError.missingFolder(dir) }
        let full = "\(dir)/\(base).safetensors", half = "\(dir)/\(base).fp16.safetensors"
        let order = preferFP16 ? [half, full] : [full, half]
        if let found = order.first(where: { fm.fileExists(atPath: $0) }) { return found }
        let present = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted()
        if present.contains(where: { $0.hasSuffix(".safetensors.index.json") }) {
            throw ModelFolderError.unsupported(file: dir, detail: "sharded weights (*.safetensors.index.json); merge them into \(base).safetensors")
        }
        if present.contains(where: { $0.hasSuffix(".bin") || $0.hasSuffix(".ckpt") }) {
            throw ModelFolderError.unsupported(file: dir, detail: "only PyTorch pickle weights (.bin); convert them to \(base).safetensors")
        }
        throw ModelFolderError.missingFile(full)
    }
}
