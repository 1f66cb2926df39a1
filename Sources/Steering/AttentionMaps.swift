import Foundation
import Tensors
import Diffusion

/// Turns captured cross-attention into the classifier's input, as the paper does (the authors'
/// `sd2_attention_processor.py` and `utils.py::resize_and_concat_attn_maps_from_dict`):
/// every cross-attention layer and head of the conditional branch, mean over the object's token span,
/// resized to 16×16 with PyTorch-exact bilinear (align_corners=False), each map renormalised to sum 1
/// (÷ (sum + 1e-8)), stacked in a fixed order: resolutions ascending (8, 16, 32, 64); inside a
/// resolution, capture order (down, mid, up; forward order); heads minor. Differentiable when the
/// capture kept the maps on the tape.
public enum AttentionMaps {
    public static let mapSize = 16

    /// The channel order for a list of captured layers: indices into `layers`, sorted by resolution
    /// (stable, so forward order is kept within a resolution).
    public static func channelOrder(_ layers: [CapturedAttention]) -> [Int] {
        layers.indices.sorted { a, b in
            let ra = layers[a].height * layers[a].width, rb = layers[b].height * layers[b].width
            return ra != rb ? ra < rb : a < b
        }
    }

    /// Number of channels C the maps will have.
    public static func channelCount(_ layers: [CapturedAttention]) -> Int { layers.reduce(0) { $0 + $1.heads } }

    /// Maps [C, 16, 16] for the tokens at sequence positions `span` (e.g. the positions of "teddy bear").
    /// Layers' batch must be 1 (the conditional branch).
    /// With a batched capture, `item` picks the batch entry.
    public static func maps(_ layers: [CapturedAttention], tokenSpan span: Range<Int>, item: Int? = nil, size: Int = mapSize) -> Tensor {
        precondition(!layers.isEmpty, "no cross-attention layers were captured")
        var parts: [Tensor] = []
        for i in channelOrder(layers) {
            let layer = layers[i]
            var p = layer.probabilities  // [B, heads, HW, T]
            if let item { p = p.sliced(axis: 0, item..<item + 1) }
            precondition(p.shape[0] == 1, "attention maps need batch 1 (or an item), got \(p.shape)")
            precondition(span.lowerBound >= 0 && span.upperBound <= p.shape[3] && !span.isEmpty,
                         "token span \(span) outside 0..<\(p.shape[3])")
            var m = p.sliced(axis: 3, span)
            m = span.count == 1 ? m : m.mean(axes: [3], keepDims: true)
            m = m.reshaped([layer.heads, layer.height, layer.width])
            if layer.height != size || layer.width != size { m = m.resizeBilinear(height: size, width: size) }
            let total = m.sum(axes: [1, 2], keepDims: true)
            parts.append(m / (total + 1e-8))
        }
        return parts.count == 1 ? parts[0] : Tensor.concat(parts, axis: 0)
    }
}

extension AttentionMaps {
    /// How strongly a token is attended somewhere in the image: per layer, the raw cross-attention
    /// probability of the span (mean over its tokens and the layer's heads, before any
    /// renormalisation) at its soft-maximal position, Σ m·softmax(sharpness·m) (between the map's
    /// mean and its maximum, and differentiable), averaged over layers. An object the image does not
    /// hold draws little attention anywhere, so its peak is low (Attend-and-Excite's signal).
    public static func peak(_ layers: [CapturedAttention], tokenSpan span: Range<Int>, sharpness: Float = 30) -> Tensor {
        precondition(!layers.isEmpty, "no cross-attention layers were captured")
        var total: Tensor? = nil
        for layer in layers {
            let p = layer.probabilities  // [1, heads, HW, T]
            precondition(p.shape[0] == 1 && span.lowerBound >= 0 && span.upperBound <= p.shape[3] && !span.isEmpty,
                         "attention peak needs batch 1 and a span inside 0..<\(p.shape[3]), got \(p.shape), \(span)")
            var m = p.sliced(axis: 3, span)
            m = span.count == 1 ? m : m.mean(axes: [3], keepDims: true)
            m = m.mean(axes: [1]).reshaped([1, layer.height * layer.width])
            let w = (m * sharpness).softmax()
            let peak = (m * w).sum()
            total = total.map { $0 + peak } ?? peak
        }
        return total! / Float(layers.count)
    }
}

/// One captured cross-attention layer as it appears in a `MapStack`: its module path, native
/// resolution and head count.
public struct MapLayer: Sendable, Equatable {
    public let name: String
    public let place: UNetPlace
    public let resolution: Int
    public let heads: Int
    public init(name: String, place: UNetPlace, resolution: Int, heads: Int) {
        self.name = name; self.place = place; self.resolution = resolution; self.heads = heads
    }
}

/// A token's maps [C, side, side] in `AttentionMaps`' channel order, with the layers the channels came
/// from — what the workbench shows per layer and head. Plain values (no tensors), cheap to send across
/// threads.
public struct MapStack: Sendable, Equatable {
    public let side: Int
    /// Layers in channel order; channel count = Σ heads.
    public let layers: [MapLayer]
    /// C · side · side values, channel-major.
    public let values: [Float]

    public init(side: Int, layers: [MapLayer], values: [Float]) {
        precondition(values.count == layers.reduce(0) { $0 + $1.heads } * side * side, "map stack: \(values.count) values for \(layers.count) layers of \(side)²")
        self.side = side; self.layers = layers; self.values = values
    }

    /// The stack of `maps` [C, s, s] made by `AttentionMaps.maps` from `captured`.
    public init(_ maps: Tensor, captured: [CapturedAttention]) {
        self.init(maps, layers: MapStack.layers(of: captured))
    }

    /// The stack of `maps` [C, s, s] whose channels come from `layers` (in channel order).
    public init(_ maps: Tensor, layers: [MapLayer]) {
        self.init(side: maps.shape[maps.rank - 1], layers: layers, values: maps.array)
    }

    /// The captured layers in `AttentionMaps`' channel order, as plain descriptions.
    public static func layers(of captured: [CapturedAttention]) -> [MapLayer] {
        AttentionMaps.channelOrder(captured).map { i in
            MapLayer(name: captured[i].layer, place: captured[i].place, resolution: captured[i].height, heads: captured[i].heads)
        }
    }

    public var channelCount: Int { layers.reduce(0) { $0 + $1.heads } }

    /// The mean map over the chosen channels: every channel (layer nil), one layer's heads (head nil),
    /// or one head of one layer. Out-of-range choices fall back to the mean over all channels.
    public func map(layer: Int? = nil, head: Int? = nil) -> [Float] {
        let plane = side * side
        var channels = 0..<channelCount
        if let layer, layers.indices.contains(layer) {
            let first = layers[..<layer].reduce(0) { $0 + $1.heads }
            channels = first..<first + layers[layer].heads
            if let head, (0..<layers[layer].heads).contains(head) { channels = first + head..<first + head + 1 }
        }
        var out = [Float](repeating: 0, count: plane)
        guard !channels.isEmpty else { return out }
        values.withUnsafeBufferPointer { v in
            for c in channels { for i in 0..<plane { out[i] += v[c * plane + i] } }
        }
        let n = Float(channels.count)
        return out.map { $0 / n }
    }
}
