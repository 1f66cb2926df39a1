import Foundation
import Tensors

/// Where a UNet attention layer sits.
public enum UNetPlace: String, Codable, Sendable { case down, mid, up }

/// One cross-attention layer's probabilities for the conditional branch: [batch, heads, H·W, tokens],
/// softmax over tokens, rows in row-major spatial order (row 0 = top).
public struct CapturedAttention {
    /// Stable, human-readable layer id, e.g. `up_blocks.1.attentions.2.transformer_blocks.0.attn2`.
    public let layer: String
    public let place: UNetPlace
    public let height: Int
    public let width: Int
    public let heads: Int
    public let probabilities: Tensor
}

/// Receives cross-attention probabilities while the UNet runs. Install one on the model for a
/// forward pass; `keepOnTape` keeps the maps differentiable (steering) instead of detached copies.
public final class AttentionCapture {
    public var keepOnTape: Bool
    /// When the UNet batch is [uncond, cond] (CFG), only the second half is kept, as the paper does.
    public var conditionalHalfOnly: Bool
    public private(set) var layers: [CapturedAttention] = []

    public init(keepOnTape: Bool = false, conditionalHalfOnly: Bool = true) {
        self.keepOnTape = keepOnTape
        self.conditionalHalfOnly = conditionalHalfOnly
    }

    public func reset() { layers.removeAll(keepingCapacity: true) }

    /// Called by each cross-attention layer with probabilities [B, heads, HW, T].
    func record(layer: String, place: UNetPlace, height: Int, width: Int, probabilities p: Tensor) {
        var probs = p
        let b = p.shape[0]
        if conditionalHalfOnly && b >= 2 && b % 2 == 0 { probs = p.sliced(axis: 0, b / 2..<b) }
        if !keepOnTape { probs = probs.detached() }
        layers.append(CapturedAttention(layer: layer, place: place, height: height, width: width,
                                        heads: p.shape[1], probabilities: probs))
    }
}
