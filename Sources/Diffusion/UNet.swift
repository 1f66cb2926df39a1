import Foundation
import Tensors

/// diffusers `TimestepEmbedding`: linear_1 → SiLU → linear_2.
public final class TimestepEmbedding: Module {
    public var linear_1: Linear
    public var linear_2: Linear
    public init(_ inDim: Int, _ dim: Int, rng: inout RNG) {
        linear_1 = Linear(inDim, dim, rng: &rng)
        linear_2 = Linear(dim, dim, rng: &rng)
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { linear_2(linear_1(x).silu()) }
}

/// Sinusoidal timestep features as diffusers' `get_timestep_embedding`: exponent −ln(10000)·i/(half − shift),
/// [sin, cos] or [cos, sin] when `flipSinToCos`.
public func timestepFeatures(_ timesteps: [Float], dim: Int, flipSinToCos: Bool, freqShift: Float) -> Tensor {
    let half = dim / 2
    let out = Tensor(zeros: [timesteps.count, dim])
    for (r, t) in timesteps.enumerated() {
        for i in 0..<half {
            let freq = Foundation.exp(-Foundation.log(Float(10000)) * Float(i) / (Float(half) - freqShift))
            let a = t * freq
            let (first, second) = flipSinToCos ? (Foundation.cos(a), Foundation.sin(a)) : (Foundation.sin(a), Foundation.cos(a))
            out[r, i] = first
            out[r, half + i] = second
        }
    }
    return out
}

/// One down block (`CrossAttnDownBlock2D` when it has attentions, else `DownBlock2D`).
public final class DownBlock: Module {
    public var resnets: [ResnetBlock2D]
    public var attentions: [Transformer2DModel]
    public var downsamplers: [Downsample2D]

    init(resnets: [ResnetBlock2D], attentions: [Transformer2DModel], downsamplers: [Downsample2D]) {
        self.resnets = resnets
        self.attentions = attentions
        self.downsamplers = downsamplers
    }
}

/// One up block (`CrossAttnUpBlock2D` when it has attentions, else `UpBlock2D`).
public final class UpBlock: Module {
    public var resnets: [ResnetBlock2D]
    public var attentions: [Transformer2DModel]
    public var upsamplers: [Upsample2D]

    init(resnets: [ResnetBlock2D], attentions: [Transformer2DModel], upsamplers: [Upsample2D]) {
        self.resnets = resnets
        self.attentions = attentions
        self.upsamplers = upsamplers
    }
}

/// diffusers `UNetMidBlock2DCrossAttn`: resnet, transformer, resnet.
public final class MidBlock: Module {
    public var resnets: [ResnetBlock2D]
    public var attentions: [Transformer2DModel]

    init(resnets: [ResnetBlock2D], attentions: [Transformer2DModel]) {
        self.resnets = resnets
        self.attentions = attentions
    }
}

/// diffusers `UNet2DConditionModel` for SD 1.x/2.x-style configs, and at a tiny config the embedded
/// toy model. Predicts noise (or v) from a noisy sample, a timestep and text context.
public final class UNet2DConditionModel: Module {
    public let _config: UNet2DConditionConfig
    public var conv_in: Conv2d
    public var time_embedding: TimestepEmbedding
    public var down_blocks: [DownBlock]
    public var mid_block: MidBlock
    public var up_blocks: [UpBlock]
    public var conv_norm_out: GroupNorm
    public var conv_out: Conv2d

    public var config: UNet2DConditionConfig { _config }

    public init(config: UNet2DConditionConfig, seed: UInt64 = 0) throws {
        try config.validate()
        _config = config
        var rng = RNG(seed: seed)
        let ch = config.block_out_channels, n = ch.count
        let temb = ch[0] * 4, groups = config.norm_num_groups, eps = config.norm_eps
        conv_in = Conv2d(config.in_channels, ch[0], kernelSize: 3, padding: 1, rng: &rng)
        time_embedding = TimestepEmbedding(ch[0], temb, rng: &rng)

        var downs: [DownBlock] = []
        var outCh = ch[0]
        for i in 0..<n {
            let inCh = outCh
            outCh = ch[i]
            let cross = config.down_block_types[i] == "CrossAttnDownBlock2D"
            var resnets: [ResnetBlock2D] = [], attns: [Transformer2DModel] = []
            for j in 0..<config.layers_per_block {
                resnets.append(ResnetBlock2D(inChannels: j == 0 ? inCh : outCh, outChannels: outCh, temb: temb,
                                             groups: groups, eps: eps, rng: &rng))
                if cross {
                    attns.append(Transformer2DModel(channels: outCh, heads: config.heads(block: i), contextDim: config.cross_attention_dim,
                                                    groups: groups, linearProjection: config.use_linear_projection, rng: &rng))
                }
            }
            let down = i < n - 1 ? [Downsample2D(outCh, padding: config.downsample_padding, rng: &rng)] : []
            downs.append(DownBlock(resnets: resnets, attentions: attns, downsamplers: down))
        }
        down_blocks = downs

        let last = ch[n - 1]
        mid_block = MidBlock(
            resnets: [ResnetBlock2D(inChannels: last, outChannels: last, temb: temb, groups: groups, eps: eps,
                                    outputScale: config.mid_block_scale_factor, rng: &rng),
                      ResnetBlock2D(inChannels: last, outChannels: last, temb: temb, groups: groups, eps: eps,
                                    outputScale: config.mid_block_scale_factor, rng: &rng)],
            attentions: [Transformer2DModel(channels: last, heads: config.heads(block: n - 1), contextDim: config.cross_attention_dim,
                                            groups: groups, linearProjection: config.use_linear_projection, rng: &rng)])

        var ups: [UpBlock] = []
        let rev = Array(ch.reversed())
        let revHeads = (0..<n).map { config.heads(block: n - 1 - $0) }
        var output = rev[0]
        for i in 0..<n {
            let prevOutput = output
            output = rev[i]
            let input = rev[min(i + 1, n - 1)]
            let cross = config.up_block_types[i] == "CrossAttnUpBlock2D"
            var resnets: [ResnetBlock2D] = [], attns: [Transformer2DModel] = []
            let layers = config.layers_per_block + 1
            for j in 0..<layers {
                let skip = j == layers - 1 ? input : output
                let resIn = j == 0 ? prevOutput : output
                resnets.append(ResnetBlock2D(inChannels: resIn + skip, outChannels: output, temb: temb, groups: groups, eps: eps, rng: &rng))
                if cross {
                    attns.append(Transformer2DModel(channels: output, heads: revHeads[i], contextDim: config.cross_attention_dim,
                                                    groups: groups, linearProjection: config.use_linear_projection, rng: &rng))
                }
            }
            let up = i < n - 1 ? [Upsample2D(output, rng: &rng)] : []
            ups.append(UpBlock(resnets: resnets, attentions: attns, upsamplers: up))
        }
        up_blocks = ups
        conv_norm_out = GroupNorm(groups: groups, channels: ch[0], eps: eps)
        conv_out = Conv2d(ch[0], config.out_channels, kernelSize: 3, padding: 1, rng: &rng)
    }

    /// Predicts the model output for `sample` [B, C, H, W] at `timesteps` (one per batch item, or one
    /// for all) with text `context` [B, T, D]. With `capture`, every cross-attention layer reports its
    /// probabilities.
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], context: Tensor, capture: AttentionCapture? = nil) -> Tensor {
        // Without a layer limit the pass always reaches the output.
        forward(sample, timesteps: timesteps, context: context, capture: capture, layerLimit: nil)!
    }

    /// Every cross-attention layer's probabilities for `sample` (the conditional half of a CFG batch),
    /// in forward order and kept on the tape: steering differentiates through the maps. The pass stops
    /// after the last cross-attention layer, since steering needs the maps and not the output.
    public func crossAttention(_ sample: Tensor, timesteps: [Float], context: Tensor) -> [CapturedAttention] {
        let capture = AttentionCapture(keepOnTape: true)
        _ = forward(sample, timesteps: timesteps, context: context, capture: capture, layerLimit: crossAttentionLayerCount)
        return capture.layers
    }

    /// The forward pass; nil when it stops once `layerLimit` cross-attention layers have reported.
    private func forward(_ sample: Tensor, timesteps: [Float], context: Tensor, capture: AttentionCapture?, layerLimit: Int?) -> Tensor? {
        let b = sample.shape[0]
        let ts = timesteps.count == 1 ? [Float](repeating: timesteps[0], count: b) : timesteps
        precondition(ts.count == b, "UNet: \(timesteps.count) timesteps for batch \(b)")
        let features = timestepFeatures(ts, dim: _config.block_out_channels[0], flipSinToCos: _config.flip_sin_to_cos,
                                        freqShift: Float(_config.freq_shift))
        let temb = time_embedding(features)
        var x = _config.center_input_sample ? sample * 2 - 1 : sample
        x = conv_in(x)
        var skips: [Tensor] = [x]
        var captured = 0
        func hook(_ name: String, _ place: UNetPlace, _ h: Int, _ w: Int) -> ((Tensor) -> Void)? {
            guard let capture else { return nil }
            return { probs in
                capture.record(layer: name, place: place, height: h, width: w, probabilities: probs)
                captured += 1
            }
        }
        func done() -> Bool { layerLimit.map { captured >= $0 } ?? false }

        for (i, block) in down_blocks.enumerated() {
            for (j, resnet) in block.resnets.enumerated() {
                x = resnet(x, temb: temb)
                if j < block.attentions.count {
                    let name = "down_blocks.\(i).attentions.\(j).transformer_blocks.0.attn2"
                    x = block.attentions[j](x, context: context, onCrossAttention: hook(name, .down, x.shape[2], x.shape[3]))
                    if done() { return nil }
                }
                skips.append(x)
            }
            for d in block.downsamplers { x = d(x); skips.append(x) }
        }
        x = mid_block.resnets[0](x, temb: temb)
        x = mid_block.attentions[0](x, context: context,
                                    onCrossAttention: hook("mid_block.attentions.0.transformer_blocks.0.attn2", .mid, x.shape[2], x.shape[3]))
        if done() { return nil }
        x = mid_block.resnets[1](x, temb: temb)
        for (i, block) in up_blocks.enumerated() {
            for (j, resnet) in block.resnets.enumerated() {
                x = resnet(Tensor.concat([x, skips.removeLast()], axis: 1), temb: temb)
                if j < block.attentions.count {
                    let name = "up_blocks.\(i).attentions.\(j).transformer_blocks.0.attn2"
                    x = block.attentions[j](x, context: context, onCrossAttention: hook(name, .up, x.shape[2], x.shape[3]))
                    if done() { return nil }
                }
            }
            for u in block.upsamplers { x = u(x) }
        }
        return conv_out(conv_norm_out(x).silu())
    }

    /// Number of cross-attention layers, in forward order.
    public var crossAttentionLayerCount: Int {
        down_blocks.reduce(0) { $0 + $1.attentions.count } + 1 + up_blocks.reduce(0) { $0 + $1.attentions.count }
    }
}
