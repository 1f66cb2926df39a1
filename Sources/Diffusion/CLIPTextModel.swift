import Foundation
import Tensors

// transformers' CLIPTextModel: token + position embeddings, pre-LN encoder layers with a causal mask,
// final LayerNorm. Property names are the checkpoint keys under `text_model.`.

public final class CLIPTextEmbeddings: Module {
    public var token_embedding: Embedding
    public var position_embedding: Embedding
    init(_ c: CLIPTextConfig, rng: inout RNG) {
        token_embedding = Embedding(c.vocab_size, c.hidden_size, rng: &rng)
        position_embedding = Embedding(c.max_position_embeddings, c.hidden_size, rng: &rng)
    }
}

public final class CLIPAttention: Module {
    public var q_proj: Linear
    public var k_proj: Linear
    public var v_proj: Linear
    public var out_proj: Linear
    let _heads: Int
    init(_ c: CLIPTextConfig, rng: inout RNG) {
        q_proj = Linear(c.hidden_size, c.hidden_size, rng: &rng)
        k_proj = Linear(c.hidden_size, c.hidden_size, rng: &rng)
        v_proj = Linear(c.hidden_size, c.hidden_size, rng: &rng)
        out_proj = Linear(c.hidden_size, c.hidden_size, rng: &rng)
        _heads = c.num_attention_heads
    }
    func callAsFunction(_ x: Tensor, mask: Tensor) -> Tensor {
        let b = x.shape[0], l = x.shape[1], d = x.shape[2]
        func split(_ y: Tensor) -> Tensor { y.reshaped([b, l, _heads, d / _heads]).permuted([0, 2, 1, 3]) }
        let r = scaledDotProductAttention(query: split(q_proj(x)), key: split(k_proj(x)), value: split(v_proj(x)), mask: mask)
        return out_proj(r.output.permuted([0, 2, 1, 3]).reshaped([b, l, d]))
    }
}

public final class CLIPMLP: Module {
    public var fc1: Linear
    public var fc2: Linear
    let _quickGelu: Bool
    init(_ c: CLIPTextConfig, rng: inout RNG) {
        fc1 = Linear(c.hidden_size, c.intermediate_size, rng: &rng)
        fc2 = Linear(c.intermediate_size, c.hidden_size, rng: &rng)
        _quickGelu = c.hidden_act == "quick_gelu"
    }
    func callAsFunction(_ x: Tensor) -> Tensor {
        let h = fc1(x)
        return fc2(_quickGelu ? h * (h * 1.702).sigmoid() : h.gelu())
    }
}

public final class CLIPEncoderLayer: Module {
    public var self_attn: CLIPAttention
    public var layer_norm1: LayerNorm
    public var mlp: CLIPMLP
    public var layer_norm2: LayerNorm
    init(_ c: CLIPTextConfig, rng: inout RNG) {
        self_attn = CLIPAttention(c, rng: &rng)
        layer_norm1 = LayerNorm(c.hidden_size, eps: c.layer_norm_eps)
        mlp = CLIPMLP(c, rng: &rng)
        layer_norm2 = LayerNorm(c.hidden_size, eps: c.layer_norm_eps)
    }
    func callAsFunction(_ x: Tensor, mask: Tensor) -> Tensor {
        let h = x + self_attn(layer_norm1(x), mask: mask)
        return h + mlp(layer_norm2(h))
    }
}

public final class CLIPEncoder: Module {
    public var layers: [CLIPEncoderLayer]
    init(_ c: CLIPTextConfig, rng: inout RNG) { layers = (0..<c.num_hidden_layers).map { _ in CLIPEncoderLayer(c, rng: &rng) } }
}

public final class CLIPTextTransformer: Module {
    public var embeddings: CLIPTextEmbeddings
    public var encoder: CLIPEncoder
    public var final_layer_norm: LayerNorm
    init(_ c: CLIPTextConfig, rng: inout RNG) {
        embeddings = CLIPTextEmbeddings(c, rng: &rng)
        encoder = CLIPEncoder(c, rng: &rng)
        final_layer_norm = LayerNorm(c.hidden_size, eps: c.layer_norm_eps)
    }
}

/// The text encoder: token ids [B][L] → last_hidden_state [B, L, D] (after the final LayerNorm).
public final class CLIPTextModel: Module {
    public let _config: CLIPTextConfig
    public var text_model: CLIPTextTransformer

    public init(config: CLIPTextConfig, seed: UInt64 = 0) throws {
        try config.validate()
        _config = config
        var rng = RNG(seed: seed)
        text_model = CLIPTextTransformer(config, rng: &rng)
    }

    public func callAsFunction(_ ids: [[Int]]) -> Tensor {
        let b = ids.count, l = ids[0].count
        precondition(ids.allSatisfy { $0.count == l }, "text encoder: token rows of different lengths")
        precondition(l <= _config.max_position_embeddings, "text encoder: \(l) tokens > \(_config.max_position_embeddings) positions")
        let tm = text_model
        let tok = tm.embeddings.token_embedding(ids.flatMap { $0 }).reshaped([b, l, -1])
        let pos = tm.embeddings.position_embedding(Array(0..<l))
        var h = tok + pos
        let mask = causalMask(l)
        for layer in tm.encoder.layers { h = layer(h, mask: mask) }
        return tm.final_layer_norm(h)
    }
}
