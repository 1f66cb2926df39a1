import Foundation
import Tensors

// diffusers' AutoencoderKL (the SD VAE): encoder images → 2·latent channels (mean, log-variance),
// decoder latents → images. Property names are the diffusers checkpoint keys (`encoder.down_blocks.0.
// resnets.1.conv2.weight`, `decoder.mid_block.attentions.0.to_q.weight`, `quant_conv.weight`).
// Every GroupNorm here uses eps 1e-6; the resnets have no time embedding; the encoder's downsamplers
// pad right/bottom only. Latent scaling (× scaling_factor) is the caller's business, as in diffusers.

/// AutoencoderKL configuration with the field names of diffusers' `vae/config.json`.
public struct AutoencoderKLConfig: Codable, Equatable, Sendable {
    public var in_channels: Int = 3
    public var out_channels: Int = 3
    public var down_block_types: [String] = Array(repeating: "DownEncoderBlock2D", count: 4)
    public var up_block_types: [String] = Array(repeating: "UpDecoderBlock2D", count: 4)
    public var block_out_channels: [Int] = [128, 256, 512, 512]
    public var layers_per_block: Int = 2
    public var act_fn: String = "silu"
    public var latent_channels: Int = 4
    public var norm_num_groups: Int = 32
    public var sample_size: Int = 512
    public var scaling_factor: Float = 0.18215
    public var shift_factor: Float? = nil
    public var use_quant_conv: Bool = true
    public var use_post_quant_conv: Bool = true
    public var mid_block_add_attention: Bool = true

    public init() {}

    enum CodingKeys: String, CodingKey {
        case in_channels, out_channels, down_block_types, up_block_types, block_out_channels, layers_per_block, act_fn,
             latent_channels, norm_num_groups, sample_size, scaling_factor, shift_factor, use_quant_conv,
             use_post_quant_conv, mid_block_add_attention
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = AutoencoderKLConfig()
        try c.update(.in_channels, &d.in_channels); try c.update(.out_channels, &d.out_channels)
        try c.update(.down_block_types, &d.down_block_types); try c.update(.up_block_types, &d.up_block_types)
        try c.update(.block_out_channels, &d.block_out_channels); try c.update(.layers_per_block, &d.layers_per_block)
        try c.update(.act_fn, &d.act_fn); try c.update(.latent_channels, &d.latent_channels)
        try c.update(.norm_num_groups, &d.norm_num_groups); try c.update(.sample_size, &d.sample_size)
        try c.update(.scaling_factor, &d.scaling_factor)
        d.shift_factor = try c.decodeIfPresent(Float.self, forKey: .shift_factor)
        try c.update(.use_quant_conv, &d.use_quant_conv); try c.update(.use_post_quant_conv, &d.use_post_quant_conv)
        try c.update(.mid_block_add_attention, &d.mid_block_add_attention)
        self = d
    }

    /// Image pixels per latent pixel (8 for SD: one 2× downsampler per block but the last).
    public var downscale: Int { 1 << (block_out_channels.count - 1) }

    /// Checks the values this implementation supports; throws a message naming the field.
    public func validate(file: String = "vae/config.json") throws {
        func fail(_ m: String) -> ConfigError { FieldCheck(file: file).fail(m) }
        guard !block_out_channels.isEmpty, down_block_types.count == block_out_channels.count,
              up_block_types.count == block_out_channels.count
        else { throw fail("block_out_channels, down_block_types and up_block_types must have the same length") }
        for t in down_block_types where t != "DownEncoderBlock2D" { throw fail("down block type \(t)") }
        for t in up_block_types where t != "UpDecoderBlock2D" { throw fail("up block type \(t)") }
        guard act_fn == "silu" else { throw fail("act_fn \(act_fn)") }
        guard (shift_factor ?? 0) == 0 else { throw fail("shift_factor \(shift_factor!) (an SD3/Flux VAE)") }
        let f = FieldCheck(file: file), B = ConfigBounds.self
        try f.blocks(channels: block_out_channels, layersPerBlock: layers_per_block, groups: norm_num_groups)
        try f.int("in_channels", in_channels, 3...3)
        try f.int("out_channels", out_channels, 3...3)
        try f.int("latent_channels", latent_channels, 1...B.maxImageChannels)
        try f.int("sample_size", sample_size, 1...B.maxSide)
        try f.float("scaling_factor", scaling_factor, 0...1e3, openBelow: true)
    }
}

/// diffusers `Attention` as the VAE's mid block uses it: GroupNorm (eps 1e-6), one head over all
/// channels, q/k/v/out with bias, residual.
public final class VAEAttention: Module {
    public var group_norm: GroupNorm
    public var to_q: Linear
    public var to_k: Linear
    public var to_v: Linear
    public var to_out: [Module]

    public init(channels: Int, groups: Int, rng: inout RNG) {
        group_norm = GroupNorm(groups: groups, channels: channels, eps: 1e-6)
        to_q = Linear(channels, channels, rng: &rng)
        to_k = Linear(channels, channels, rng: &rng)
        to_v = Linear(channels, channels, rng: &rng)
        to_out = [Linear(channels, channels, rng: &rng), Placeholder()]
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let seq = group_norm(x).reshaped([b, c, h * w]).transposed(1, 2).unsqueezed(1)  // [B, 1, HW, C]
        let r = scaledDotProductAttention(query: to_q(seq), key: to_k(seq), value: to_v(seq))
        let out = (to_out[0] as! Linear)(r.output.squeezed(1))  // [B, HW, C]
        return out.transposed(1, 2).reshaped([b, c, h, w]) + x
    }
}

/// diffusers `UNetMidBlock2D` without time embedding: resnet, (attention, resnet).
public final class VAEMidBlock: Module {
    public var attentions: [VAEAttention]
    public var resnets: [ResnetBlock2D]

    init(channels: Int, groups: Int, attention: Bool, rng: inout RNG) {
        resnets = [ResnetBlock2D(inChannels: channels, outChannels: channels, temb: nil, groups: groups, eps: 1e-6, rng: &rng)]
        attentions = attention ? [VAEAttention(channels: channels, groups: groups, rng: &rng)] : []
        resnets.append(ResnetBlock2D(inChannels: channels, outChannels: channels, temb: nil, groups: groups, eps: 1e-6, rng: &rng))
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = resnets[0](x, temb: nil)
        if let attention = attentions.first { h = attention(h) }
        return resnets[1](h, temb: nil)
    }
}

/// diffusers `DownEncoderBlock2D`: resnets, then a right/bottom-padded stride-2 conv (not in the last block).
public final class DownEncoderBlock2D: Module {
    public var resnets: [ResnetBlock2D]
    public var downsamplers: [Downsample2D]

    init(inChannels: Int, outChannels: Int, layers: Int, groups: Int, downsample: Bool, rng: inout RNG) {
        resnets = (0..<layers).map { j in
            ResnetBlock2D(inChannels: j == 0 ? inChannels : outChannels, outChannels: outChannels, temb: nil, groups: groups,
                          eps: 1e-6, rng: &rng)
        }
        downsamplers = downsample ? [Downsample2D(outChannels, padding: 0, rng: &rng)] : []
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for r in resnets { h = r(h, temb: nil) }
        for d in downsamplers { h = d(h) }
        return h
    }
}

/// diffusers `UpDecoderBlock2D`: resnets, then nearest 2× + conv (not in the last block).
public final class UpDecoderBlock2D: Module {
    public var resnets: [ResnetBlock2D]
    public var upsamplers: [Upsample2D]

    init(inChannels: Int, outChannels: Int, layers: Int, groups: Int, upsample: Bool, rng: inout RNG) {
        resnets = (0..<layers).map { j in
            ResnetBlock2D(inChannels: j == 0 ? inChannels : outChannels, outChannels: outChannels, temb: nil, groups: groups,
                          eps: 1e-6, rng: &rng)
        }
        upsamplers = upsample ? [Upsample2D(outChannels, rng: &rng)] : []
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for r in resnets { h = r(h, temb: nil) }
        for u in upsamplers { h = u(h) }
        return h
    }
}

/// The VAE encoder: images [B, 3, H, W] → [B, 2·latent, H/f, W/f] (mean and log-variance).
public final class VAEEncoder: Module {
    public var conv_in: Conv2d
    public var down_blocks: [DownEncoderBlock2D]
    public var mid_block: VAEMidBlock
    public var conv_norm_out: GroupNorm
    public var conv_out: Conv2d

    init(_ c: AutoencoderKLConfig, rng: inout RNG) {
        let ch = c.block_out_channels, g = c.norm_num_groups
        conv_in = Conv2d(c.in_channels, ch[0], kernelSize: 3, padding: 1, rng: &rng)
        var blocks: [DownEncoderBlock2D] = []
        for i in 0..<ch.count {
            blocks.append(DownEncoderBlock2D(inChannels: i == 0 ? ch[0] : ch[i - 1], outChannels: ch[i], layers: c.layers_per_block,
                                             groups: g, downsample: i < ch.count - 1, rng: &rng))
        }
        down_blocks = blocks
        mid_block = VAEMidBlock(channels: ch[ch.count - 1], groups: g, attention: c.mid_block_add_attention, rng: &rng)
        conv_norm_out = GroupNorm(groups: g, channels: ch[ch.count - 1], eps: 1e-6)
        conv_out = Conv2d(ch[ch.count - 1], 2 * c.latent_channels, kernelSize: 3, padding: 1, rng: &rng)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = conv_in(x)
        for b in down_blocks { h = b(h) }
        h = mid_block(h)
        return conv_out(conv_norm_out(h).silu())
    }
}

/// The VAE decoder: latents [B, latent, h, w] → images [B, 3, h·f, w·f] (unclamped, about [−1, 1]).
public final class VAEDecoder: Module {
    public var conv_in: Conv2d
    public var mid_block: VAEMidBlock
    public var up_blocks: [UpDecoderBlock2D]
    public var conv_norm_out: GroupNorm
    public var conv_out: Conv2d

    init(_ c: AutoencoderKLConfig, rng: inout RNG) {
        let rev = Array(c.block_out_channels.reversed()), g = c.norm_num_groups
        conv_in = Conv2d(c.latent_channels, rev[0], kernelSize: 3, padding: 1, rng: &rng)
        mid_block = VAEMidBlock(channels: rev[0], groups: g, attention: c.mid_block_add_attention, rng: &rng)
        var blocks: [UpDecoderBlock2D] = []
        for i in 0..<rev.count {
            blocks.append(UpDecoderBlock2D(inChannels: i == 0 ? rev[0] : rev[i - 1], outChannels: rev[i], layers: c.layers_per_block + 1,
                                           groups: g, upsample: i < rev.count - 1, rng: &rng))
        }
        up_blocks = blocks
        conv_norm_out = GroupNorm(groups: g, channels: rev[rev.count - 1], eps: 1e-6)
        conv_out = Conv2d(rev[rev.count - 1], c.out_channels, kernelSize: 3, padding: 1, rng: &rng)
    }

    public func callAsFunction(_ z: Tensor) -> Tensor {
        var h = mid_block(conv_in(z))
        for b in up_blocks { h = b(h) }
        return conv_out(conv_norm_out(h).silu())
    }
}

/// diffusers `AutoencoderKL`. `encode` gives the latent distribution's mean (unscaled), `decode`
/// the decoder's image for unscaled latents; multiply/divide by `config.scaling_factor` around them.
public final class AutoencoderKL: Module {
    public let _config: AutoencoderKLConfig
    public var encoder: VAEEncoder
    public var decoder: VAEDecoder
    public var quant_conv: Conv2d?
    public var post_quant_conv: Conv2d?

    public var config: AutoencoderKLConfig { _config }

    public init(config: AutoencoderKLConfig, seed: UInt64 = 0) throws {
        try config.validate()
        _config = config
        var rng = RNG(seed: seed)
        encoder = VAEEncoder(config, rng: &rng)
        decoder = VAEDecoder(config, rng: &rng)
        let l = config.latent_channels
        quant_conv = config.use_quant_conv ? Conv2d(2 * l, 2 * l, kernelSize: 1, rng: &rng) : nil
        post_quant_conv = config.use_post_quant_conv ? Conv2d(l, l, kernelSize: 1, rng: &rng) : nil
    }

    /// Mean and log-variance [B, latent, h, w] each, for images [B, 3, H, W] in [−1, 1].
    public func encodeDistribution(_ images: Tensor) -> (mean: Tensor, logVariance: Tensor) {
        var moments = encoder(images)
        if let quant_conv { moments = quant_conv(moments) }
        let parts = moments.chunked(2, axis: 1)
        return (parts[0], parts[1].clamped(-30, 20))
    }

    /// The latent distribution's mean for images in [−1, 1] (unscaled).
    public func encode(_ images: Tensor) -> Tensor { encodeDistribution(images).mean }

    /// Images (about [−1, 1], unclamped) for unscaled latents.
    public func decode(_ latents: Tensor) -> Tensor {
        decoder(post_quant_conv.map { $0(latents) } ?? latents)
    }
}
