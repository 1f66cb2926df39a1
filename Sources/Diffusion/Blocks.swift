import Foundation
import Tensors

// The UNet's building blocks, named and structured as diffusers' modules so that state-dict keys
// match: ResnetBlock2D, Attention, GEGLU/FeedForward, BasicTransformerBlock, Transformer2DModel,
// Downsample2D, Upsample2D.

/// diffusers `ResnetBlock2D`: GroupNorm→SiLU→conv, + time embedding (absent in the VAE), GroupNorm→SiLU→conv,
/// + shortcut.
public final class ResnetBlock2D: Module {
    public var norm1: GroupNorm
    public var conv1: Conv2d
    public var time_emb_proj: Linear?
    public var norm2: GroupNorm
    public var conv2: Conv2d
    public var conv_shortcut: Conv2d?
    let _outputScale: Float

    public init(inChannels: Int, outChannels: Int, temb: Int?, groups: Int, eps: Float, outputScale: Float = 1, rng: inout RNG) {
        norm1 = GroupNorm(groups: groups, channels: inChannels, eps: eps)
        conv1 = Conv2d(inChannels, outChannels, kernelSize: 3, padding: 1, rng: &rng)
        time_emb_proj = temb.map { Linear($0, outChannels, rng: &rng) }
        norm2 = GroupNorm(groups: groups, channels: outChannels, eps: eps)
        conv2 = Conv2d(outChannels, outChannels, kernelSize: 3, padding: 1, rng: &rng)
        conv_shortcut = inChannels == outChannels ? nil : Conv2d(inChannels, outChannels, kernelSize: 1, rng: &rng)
        _outputScale = outputScale
    }

    public func callAsFunction(_ x: Tensor, temb: Tensor?) -> Tensor {
        var h = conv1(norm1(x).silu())
        if let time_emb_proj, let temb {
            let t = time_emb_proj(temb.silu())
            h = h + t.reshaped([t.shape[0], t.shape[1], 1, 1])
        }
        h = conv2(norm2(h).silu())
        let skip = conv_shortcut.map { $0(x) } ?? x
        let out = skip + h
        return _outputScale == 1 ? out : out / _outputScale
    }
}

/// diffusers `Attention` (self- or cross-): to_q/to_k/to_v without bias, to_out.0 with bias.
public final class Attention: Module {
    public var to_q: Linear
    public var to_k: Linear
    public var to_v: Linear
    public var to_out: [Module]
    let _heads: Int

    public init(queryDim: Int, contextDim: Int?, heads: Int, headDim: Int, rng: inout RNG) {
        let inner = heads * headDim
        to_q = Linear(queryDim, inner, bias: false, rng: &rng)
        to_k = Linear(contextDim ?? queryDim, inner, bias: false, rng: &rng)
        to_v = Linear(contextDim ?? queryDim, inner, bias: false, rng: &rng)
        to_out = [Linear(inner, queryDim, rng: &rng), Placeholder()]
        _heads = heads
    }

    /// x: [B, L, C]; context: [B, T, Cctx] or nil (self-attention). Returns output and, when asked,
    /// probabilities [B, heads, L, T].
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil, wantProbabilities: Bool = false) -> (Tensor, Tensor?) {
        let ctx = context ?? x
        let b = x.shape[0], l = x.shape[1], t = ctx.shape[1]
        func split(_ y: Tensor, _ n: Int) -> Tensor {
            y.reshaped([b, n, _heads, y.shape[2] / _heads]).permuted([0, 2, 1, 3])
        }
        let q = split(to_q(x), l), k = split(to_k(ctx), t), v = split(to_v(ctx), t)
        let r = scaledDotProductAttention(query: q, key: k, value: v, returnProbabilities: wantProbabilities)
        let merged = r.output.permuted([0, 2, 1, 3]).reshaped([b, l, -1])
        return ((to_out[0] as! Linear)(merged), r.probabilities)
    }
}

/// diffusers `GEGLU`: one projection to 2×inner, value · GELU(gate).
public final class GEGLU: Module {
    public var proj: Linear
    public init(_ dim: Int, _ inner: Int, rng: inout RNG) { proj = Linear(dim, inner * 2, rng: &rng) }
    public func callAsFunction(_ x: Tensor) -> Tensor { proj(x).geglu() }
}

/// diffusers `FeedForward` with GEGLU: net.0 = GEGLU, net.1 = dropout, net.2 = Linear.
public final class FeedForward: Module {
    public var net: [Module]
    public init(_ dim: Int, mult: Int = 4, rng: inout RNG) {
        net = [GEGLU(dim, dim * mult, rng: &rng), Placeholder(), Linear(dim * mult, dim, rng: &rng)]
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { (net[2] as! Linear)((net[0] as! GEGLU)(x)) }
}

/// diffusers `BasicTransformerBlock`: self-attention, cross-attention, GEGLU feed-forward, pre-LayerNorm.
public final class BasicTransformerBlock: Module {
    public var norm1: LayerNorm
    public var attn1: Attention
    public var norm2: LayerNorm
    public var attn2: Attention
    public var norm3: LayerNorm
    public var ff: FeedForward

    public init(dim: Int, contextDim: Int, heads: Int, rng: inout RNG) {
        let headDim = dim / heads
        norm1 = LayerNorm(dim)
        attn1 = Attention(queryDim: dim, contextDim: nil, heads: heads, headDim: headDim, rng: &rng)
        norm2 = LayerNorm(dim)
        attn2 = Attention(queryDim: dim, contextDim: contextDim, heads: heads, headDim: headDim, rng: &rng)
        norm3 = LayerNorm(dim)
        ff = FeedForward(dim, rng: &rng)
    }

    /// `onCrossAttention` receives the cross-attention probabilities [B, heads, L, T].
    public func callAsFunction(_ x: Tensor, context: Tensor, onCrossAttention: ((Tensor) -> Void)?) -> Tensor {
        var h = x + attn1(norm1(x)).0
        let (c, probs) = attn2(norm2(h), context: context, wantProbabilities: onCrossAttention != nil)
        if let probs { onCrossAttention?(probs) }
        h = h + c
        return h + ff(norm3(h))
    }
}

/// diffusers `Transformer2DModel` (one transformer layer): GroupNorm (eps 1e-6), proj_in (1×1 conv or
/// linear), blocks, proj_out, residual.
public final class Transformer2DModel: Module {
    public var norm: GroupNorm
    public var proj_in: Module
    public var transformer_blocks: [BasicTransformerBlock]
    public var proj_out: Module
    let _linear: Bool

    public init(channels: Int, heads: Int, contextDim: Int, groups: Int, linearProjection: Bool, rng: inout RNG) {
        norm = GroupNorm(groups: groups, channels: channels, eps: 1e-6)
        _linear = linearProjection
        if linearProjection {
            proj_in = Linear(channels, channels, rng: &rng)
            proj_out = Linear(channels, channels, rng: &rng)
        } else {
            proj_in = Conv2d(channels, channels, kernelSize: 1, rng: &rng)
            proj_out = Conv2d(channels, channels, kernelSize: 1, rng: &rng)
        }
        transformer_blocks = [BasicTransformerBlock(dim: channels, contextDim: contextDim, heads: heads, rng: &rng)]
    }

    public func callAsFunction(_ x: Tensor, context: Tensor, onCrossAttention: ((Tensor) -> Void)?) -> Tensor {
        let b = x.shape[0], c = x.shape[1], hgt = x.shape[2], w = x.shape[3]
        var h = norm(x)
        if _linear {
            h = (proj_in as! Linear)(h.reshaped([b, c, hgt * w]).transposed(1, 2))
        } else {
            h = (proj_in as! Conv2d)(h).reshaped([b, c, hgt * w]).transposed(1, 2)
        }
        for block in transformer_blocks { h = block(h, context: context, onCrossAttention: onCrossAttention) }
        if _linear {
            h = (proj_out as! Linear)(h).transposed(1, 2).reshaped([b, c, hgt, w])
        } else {
            h = (proj_out as! Conv2d)(h.transposed(1, 2).reshaped([b, c, hgt, w]))
        }
        return h + x
    }
}

/// diffusers `Downsample2D`: stride-2 3×3 conv. With padding 0 (the VAE encoder) the input is first
/// zero-padded by one row at the bottom and one column at the right, as diffusers does.
public final class Downsample2D: Module {
    public var conv: Conv2d
    public init(_ channels: Int, padding: Int, rng: inout RNG) {
        conv = Conv2d(channels, channels, kernelSize: 3, stride: 2, padding: padding, rng: &rng)
    }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard conv.padding == 0 else { return conv(x) }
        let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let wide = Tensor.concat([x, Tensor(zeros: [b, c, h, 1])], axis: 3)
        return conv(Tensor.concat([wide, Tensor(zeros: [b, c, 1, w + 1])], axis: 2))
    }
}

/// diffusers `Upsample2D`: nearest 2× then 3×3 conv.
public final class Upsample2D: Module {
    public var conv: Conv2d
    public init(_ channels: Int, rng: inout RNG) { conv = Conv2d(channels, channels, kernelSize: 3, padding: 1, rng: &rng) }
    public func callAsFunction(_ x: Tensor) -> Tensor { conv(x.upsampleNearest2x()) }
}
