import Foundation
import Tensors
import Diffusion

// The paper's relation classifier (the authors' `train_relation_classifier/model.py`), with the parameter names of the authors'
// PyTorch module (`EnhancedRelationClassifier`), so their checkpoints convert with no renaming:
//   object_extractor.{input_projection, timestep_embedding, transformer.layers.N.*, query_vector,
//                     layer_attention.{in_proj_weight,in_proj_bias,out_proj}, output_projection}
//   relation_classifier.{timestep_embedding, projection, transformer.layers.N.*, fc.{0,1,4,5,8}}
// (The converted file drops the `positional_encoding.pe` buffers, which are recomputed here.)

/// Sizes of the classifier (the authors' YAML `model` section).
public struct RelationClassifierConfig: Codable, Equatable, Sendable {
    public var d_model: Int = 256
    public var map_size: Int = 16
    public var num_timesteps: Int = 50
    public var num_classes: Int = 5
    public var extractor_nhead: Int = 2
    public var extractor_num_layers: Int = 2
    public var extractor_dim_feedforward: Int = 128
    public var extractor_layer_attn_nheads: Int = 2
    public var classifier_nhead: Int = 4
    public var classifier_num_layers: Int = 2
    public var classifier_dim_feedforward: Int = 128
    public var timestep_embedding_dim: Int = 16
    public var dropout: Float = 0.3
    /// Length of the extractor's channel positional-encoding table (≥ C; the authors hard-code 1368).
    public var max_channels: Int = 1368
    /// The step indices the classifier was trained on; a sampling step maps to the smallest ≥ it.
    public var training_steps: [Int] = [5, 10, 15, 20, 25, 49]
    /// Multiplies the input maps (1 for the authors' checkpoints). Maps sum to 1 over 16×16, so their
    /// values are ~1/256 and vanish next to the positional and step embeddings; 256 makes a uniform map
    /// read as 1 (measured: without it the toy classifier did not leave chance level in 6 epochs).
    public var input_scale: Float = 1

    public init() {}

    enum CodingKeys: String, CodingKey {
        case d_model, map_size, num_timesteps, num_classes, extractor_nhead, extractor_num_layers, extractor_dim_feedforward,
             extractor_layer_attn_nheads, classifier_nhead, classifier_num_layers, classifier_dim_feedforward,
             timestep_embedding_dim, dropout, max_channels, training_steps, input_scale
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = RelationClassifierConfig()
        try c.update(.d_model, &d.d_model); try c.update(.map_size, &d.map_size); try c.update(.num_timesteps, &d.num_timesteps)
        try c.update(.num_classes, &d.num_classes); try c.update(.extractor_nhead, &d.extractor_nhead)
        try c.update(.extractor_num_layers, &d.extractor_num_layers); try c.update(.extractor_dim_feedforward, &d.extractor_dim_feedforward)
        try c.update(.extractor_layer_attn_nheads, &d.extractor_layer_attn_nheads); try c.update(.classifier_nhead, &d.classifier_nhead)
        try c.update(.classifier_num_layers, &d.classifier_num_layers); try c.update(.classifier_dim_feedforward, &d.classifier_dim_feedforward)
        try c.update(.timestep_embedding_dim, &d.timestep_embedding_dim); try c.update(.dropout, &d.dropout)
        try c.update(.max_channels, &d.max_channels); try c.update(.training_steps, &d.training_steps); try c.update(.input_scale, &d.input_scale)
        self = d
    }

    /// The SD 1.4 / 2.1 configuration of the authors' YAML files.
    public static var stableDiffusion: RelationClassifierConfig { RelationClassifierConfig() }

    /// Checks ranges and relations (heads divide d_model, training steps inside the step table) before
    /// anything is allocated; throws a message naming `file` and the field.
    public func validate(file: String) throws {
        func fail(_ m: String) -> ConfigError { ConfigError.unsupported("\(file): classifier config: \(m)") }
        let width = max(d_model, 1)  // a range's bounds must be ordered, or building it traps
        let sizes: [(String, Int, ClosedRange<Int>)] = [
            ("d_model", d_model, 1...4096), ("map_size", map_size, 16...16), ("num_timesteps", num_timesteps, 1...1000),
            ("num_classes", num_classes, 5...5), ("extractor_nhead", extractor_nhead, 1...width),
            ("extractor_num_layers", extractor_num_layers, 0...64), ("extractor_dim_feedforward", extractor_dim_feedforward, 1...65_536),
            ("extractor_layer_attn_nheads", extractor_layer_attn_nheads, 1...width), ("classifier_nhead", classifier_nhead, 1...width),
            ("classifier_num_layers", classifier_num_layers, 0...64), ("classifier_dim_feedforward", classifier_dim_feedforward, 1...65_536),
            ("timestep_embedding_dim", timestep_embedding_dim, 1...4096), ("max_channels", max_channels, 1...100_000),
        ]
        for (name, v, r) in sizes where !r.contains(v) { throw fail("\(name) = \(v) is outside \(r.lowerBound)…\(r.upperBound)") }
        for (name, h) in [("extractor_nhead", extractor_nhead), ("extractor_layer_attn_nheads", extractor_layer_attn_nheads),
                          ("classifier_nhead", classifier_nhead)] where d_model % h != 0 {
            throw fail("d_model \(d_model) is not divisible by \(name) \(h)")
        }
        guard !training_steps.isEmpty, training_steps.allSatisfy({ (0..<num_timesteps).contains($0) }) else {
            throw fail("training_steps must be non-empty and inside 0..<\(num_timesteps)")
        }
        guard dropout.isFinite, dropout >= 0, dropout < 1 else { throw fail("dropout \(dropout) must be in [0, 1)") }
        guard input_scale.isFinite, input_scale > 0 else { throw fail("input_scale \(input_scale) must be finite and > 0") }
    }

    /// Maps a denoising step index to the classifier's step input (`assign_by_intervals`).
    public func classifierStep(for step: Int) -> Int {
        training_steps.first { $0 >= step } ?? training_steps.last ?? 0
    }
}

/// Fixed sinusoidal table pe[p, 2k] = sin(p·10000^(−2k/d)), pe[p, 2k+1] = cos(·): [maxLen, d].
public func sinusoidalTable(length: Int, dim: Int) -> Tensor {
    let t = Tensor(zeros: [length, dim])
    for p in 0..<length {
        for k in stride(from: 0, to: dim, by: 2) {
            let a = Float(p) * Foundation.exp(Float(k) * -Foundation.log(Float(10000)) / Float(dim))
            t[p, k] = Foundation.sin(a)
            if k + 1 < dim { t[p, k + 1] = Foundation.cos(a) }
        }
    }
    return t
}

/// PyTorch `nn.MultiheadAttention` (batch_first) parameters and forward: packed in_proj, out_proj.
public final class MultiheadAttention: Module {
    public var in_proj_weight: Tensor
    public var in_proj_bias: Tensor
    public var out_proj: Linear
    let _heads: Int

    public init(_ dim: Int, heads: Int, rng: inout RNG) {
        let bound = (6 / Float(dim + dim)).squareRoot()  // xavier_uniform over [3d, d] as PyTorch
        in_proj_weight = uniformInit([3 * dim, dim], bound: bound, rng: &rng)
        in_proj_bias = Tensor(zeros: [3 * dim])
        in_proj_bias.requiresGrad = true
        out_proj = Linear(dim, dim, rng: &rng)
        out_proj.bias!.pointer.update(repeating: 0, count: dim)
        _heads = heads
    }

    /// query [B, Lq, d], key = value [B, Lk, d] → [B, Lq, d].
    public func callAsFunction(query: Tensor, keyValue: Tensor) -> Tensor {
        let d = query.shape[2], b = query.shape[0], lq = query.shape[1], lk = keyValue.shape[1]
        let w = in_proj_weight.chunked(3, axis: 0), bias = in_proj_bias.chunked(3, axis: 0)
        func split(_ y: Tensor, _ l: Int) -> Tensor { y.reshaped([b, l, _heads, d / _heads]).permuted([0, 2, 1, 3]) }
        let q = split(linear(query, weight: w[0], bias: bias[0]), lq)
        let k = split(linear(keyValue, weight: w[1], bias: bias[1]), lk)
        let v = split(linear(keyValue, weight: w[2], bias: bias[2]), lk)
        let o = scaledDotProductAttention(query: q, key: k, value: v).output
        return out_proj(o.permuted([0, 2, 1, 3]).reshaped([b, lq, d]))
    }
}

/// PyTorch `TransformerEncoderLayer(norm_first=True, activation=relu, batch_first=True)`:
/// x += dropout(SA(LN1 x)); x += dropout(linear2(dropout(relu(linear1(LN2 x))))).
public final class TransformerEncoderLayer: Module {
    public var self_attn: MultiheadAttention
    public var linear1: Linear
    public var linear2: Linear
    public var norm1: LayerNorm
    public var norm2: LayerNorm
    let _dropout: Float

    public init(dim: Int, heads: Int, feedForward: Int, dropout: Float, rng: inout RNG) {
        self_attn = MultiheadAttention(dim, heads: heads, rng: &rng)
        linear1 = Linear(dim, feedForward, rng: &rng)
        linear2 = Linear(feedForward, dim, rng: &rng)
        norm1 = LayerNorm(dim)
        norm2 = LayerNorm(dim)
        _dropout = dropout
    }

    public func callAsFunction(_ x: Tensor, rng: inout RNG) -> Tensor {
        let h1 = norm1(x)
        var x = x + self_attn(query: h1, keyValue: h1).dropout(_dropout, training: isTraining, rng: &rng)
        let ff = linear2(linear1(norm2(x)).relu().dropout(_dropout, training: isTraining, rng: &rng))
        x = x + ff.dropout(_dropout, training: isTraining, rng: &rng)
        return x
    }
}

/// PyTorch `TransformerEncoder` (no final norm): `layers.N`.
public final class TransformerEncoder: Module {
    public var layers: [TransformerEncoderLayer]
    public init(layers: [TransformerEncoderLayer]) { self.layers = layers }
}

/// The authors' `CrossAttentionExtractor`: per-channel 16×16 maps → one aggregated 16×16 map, with a
/// channel positional encoding, the step embedding added before every layer ("mid") and a learned
/// query that pools over channels.
public final class CrossAttentionExtractor: Module {
    public var input_projection: Linear
    public var timestep_embedding: Embedding
    public var transformer: TransformerEncoder
    public var query_vector: Tensor
    public var layer_attention: MultiheadAttention
    public var output_projection: Linear
    let _pe: Tensor

    init(_ c: RelationClassifierConfig, rng: inout RNG) {
        let d = c.d_model, area = c.map_size * c.map_size
        input_projection = Linear(area, d, rng: &rng)
        timestep_embedding = Embedding(c.num_timesteps, d, rng: &rng)
        transformer = TransformerEncoder(layers: (0..<c.extractor_num_layers).map { _ in
            TransformerEncoderLayer(dim: d, heads: c.extractor_nhead, feedForward: c.extractor_dim_feedforward, dropout: c.dropout, rng: &rng)
        })
        query_vector = Tensor.randn([1, 1, d], rng: &rng)
        query_vector.requiresGrad = true
        layer_attention = MultiheadAttention(d, heads: c.extractor_layer_attn_nheads, rng: &rng)
        output_projection = Linear(d, area, rng: &rng)
        _pe = sinusoidalTable(length: c.max_channels, dim: d)
    }

    /// maps [B, C, s, s], steps (classifier step indices, one per batch item) → [B, s·s].
    func callAsFunction(_ maps: Tensor, steps: [Int], rng: inout RNG) -> Tensor {
        let b = maps.shape[0], c = maps.shape[1]
        precondition(c <= _pe.shape[0], "classifier: \(c) channels > positional table \(_pe.shape[0])")
        var x = input_projection(maps.reshaped([b, c, -1]))
        x = x + _pe.sliced(axis: 0, 0..<c)
        let temb = timestep_embedding(steps).reshaped([b, 1, -1])
        for layer in transformer.layers { x = layer(x + temb, rng: &rng) }
        let q = query_vector.expanded(to: [b, 1, x.shape[2]])
        let pooled = layer_attention(query: q, keyValue: x).reshaped([b, -1])
        return output_projection(pooled)
    }
}

/// The authors' `RelationClassifierTransformer` head.
public final class RelationClassifierHead: Module {
    public var timestep_embedding: Embedding
    public var projection: Linear
    public var transformer: TransformerEncoder
    public var fc: [Module]
    let _pe0: Tensor
    let _dropout: Float

    init(_ c: RelationClassifierConfig, rng: inout RNG) {
        let d = c.d_model
        timestep_embedding = Embedding(c.num_timesteps, c.timestep_embedding_dim, rng: &rng)
        projection = Linear(2 * c.map_size * c.map_size, d, rng: &rng)
        transformer = TransformerEncoder(layers: (0..<c.classifier_num_layers).map { _ in
            TransformerEncoderLayer(dim: d, heads: c.classifier_nhead, feedForward: c.classifier_dim_feedforward, dropout: c.dropout, rng: &rng)
        })
        fc = [Linear(d + c.timestep_embedding_dim, 256, rng: &rng), LayerNorm(256), Placeholder(), Placeholder(),
              Linear(256, 128, rng: &rng), LayerNorm(128), Placeholder(), Placeholder(),
              Linear(128, c.num_classes, rng: &rng)]
        _pe0 = sinusoidalTable(length: 1, dim: d)
        _dropout = c.dropout
    }

    /// extracted [B, 2, s·s] → logits [B, classes].
    func callAsFunction(_ extracted: Tensor, steps: [Int], rng: inout RNG) -> Tensor {
        let b = extracted.shape[0]
        var x = projection(extracted.reshaped([b, -1])).reshaped([b, 1, -1]) + _pe0
        for layer in transformer.layers { x = layer(x, rng: &rng) }
        x = Tensor.concat([x.reshaped([b, -1]), timestep_embedding(steps)], axis: 1)
        let training = isTraining
        x = (fc[1] as! LayerNorm)((fc[0] as! Linear)(x)).leakyRelu(0.1).dropout(_dropout, training: training, rng: &rng)
        x = (fc[5] as! LayerNorm)((fc[4] as! Linear)(x)).leakyRelu(0.1).dropout(_dropout, training: training, rng: &rng)
        return (fc[8] as! Linear)(x)
    }
}

/// The whole classifier: shared extractor on subject and object maps, then the head.
/// Input maps [B, 2, C, 16, 16] (subject first), step indices [B]; output logits [B, 5] over
/// {above, below, is, to the left of, to the right of}.
public final class RelationClassifier: Module {
    public let _config: RelationClassifierConfig
    public var object_extractor: CrossAttentionExtractor
    public var relation_classifier: RelationClassifierHead
    /// Dropout randomness (training only).
    public var _rng: RNG

    public init(config: RelationClassifierConfig, seed: UInt64 = 0) {
        _config = config
        var rng = RNG(seed: seed)
        object_extractor = CrossAttentionExtractor(config, rng: &rng)
        relation_classifier = RelationClassifierHead(config, rng: &rng)
        _rng = RNG(seed: seed &+ 1)
    }

    public var config: RelationClassifierConfig { _config }

    public func callAsFunction(_ maps: Tensor, steps: [Int]) -> Tensor {
        precondition(maps.rank == 5 && maps.shape[1] == 2, "classifier expects [B, 2, C, s, s], got \(maps.shape)")
        let b = maps.shape[0], c = maps.shape[2], s = maps.shape[3]
        precondition(steps.count == b, "classifier: \(steps.count) steps for batch \(b)")
        precondition(steps.allSatisfy { $0 >= 0 && $0 < _config.num_timesteps }, "classifier step outside 0..<\(_config.num_timesteps)")
        let scaled = _config.input_scale == 1 ? maps : maps * _config.input_scale
        let subject = scaled.sliced(axis: 1, 0..<1).reshaped([b, c, s, s])
        let object = scaled.sliced(axis: 1, 1..<2).reshaped([b, c, s, s])
        // One extractor pass over both objects (shared weights) = the same as two passes.
        let both = object_extractor(Tensor.concat([subject, object], axis: 0), steps: steps + steps, rng: &_rng)
        let halves = both.chunked(2, axis: 0)
        return relation_classifier(Tensor.stack([halves[0], halves[1]], axis: 1), steps: steps, rng: &_rng)
    }
}

extension RelationClassifier {
    /// Saves weights (fp16 by default) with the config in the file's metadata.
    public func saveClassifier(to path: String, dtype: SafetensorsDType = .f16, metadata: [String: String] = [:]) throws {
        var meta = metadata
        meta["config"] = String(data: try JSONEncoder().encode(_config), encoding: .utf8)!
        meta["format"] = "learn-to-steer relation classifier"
        try save(to: path, dtype: dtype, metadata: meta)
    }

    /// Loads a classifier written by `save(to:)` (config from the file's metadata), in eval mode.
    public static func load(path: String) throws -> RelationClassifier {
        let file = try SafetensorsFile(path: path)
        guard let json = file.metadata["config"], let data = json.data(using: .utf8) else {
            throw ConfigError.malformed(path, "no classifier config in the file's metadata")
        }
        let config: RelationClassifierConfig
        do { config = try JSONDecoder().decode(RelationClassifierConfig.self, from: data) } catch {
            throw ConfigError.malformed(path, "classifier config: \(error)")
        }
        try config.validate(file: path)
        let c = RelationClassifier(config: config)
        try c.loadStateDict(from: file)
        if let bad = firstNonFiniteParameter(c) {
            throw ConfigError.malformed(path, "tensor \(bad) (the first non-finite value; the file is damaged)")
        }
        c.eval()
        c.requiresGrad(false)
        return c
    }
}
