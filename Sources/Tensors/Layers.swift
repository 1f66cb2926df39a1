import Foundation

// The basic layers as modules around the ops. Property names are PyTorch's state-dict names
// (`weight`, `bias`), so checkpoints load by key; configuration (stride, eps, groups) is stored as
// plain numbers, which the parameter reflection ignores. Initialisation follows PyTorch's defaults:
// Linear and Conv2d draw weight and bias uniformly in ±1/√fan_in, norms start at weight 1 / bias 0,
// Embedding draws N(0, 1). Every parameter is created with `requiresGrad = true`.

/// y = x·Wᵀ + b over the last axis; weight [out, in], bias [out].
public final class Linear: Module {
    public var weight: Tensor
    public var bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout RNG) {
        let bound = 1 / Float(max(inFeatures, 1)).squareRoot()
        weight = uniformInit([outFeatures, inFeatures], bound: bound, rng: &rng)
        self.bias = bias ? uniformInit([outFeatures], bound: bound, rng: &rng) : nil
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }
}

/// 2-D convolution over NCHW input; weight [out, in, k, k], bias [out].
public final class Conv2d: Module {
    public var weight: Tensor
    public var bias: Tensor?
    public let stride: Int
    public let padding: Int

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, rng: inout RNG) {
        let bound = 1 / Float(max(inChannels * kernelSize * kernelSize, 1)).squareRoot()
        weight = uniformInit([outChannels, inChannels, kernelSize, kernelSize], bound: bound, rng: &rng)
        self.bias = bias ? uniformInit([outChannels], bound: bound, rng: &rng) : nil
        self.stride = stride
        self.padding = padding
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
}

/// Group normalisation of [N, C, ...] with a per-channel affine (weight [C], bias [C]).
public final class GroupNorm: Module {
    public var weight: Tensor
    public var bias: Tensor
    public let groups: Int
    public let eps: Float

    public init(groups: Int, channels: Int, eps: Float = 1e-5) {
        precondition(groups >= 1 && channels % groups == 0, "GroupNorm: \(channels) channels do not split into \(groups) groups")
        weight = Tensor(ones: [channels])
        bias = Tensor(zeros: [channels])
        weight.requiresGrad = true
        bias.requiresGrad = true
        self.groups = groups
        self.eps = eps
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }
}

/// Layer normalisation over the last axis with an elementwise affine (weight [D], bias [D]).
public final class LayerNorm: Module {
    public var weight: Tensor
    public var bias: Tensor
    public let eps: Float

    public init(_ dim: Int, eps: Float = 1e-5) {
        weight = Tensor(ones: [dim])
        bias = Tensor(zeros: [dim])
        weight.requiresGrad = true
        bias.requiresGrad = true
        self.eps = eps
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, eps: eps) }
}

/// A lookup table of `count` vectors of size `dim` (weight [count, dim]).
public final class Embedding: Module {
    public var weight: Tensor

    public init(_ count: Int, _ dim: Int, rng: inout RNG) {
        weight = ParameterInitialization.isDeferred ? Tensor(uninitialized: [count, dim]) : Tensor.randn([count, dim], rng: &rng)
        weight.requiresGrad = true
        super.init()
    }

    /// Rows for `indices`: [indices.count, dim].
    public func callAsFunction(_ indices: [Int]) -> Tensor { embedding(weight, indices: indices) }
}
