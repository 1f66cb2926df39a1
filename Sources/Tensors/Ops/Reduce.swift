import Foundation

// Sums and means over axes. A multi-axis reduction runs one axis at a time over an
// [outer, n, inner] view; backward broadcasts the gradient back (an expand, then a copy).

/// Sums `x` viewed as [outer, n, inner] over the middle axis.
func reduceAxisKernel(_ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int, into o: UnsafeMutablePointer<Float>) {
    parallelFor(outer, costPerItem: n * inner, grain: 1 << 16) { range in
        for b in range {
            let dst = o + b * inner
            let src = x + b * n * inner
            if inner == 1 {
                var s: Float = 0
                for j in 0..<n { s += src[j] }
                dst[0] = s
            } else {
                dst.update(from: src, count: inner)
                for j in 1..<max(n, 1) {
                    let row = src + j * inner
                    for i in 0..<inner { dst[i] += row[i] }
                }
                if n == 0 { dst.update(repeating: 0, count: inner) }
            }
        }
    }
}

extension Tensor {
    /// Sum over the given axes (negative axes count from the end).
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor {
        let ax = Set(axes.map { normalizeAxis($0, rank: rank) }).sorted()
        var current = self.detachedValue
        var curShape = shape
        for a in ax.reversed() {
            let outer = curShape[..<a].reduce(1, *), n = curShape[a], inner = curShape[(a + 1)...].reduce(1, *)
            var newShape = curShape
            newShape[a] = 1
            let out = Tensor(uninitialized: newShape)
            reduceAxisKernel(current.pointer, outer: outer, n: n, inner: inner, into: out.pointer)
            current = out
            curShape = newShape
        }
        let keptShape = curShape
        let finalShape = keepDims ? keptShape : shape.enumerated().filter { !ax.contains($0.offset) }.map { $0.element }
        let result = Tensor(shape: finalShape, storage: current.storage)
        let inputShape = shape
        return result.recorded("sum", [self]) { g in [g.reshaped(keptShape).expanded(to: inputShape)] }
    }

    /// Sum of all elements (0-d result).
    public func sum() -> Tensor {
        var s: Double = 0
        let p = pointer
        for i in 0..<count { s += Double(p[i]) }
        let inputShape = shape
        return Tensor(scalar: Float(s)).recorded("sum_all", [self]) { g in [Tensor(repeating: g.item, shape: inputShape)] }
    }

    /// Mean over the given axes.
    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = Set(axes.map { normalizeAxis($0, rank: rank) }).reduce(1) { $0 * shape[$1] }
        return sum(axes: axes, keepDims: keepDims) * (1 / Float(max(n, 1)))
    }

    /// Mean of all elements.
    public func mean() -> Tensor { sum() * (1 / Float(max(count, 1))) }

    /// Broadcasts to a larger shape by copying (autodiff: sums back).
    public func expanded(to target: [Int]) -> Tensor {
        if target == shape { return self }
        let e = broadcastBinary(self.detachedValue, Tensor(zeros: target), { a, _ in a })
        precondition(e.shape == target, "cannot expand \(shape) to \(target)")
        let inShape = shape
        return e.recorded("expand", [self]) { g in [g.sumTo(inShape)] }
    }

    /// The same storage without tape history (internal: kernels that read values only).
    var detachedValue: Tensor { node == nil && !isLeafRequiringGrad ? self : Tensor(shape: shape, storage: storage) }

    /// Largest value along the last axis (no gradient; for argmax-style use).
    public func argmaxLastAxis() -> [Int] {
        let n = shape.last ?? 1, rows = count / max(n, 1)
        var out = [Int](repeating: 0, count: rows)
        for r in 0..<rows {
            let p = pointer + r * n
            var best = 0
            for j in 1..<max(n, 1) where p[j] > p[best] { best = j }
            out[r] = best
        }
        return out
    }

    /// Maximum absolute value (no gradient; diagnostics and tests).
    public var maxAbs: Float {
        var m: Float = 0
        for i in 0..<count { m = Swift.max(m, Swift.abs(pointer[i])) }
        return m
    }
}
