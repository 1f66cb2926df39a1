import Foundation
import Tensors
import Diffusion

public enum WideningError: Error, CustomStringConvertible {
    case unsupported(String)
    public var description: String {
        switch self { case let .unsupported(m): return "cannot widen the model: \(m)" }
    }
}

extension ToyModel {
    /// The same function in a UNet twice as wide at every level (Net2WiderNet, Chen et al. 2016): each
    /// channel becomes two copies, so a trained model can keep training at the width the scaling study
    /// asks for instead of starting over.
    ///
    /// New channel j of every UNet width holds old channel ⌊j/2⌋. A weight's output rows are copied;
    /// its input columns are copied and halved (the two copies of an input sum to the old one), with
    /// ±ε added to the two halves of each pair — the pair's inputs are equal, so the output does not
    /// change, but the copies receive different gradients and drift apart in training. Group and layer
    /// norms see each old group's values twice (same mean and variance); concatenated skip connections
    /// keep ⌊j/2⌋ across the concatenation because every part doubles. Attention keeps its heads, so
    /// each head's dimension doubles and q·k doubles with it: the query weights are scaled by 1/√2 to
    /// keep q·k/√d. The sinusoidal timestep features double their frequencies; old frequency k is new
    /// frequency 2k, so `time_embedding.linear_1` takes old column c at new column 2c and zero elsewhere.
    /// The text encoder (and `cross_attention_dim`) is unchanged.
    ///
    /// - Parameter symmetryNoise: ε's standard deviation relative to each weight tensor's (0 leaves the
    ///   copies identical, which training would never separate).
    public func widened(symmetryNoise: Float = 0.02, seed: UInt64 = 0) throws -> ToyModel {
        guard config.unet.freq_shift == 0 else {
            throw WideningError.unsupported("freq_shift \(config.unet.freq_shift) (the frequency doubling needs 0)")
        }
        var wideConfig = config
        wideConfig.unet.block_out_channels = config.unet.block_out_channels.map { $0 * 2 }
        let wide = try ToyModel(config: wideConfig, seed: seed)
        try wide.textEncoder.loadStateDict(Dictionary(uniqueKeysWithValues: textEncoder.stateDict()))
        let old = Dictionary(uniqueKeysWithValues: unet.stateDict())
        var rng = RNG(seed: seed &+ 0x5EED)
        for (name, target) in wide.unet.stateDict() {
            guard let source = old[name] else { throw WideningError.unsupported("no tensor \(name) in the narrow UNet") }
            try Self.widen(name: name, source: source, into: target, noise: symmetryNoise, rng: &rng)
        }
        wide.unet.requiresGrad(unet.parameters.first?.requiresGrad ?? false)
        wide.textEncoder.requiresGrad(textEncoder.parameters.first?.requiresGrad ?? false)
        return wide
    }

    /// Fills `target` from `source` by the rule of `widened`: dimension 0 is a weight's output, 1 its
    /// input; a dimension is widened where the target's is twice the source's and kept where equal.
    static func widen(name: String, source: Tensor, into target: Tensor, noise: Float, rng: inout RNG) throws {
        guard source.rank == target.rank else { throw WideningError.unsupported("\(name): rank \(source.rank) → \(target.rank)") }
        var doubled = [Bool]()
        for (s, t) in zip(source.shape, target.shape) {
            guard t == s || t == 2 * s else { throw WideningError.unsupported("\(name): shape \(source.shape) → \(target.shape)") }
            doubled.append(t == 2 * s)
        }
        let src = source.array
        let out = target.pointer
        let n = target.count
        let isTimeFeatures = name == "time_embedding.linear_1.weight"
        let inWidened = source.rank >= 2 && doubled[1]
        let queryScale: Float = name.hasSuffix(".to_q.weight") && doubled[0] ? 1 / Float(2).squareRoot() : 1
        let std: Float = {
            guard inWidened, !isTimeFeatures, noise > 0, src.count > 1 else { return 0 }
            let mean = src.reduce(0, +) / Float(src.count)
            let variance = src.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(src.count)
            return noise * variance.squareRoot() * 0.5
        }()
        let tStrides = contiguousStrides(target.shape), sStrides = contiguousStrides(source.shape)
        // ε per element of the target with each input pair collapsed to one index: the even copy gets +ε, the odd −ε.
        var pairShape = target.shape
        if inWidened { pairShape[1] /= 2 }
        let pStrides = contiguousStrides(pairShape)
        var epsilon = [Float](repeating: 0, count: std > 0 ? n / 2 : 0)
        if std > 0 { epsilon.withUnsafeMutableBufferPointer { rng.fillNormal($0.baseAddress!, $0.count, std: std) } }
        for j in 0..<n {
            var rest = j, s = 0, pairIndex = 0, parity = 0, skip = false
            for d in 0..<target.rank {
                let idx = rest / tStrides[d]; rest %= tStrides[d]
                var sourceIdx = idx
                if isTimeFeatures && d == 1 {
                    if idx % 2 == 1 { skip = true }
                    sourceIdx = idx / 2
                } else if doubled[d] {
                    sourceIdx = idx / 2
                    if d == 1 { parity = idx % 2 }
                }
                s += sourceIdx * sStrides[d]
                pairIndex += (d == 1 && inWidened ? idx / 2 : idx) * pStrides[d]
            }
            if skip { out[j] = 0; continue }
            var value = src[s] * queryScale
            if inWidened && !isTimeFeatures {
                value *= 0.5
                if std > 0 { value += parity == 0 ? epsilon[pairIndex] : -epsilon[pairIndex] }
            }
            out[j] = value
        }
    }
}
