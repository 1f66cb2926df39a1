import Foundation

/// A JSON value that may be a single Int or a list (diffusers writes both, e.g. `attention_head_dim`).
public enum IntOrList: Codable, Equatable, Sendable {
    case one(Int)
    case list([Int])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { self = .one(v) } else { self = .list(try c.decode([Int].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .one(let v): try c.encode(v)
        case .list(let v): try c.encode(v)
        }
    }

    /// The value for block `i` of `n` blocks.
    public func value(at i: Int, of n: Int) -> Int {
        switch self {
        case .one(let v): return v
        case .list(let v): return v[min(i, v.count - 1)]
        }
    }
}

/// UNet2DConditionModel configuration with the field names of diffusers' `unet/config.json`.
public struct UNet2DConditionConfig: Codable, Equatable, Sendable {
    public var in_channels: Int = 4
    public var out_channels: Int = 4
    public var block_out_channels: [Int] = [320, 640, 1280, 1280]
    public var layers_per_block: Int = 2
    public var down_block_types: [String] = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
    public var up_block_types: [String] = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    /// Diffusers quirk: for SD 1.x/2.x this is the number of heads, not the head size.
    public var attention_head_dim: IntOrList = .one(8)
    public var num_attention_heads: IntOrList? = nil
    public var cross_attention_dim: Int = 768
    public var use_linear_projection: Bool = false
    public var norm_num_groups: Int = 32
    public var norm_eps: Float = 1e-5
    public var act_fn: String = "silu"
    public var flip_sin_to_cos: Bool = true
    public var freq_shift: Int = 0
    public var downsample_padding: Int = 1
    public var mid_block_scale_factor: Float = 1
    public var center_input_sample: Bool = false
    public var sample_size: Int = 64
    public var transformer_layers_per_block: Int? = 1
    public var only_cross_attention: Bool? = false
    public var upcast_attention: Bool? = false

    public init() {}

    enum CodingKeys: String, CodingKey {
        case in_channels, out_channels, block_out_channels, layers_per_block, down_block_types, up_block_types,
             attention_head_dim, num_attention_heads, cross_attention_dim, use_linear_projection, norm_num_groups,
             norm_eps, act_fn, flip_sin_to_cos, freq_shift, downsample_padding, mid_block_scale_factor,
             center_input_sample, sample_size, transformer_layers_per_block, only_cross_attention, upcast_attention
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = UNet2DConditionConfig()
        try c.update(.in_channels, &d.in_channels); try c.update(.out_channels, &d.out_channels)
        try c.update(.block_out_channels, &d.block_out_channels); try c.update(.layers_per_block, &d.layers_per_block)
        try c.update(.down_block_types, &d.down_block_types); try c.update(.up_block_types, &d.up_block_types)
        try c.update(.attention_head_dim, &d.attention_head_dim)
        d.num_attention_heads = try c.decodeIfPresent(IntOrList.self, forKey: .num_attention_heads)
        try c.update(.cross_attention_dim, &d.cross_attention_dim); try c.update(.use_linear_projection, &d.use_linear_projection)
        try c.update(.norm_num_groups, &d.norm_num_groups); try c.update(.norm_eps, &d.norm_eps); try c.update(.act_fn, &d.act_fn)
        try c.update(.flip_sin_to_cos, &d.flip_sin_to_cos); try c.update(.freq_shift, &d.freq_shift)
        try c.update(.downsample_padding, &d.downsample_padding); try c.update(.mid_block_scale_factor, &d.mid_block_scale_factor)
        try c.update(.center_input_sample, &d.center_input_sample); try c.update(.sample_size, &d.sample_size)
        d.transformer_layers_per_block = try? c.decodeIfPresent(Int.self, forKey: .transformer_layers_per_block)
        d.only_cross_attention = try? c.decodeIfPresent(Bool.self, forKey: .only_cross_attention)
        d.upcast_attention = try c.decodeIfPresent(Bool.self, forKey: .upcast_attention)
        self = d
    }

    /// Heads of block `i` (diffusers: `num_attention_heads or attention_head_dim`).
    public func heads(block i: Int) -> Int {
        (num_attention_heads ?? attention_head_dim).value(at: i, of: block_out_channels.count)
    }

    /// Checks the values this implementation supports (ranges and relations); throws a message naming
    /// `file` and the field.
    public func validate(file: String = "unet/config.json") throws {
        func fail(_ m: String) -> ConfigError { FieldCheck(file: file).fail(m) }
        guard block_out_channels.count == down_block_types.count, down_block_types.count == up_block_types.count
        else { throw fail("block_out_channels, down_block_types and up_block_types must have the same length") }
        for t in down_block_types where !["CrossAttnDownBlock2D", "DownBlock2D"].contains(t) { throw fail("down block type \(t)") }
        for t in up_block_types where !["CrossAttnUpBlock2D", "UpBlock2D"].contains(t) { throw fail("up block type \(t)") }
        guard act_fn == "silu" else { throw fail("act_fn \(act_fn)") }
        guard (transformer_layers_per_block ?? 1) == 1 else { throw fail("transformer_layers_per_block ≠ 1") }
        guard !(only_cross_attention ?? false) else { throw fail("only_cross_attention") }
        let f = FieldCheck(file: file), B = ConfigBounds.self
        try f.blocks(channels: block_out_channels, layersPerBlock: layers_per_block, groups: norm_num_groups)
        try f.int("in_channels", in_channels, 1...B.maxImageChannels)
        try f.int("out_channels", out_channels, 1...B.maxImageChannels)
        try f.int("cross_attention_dim", cross_attention_dim, 1...B.maxWidth)
        try f.float("norm_eps", norm_eps, 0...1, openBelow: true)
        try f.float("mid_block_scale_factor", mid_block_scale_factor, -1e3...1e3)
        try f.int("freq_shift", freq_shift, 0...1)
        try f.int("downsample_padding", downsample_padding, 0...1)
        try f.int("sample_size", sample_size, 1...B.maxSide)
        if case .list(let l) = attention_head_dim, l.count != block_out_channels.count {
            throw fail("attention_head_dim has \(l.count) entries for \(block_out_channels.count) blocks")
        }
        if case .list(let l)? = num_attention_heads, l.count != block_out_channels.count {
            throw fail("num_attention_heads has \(l.count) entries for \(block_out_channels.count) blocks")
        }
        for (i, c) in block_out_channels.enumerated() {
            let h = heads(block: i)
            guard (1...c).contains(h) else { throw fail("block \(i): \(h) attention heads for \(c) channels (need 1…\(c))") }
            guard c % h == 0 else { throw fail("block_out_channels[\(i)] = \(c) is not divisible by its \(h) attention heads") }
        }
        let factor = 1 << (block_out_channels.count - 1)
        guard sample_size % factor == 0 else {
            throw fail("sample_size \(sample_size) is not divisible by \(factor) (2^(blocks − 1), the down-sampling factor)")
        }
    }

    /// Latent sides this UNet accepts: positive multiples of 2^(blocks − 1).
    public func acceptsLatentSide(_ side: Int) -> Bool {
        side > 0 && side <= ConfigBounds.maxSide && side % (1 << (block_out_channels.count - 1)) == 0
    }
}

/// CLIPTextModel configuration (transformers' `text_encoder/config.json` field names).
public struct CLIPTextConfig: Codable, Equatable, Sendable {
    public var vocab_size: Int = 49408
    public var hidden_size: Int = 768
    public var intermediate_size: Int = 3072
    public var num_attention_heads: Int = 12
    public var num_hidden_layers: Int = 12
    public var max_position_embeddings: Int = 77
    public var hidden_act: String = "quick_gelu"
    public var layer_norm_eps: Float = 1e-5

    public init() {}

    enum CodingKeys: String, CodingKey {
        case vocab_size, hidden_size, intermediate_size, num_attention_heads, num_hidden_layers,
             max_position_embeddings, hidden_act, layer_norm_eps
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = CLIPTextConfig()
        try c.update(.vocab_size, &d.vocab_size); try c.update(.hidden_size, &d.hidden_size)
        try c.update(.intermediate_size, &d.intermediate_size); try c.update(.num_attention_heads, &d.num_attention_heads)
        try c.update(.num_hidden_layers, &d.num_hidden_layers); try c.update(.max_position_embeddings, &d.max_position_embeddings)
        try c.update(.hidden_act, &d.hidden_act); try c.update(.layer_norm_eps, &d.layer_norm_eps)
        self = d
    }

    /// Checks the values this implementation supports (ranges and relations); throws a message naming the field.
    public func validate(file: String = "text_encoder/config.json") throws {
        let f = FieldCheck(file: file), B = ConfigBounds.self
        guard ["quick_gelu", "gelu"].contains(hidden_act) else { throw f.fail("hidden_act \(hidden_act)") }
        try f.int("vocab_size", vocab_size, 1...B.maxVocabulary)
        try f.int("hidden_size", hidden_size, 1...B.maxWidth)
        try f.int("intermediate_size", intermediate_size, 1...4 * B.maxWidth)
        try f.int("num_hidden_layers", num_hidden_layers, 1...B.maxLayers)
        try f.int("max_position_embeddings", max_position_embeddings, 1...B.maxPositions)
        try f.int("num_attention_heads", num_attention_heads, 1...hidden_size)
        try f.float("layer_norm_eps", layer_norm_eps, 0...1, openBelow: true)
        guard hidden_size % num_attention_heads == 0 else {
            throw f.fail("hidden_size \(hidden_size) is not divisible by num_attention_heads \(num_attention_heads)")
        }
    }
}

extension KeyedDecodingContainer {
    /// Overwrites `value` with the key's value when the key is present, so config structs keep their
    /// defaults for fields a JSON file leaves out.
    public func update<T: Decodable>(_ key: Key, _ value: inout T) throws {
        if let v = try decodeIfPresent(T.self, forKey: key) { value = v }
    }
}

/// Errors from reading model configuration.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case unsupported(String)
    case missingFile(String)
    case malformed(String, String)

    public var description: String {
        switch self {
        case .unsupported(let m): return "unsupported model configuration: \(m)"
        case .missingFile(let f): return "missing file: \(f)"
        case .malformed(let f, let why): return "cannot read \(f): \(why)"
        }
    }
}

extension Decodable {
    /// Decodes a JSON file with a clear error naming it.
    public static func load(jsonFile path: String) throws -> Self {
        guard FileManager.default.fileExists(atPath: path) else { throw ConfigError.missingFile(path) }
        do {
            return try JSONDecoder().decode(Self.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ConfigError.malformed(path, "\(error)")
        }
    }
}
