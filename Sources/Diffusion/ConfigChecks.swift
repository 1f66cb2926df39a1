import Foundation
import Tensors

// Range checks and a memory estimate for model configs, run before any tensor is allocated.
// The release build is -Ounchecked, so a config value that reaches a kernel unchecked (a zero
// divisor, a negative count, an element count that overflows) is undefined behaviour, not a trap:
// every size-like field is bounded here, relations between fields are checked (channels divisible
// by groups and heads, spatial size divisible by the down-sampling factor), and the model's weights
// and peak activations are estimated from the config so an oversized model is refused with a line
// instead of a multi-GB allocation. The bounds are generous (well above SD 1.x/2.x) so the memory
// estimate, not the bound, is what stops a large but well-formed model.

/// Bounds shared by the config validators.
public enum ConfigBounds {
    /// Largest channel or hidden width accepted (SD 1.x/2.x use ≤ 1280; CLIP-L 768, OpenCLIP-H 1024).
    public static let maxWidth = 16_384
    /// Largest number of image or latent channels (RGB 3, SD latents 4).
    public static let maxImageChannels = 64
    /// Largest number of blocks in a UNet or VAE (SD: 4).
    public static let maxBlocks = 8
    /// Largest layers per block / transformer layers (SD: 2 per block, CLIP 12–24 layers).
    public static let maxLayers = 64
    /// Largest spatial side of a latent or image (pixels) accepted in a config.
    public static let maxSide = 4096
    /// Largest vocabulary (CLIP: 49,408).
    public static let maxVocabulary = 1_000_000
    /// Largest sequence length (CLIP: 77).
    public static let maxPositions = 4096
    /// Longest training schedule (SD: 1000).
    public static let maxTrainTimesteps = 100_000
}

/// A field check that names the file and field: `try Field("unet/config.json").int("sample_size", v, 1...4096)`.
struct FieldCheck {
    let file: String

    /// `file` prefixes the message unless empty (a caller that names the file itself).
    func fail(_ message: String) -> ConfigError { ConfigError.unsupported(file.isEmpty ? message : "\(file): \(message)") }

    func int(_ name: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        guard range.contains(value) else { throw fail("\(name) = \(value) is outside \(range.lowerBound)…\(range.upperBound)") }
    }

    /// The block structure shared by the UNet and the VAE: 1…8 blocks of 1…16384 channels, each
    /// divisible by the group count, and a positive number of layers per block.
    func blocks(channels: [Int], layersPerBlock: Int, groups: Int) throws {
        let B = ConfigBounds.self
        try int("number of blocks", channels.count, 1...B.maxBlocks)
        try ints("block_out_channels", channels, 1...B.maxWidth)
        try int("layers_per_block", layersPerBlock, 1...B.maxLayers)
        try int("norm_num_groups", groups, 1...B.maxWidth)
        for (i, c) in channels.enumerated() where c % groups != 0 {
            throw fail("block_out_channels[\(i)] = \(c) is not divisible by norm_num_groups \(groups)")
        }
    }

    func ints(_ name: String, _ values: [Int], _ range: ClosedRange<Int>) throws {
        for (i, v) in values.enumerated() where !range.contains(v) {
            throw fail("\(name)[\(i)] = \(v) is outside \(range.lowerBound)…\(range.upperBound)")
        }
    }

    /// A finite float in `range` (`openBelow`/`openAbove` exclude the bounds).
    func float(_ name: String, _ value: Float, _ range: ClosedRange<Float>, openBelow: Bool = false, openAbove: Bool = false) throws {
        let ok = value.isFinite && range.contains(value) && !(openBelow && value == range.lowerBound)
            && !(openAbove && value == range.upperBound)
        guard ok else {
            throw fail("\(name) = \(value) must be finite and in \(openBelow ? "(" : "[")\(range.lowerBound), \(range.upperBound)\(openAbove ? ")" : "]")")
        }
    }
}

// MARK: Parameter counts (mirror the module constructors; tested against the built modules)

enum ParameterCount {
    static func conv(_ i: Double, _ o: Double, _ k: Double) -> Double { o * i * k * k + o }
    static func linear(_ i: Double, _ o: Double, bias: Bool = true) -> Double { i * o + (bias ? o : 0) }
    static func resnet(_ i: Double, _ o: Double, temb: Double?) -> Double {
        2 * i + conv(i, o, 3) + (temb.map { linear($0, o) } ?? 0) + 2 * o + conv(o, o, 3) + (i == o ? 0 : conv(i, o, 1))
    }
    static func attention(_ q: Double, context: Double) -> Double {
        linear(q, q, bias: false) + 2 * linear(context, q, bias: false) + linear(q, q)
    }
    static func transformer(_ c: Double, context: Double) -> Double {
        let block = 6 * c + attention(c, context: c) + attention(c, context: context) + linear(c, 8 * c) + linear(4 * c, c)
        return 2 * c + 2 * linear(c, c) + block
    }
}

extension UNet2DConditionConfig {
    /// Number of Float parameters the UNet built from this config holds (call after `validate`).
    public var parameterCount: Double {
        typealias P = ParameterCount
        let ch = block_out_channels.map(Double.init), n = ch.count
        let temb = ch[0] * 4, ctx = Double(cross_attention_dim), layers = layers_per_block
        var total = P.conv(Double(in_channels), ch[0], 3) + P.linear(ch[0], temb) + P.linear(temb, temb)
        var out = ch[0]
        for i in 0..<n {
            let inCh = out
            out = ch[i]
            for j in 0..<layers {
                total += P.resnet(j == 0 ? inCh : out, out, temb: temb)
                if down_block_types[i] == "CrossAttnDownBlock2D" { total += P.transformer(out, context: ctx) }
            }
            if i < n - 1 { total += P.conv(out, out, 3) }
        }
        let last = ch[n - 1]
        total += 2 * P.resnet(last, last, temb: temb) + P.transformer(last, context: ctx)
        let rev = Array(ch.reversed())
        var output = rev[0]
        for i in 0..<n {
            let prev = output
            output = rev[i]
            let input = rev[min(i + 1, n - 1)]
            for j in 0...layers {
                let skip = j == layers ? input : output
                total += P.resnet((j == 0 ? prev : output) + skip, output, temb: temb)
                if up_block_types[i] == "CrossAttnUpBlock2D" { total += P.transformer(output, context: ctx) }
            }
            if i < n - 1 { total += P.conv(output, output, 3) }
        }
        return total + 2 * ch[0] + P.conv(ch[0], Double(out_channels), 3)
    }

    /// Peak activation bytes of one guided sampling pass (batch 2) at latent side `side`, estimated:
    /// the largest self-attention score matrix twice (scores and probabilities) plus 32 copies of the
    /// largest feature map. Not a bound for a pass taped for steering, which keeps every block's
    /// intermediates and so grows with depth: see `tapedActivationBytes(side:)`.
    public func activationBytes(side: Int) -> Double {
        var attention = 0.0, feature = 0.0
        for (i, c) in block_out_channels.enumerated() {
            let s = Double(side) / Double(1 << i), tokens = s * s
            feature = max(feature, 2 * 2 * Double(c) * tokens * 4)  // skip concat doubles the width
            if down_block_types[i] == "CrossAttnDownBlock2D" || up_block_types[block_out_channels.count - 1 - i] == "CrossAttnUpBlock2D" {
                attention = max(attention, 2 * Double(heads(block: i)) * tokens * tokens * 4)
            }
        }
        return 2 * attention + 32 * feature
    }

    /// Peak activation bytes of one guided pass (batch 2) taped for steering, at latent side `side`:
    /// an upper bound that keeps, per ResNet block, 16 feature maps of its (input) width and, per
    /// transformer block, 32 of its width, at its resolution, plus the largest self-attention score
    /// matrix twice. It grows with `layers_per_block`: the sampling estimate let a 33-layers-per-block
    /// toy config estimated at 136 MB take 1 GB (the config fuzzer's RSS check, `L2S_FUZZ_RSS_CHECK=1`).
    public func tapedActivationBytes(side: Int) -> Double {
        let n = block_out_channels.count, layers = Double(layers_per_block)
        func map(_ level: Int, _ channels: Double) -> Double {
            let s = Double(side) / Double(1 << level)
            return 2 * channels * s * s * 4
        }
        var attention = 0.0, taped = 0.0
        for (i, c) in block_out_channels.enumerated() {
            let s = Double(side) / Double(1 << i), tokens = s * s, ch = Double(c)
            let downAttention = down_block_types[i] == "CrossAttnDownBlock2D"
            let upAttention = up_block_types[n - 1 - i] == "CrossAttnUpBlock2D"
            if downAttention || upAttention {
                attention = max(attention, 2 * Double(heads(block: i)) * tokens * tokens * 4)
            }
            // Down: `layers` ResNets (+ transformers); up: `layers + 1` on the skip-concatenated width.
            taped += layers * 16 * map(i, ch) + (downAttention ? layers * 32 * map(i, ch) : 0)
            taped += (layers + 1) * 16 * map(i, 2 * ch) + (upAttention ? (layers + 1) * 32 * map(i, ch) : 0)
        }
        let last = Double(block_out_channels[n - 1])
        taped += 2 * 16 * map(n - 1, last) + 32 * map(n - 1, last)   // mid block: two ResNets, one transformer
        return 2 * attention + taped
    }
}

extension CLIPTextConfig {
    /// Number of Float parameters of the text encoder built from this config.
    public var parameterCount: Double {
        typealias P = ParameterCount
        let h = Double(hidden_size), i = Double(intermediate_size)
        let layer = 4 * P.linear(h, h) + 4 * h + P.linear(h, i) + P.linear(i, h)
        return Double(vocab_size + max_position_embeddings) * h + Double(num_hidden_layers) * layer + 2 * h
    }

    /// Peak activation bytes for a batch of 2 prompts: attention scores plus a few hidden states.
    public var activationBytes: Double {
        let l = Double(max_position_embeddings), h = Double(hidden_size)
        return 2 * (Double(num_attention_heads) * l * l * 4 * 2 + 16 * l * max(h, Double(intermediate_size)) * 4)
    }
}

extension AutoencoderKLConfig {
    /// Number of Float parameters of the VAE built from this config.
    public var parameterCount: Double {
        typealias P = ParameterCount
        let ch = block_out_channels.map(Double.init), n = ch.count, l = Double(latent_channels)
        func mid(_ c: Double) -> Double { 2 * P.resnet(c, c, temb: nil) + (mid_block_add_attention ? 2 * c + 4 * P.linear(c, c) : 0) }
        var total = P.conv(Double(in_channels), ch[0], 3)
        for i in 0..<n {
            let inCh = i == 0 ? ch[0] : ch[i - 1]
            for j in 0..<layers_per_block { total += P.resnet(j == 0 ? inCh : ch[i], ch[i], temb: nil) }
            if i < n - 1 { total += P.conv(ch[i], ch[i], 3) }
        }
        total += mid(ch[n - 1]) + 2 * ch[n - 1] + P.conv(ch[n - 1], 2 * l, 3)
        let rev = Array(ch.reversed())
        total += P.conv(l, rev[0], 3) + mid(rev[0])
        for i in 0..<n {
            let inCh = i == 0 ? rev[0] : rev[i - 1]
            for j in 0...layers_per_block { total += P.resnet(j == 0 ? inCh : rev[i], rev[i], temb: nil) }
            if i < n - 1 { total += P.conv(rev[i], rev[i], 3) }
        }
        total += 2 * rev[n - 1] + P.conv(rev[n - 1], Double(out_channels), 3)
        if use_quant_conv { total += P.conv(2 * l, 2 * l, 1) }
        if use_post_quant_conv { total += P.conv(l, l, 1) }
        return total
    }

    /// Peak activation bytes of decoding one image whose latent side is `latentSide`: the mid block's
    /// one-head attention at latent resolution (twice) plus 8 copies of the largest feature map.
    public func activationBytes(latentSide: Int) -> Double {
        let t = Double(latentSide * latentSide)
        var feature = 0.0
        for (i, c) in block_out_channels.reversed().enumerated() {
            let s = Double(latentSide) * Double(1 << min(i + 1, block_out_channels.count - 1))
            feature = max(feature, Double(c) * s * s * 4)
        }
        return (mid_block_add_attention ? 2 * t * t * 4 : 0) + 8 * feature
    }
}

/// What a model needs in memory, from its config alone.
public struct MemoryEstimate: Sendable, Equatable, CustomStringConvertible {
    public var weightBytes: Double
    public var activationBytes: Double
    public var totalBytes: Double { weightBytes + activationBytes }

    public init(weightBytes: Double, activationBytes: Double) {
        self.weightBytes = weightBytes
        self.activationBytes = activationBytes
    }

    /// Memory the program may use: `L2S_MEMORY_LIMIT` (bytes, or with a K/M/G suffix) when set, else
    /// the machine's physical memory.
    public static var available: Double {
        if let text = ProcessInfo.processInfo.environment["L2S_MEMORY_LIMIT"], let v = parseBytes(text) { return v }
        return Double(ProcessInfo.processInfo.physicalMemory)
    }

    static func parseBytes(_ text: String) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let scale: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        if let last = t.last, let s = scale[last], let v = Double(t.dropLast()), v > 0 { return v * s }
        if let v = Double(t), v > 0 { return v }
        return nil
    }

    public var description: String {
        func gb(_ b: Double) -> String { String(format: b >= 1e9 ? "%.1f GB" : "%.0f MB", b >= 1e9 ? b / 1e9 : b / 1e6) }
        return "about \(gb(totalBytes)) (weights \(gb(weightBytes)) + activations \(gb(activationBytes)), estimated from the config)"
    }

    /// Throws when the estimate exceeds `limit` (default: `available`).
    public func check(model: String, limit: Double = MemoryEstimate.available) throws {
        guard totalBytes <= limit else {
            let have = limit >= 1e9 ? String(format: "%.1f GB", limit / 1e9) : String(format: "%.0f MB", limit / 1e6)
            throw ConfigError.unsupported("\(model) needs \(self), more than the \(have) available (set L2S_MEMORY_LIMIT to override)")
        }
    }
}

/// "NaN at element i" / "+Inf at element i" for the first non-finite value of `t`, or nil.
public func firstNonFinite(_ t: Tensor) -> String? {
    HalfFloat.firstNonFinite(t.pointer, count: t.count).map { nonFiniteDescription(t.pointer[$0], at: $0) }
}

/// "NaN at element i", "+Inf at element i" or "-Inf at element i".
func nonFiniteDescription(_ value: Float, at index: Int) -> String {
    "\(value.isNaN ? "NaN" : (value > 0 ? "+Inf" : "-Inf")) at element \(index)"
}

/// The first parameter of `module` (by name) holding NaN or Inf, as "name: NaN at element i".
public func firstNonFiniteParameter(_ module: Module) -> String? {
    for (name, t) in module.namedParameters().sorted(by: { $0.name < $1.name }) {
        if let bad = firstNonFinite(t) { return "\(name): \(bad)" }
    }
    return nil
}
