import Foundation

// Reshape (a view), permute/transpose, slice, concat, stack: each returns a contiguous result and its
// backward is the inverse movement of the gradient.

extension Tensor {
    /// Same elements, new shape (shares storage). One dimension may be -1.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            s[i] = count / known
        }
        precondition(s.reduce(1, *) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        let inShape = shape
        return Tensor(shape: s, storage: storage).recorded("reshape", [self]) { g in [g.reshaped(inShape)] }
    }

    /// Reorders axes: result axis i is input axis `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permutation \(order) is not of 0..<\(rank)")
        if order == Array(0..<rank) { return self }
        let outShape = order.map { shape[$0] }
        let out = Tensor(uninitialized: outShape)
        let inStrides = contiguousStrides(shape)
        let srcStrides = order.map { inStrides[$0] }
        let src = pointer, dst = out.pointer
        let r = rank
        let inner = outShape[r - 1], innerStride = srcStrides[r - 1]
        let outer = out.count / max(inner, 1)
        parallelFor(outer, costPerItem: inner, grain: 1 << 15) { range in
            for o in range {
                var rem = o, off = 0
                for d in stride(from: r - 2, through: 0, by: -1) {
                    let idx = rem % outShape[d]
                    rem /= outShape[d]
                    off += idx * srcStrides[d]
                }
                let q = dst + o * inner
                if innerStride == 1 {
                    q.update(from: src + off, count: inner)
                } else {
                    for i in 0..<inner { q[i] = src[off + i * innerStride] }
                }
            }
        }
        var inverse = [Int](repeating: 0, count: r)
        for (i, o) in order.enumerated() { inverse[o] = i }
        return out.recorded("permute", [self]) { g in [g.permuted(inverse)] }
    }

    /// Swaps two axes.
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(normalizeAxis(a, rank: rank), normalizeAxis(b, rank: rank))
        return permuted(order)
    }

    /// Elements `range` along `axis`.
    public func sliced(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = normalizeAxis(axis, rank: rank)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[a], "slice \(range) out of bounds for axis of \(shape[a])")
        var outShape = shape
        outShape[a] = range.count
        let out = Tensor(uninitialized: outShape)
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        let n = shape[a], m = range.count
        let src = pointer, dst = out.pointer
        for o in 0..<outer {
            (dst + o * m * inner).update(from: src + (o * n + range.lowerBound) * inner, count: m * inner)
        }
        let inShape = shape
        return out.recorded("slice", [self]) { g in
            let gi = Tensor(zeros: inShape)
            let gp = g.pointer, ip = gi.pointer
            for o in 0..<outer {
                (ip + (o * n + range.lowerBound) * inner).update(from: gp + o * m * inner, count: m * inner)
            }
            return [gi]
        }
    }

    /// Splits into `parts` equal pieces along `axis`.
    public func chunked(_ parts: Int, axis: Int) -> [Tensor] {
        let a = normalizeAxis(axis, rank: rank)
        precondition(shape[a] % parts == 0, "axis of \(shape[a]) does not split into \(parts)")
        let size = shape[a] / parts
        return (0..<parts).map { sliced(axis: a, $0 * size..<($0 + 1) * size) }
    }

    /// Inserts a unit axis.
    public func unsqueezed(_ axis: Int) -> Tensor {
        let a = axis < 0 ? axis + rank + 1 : axis
        var s = shape
        s.insert(1, at: a)
        return reshaped(s)
    }

    /// Removes a unit axis.
    public func squeezed(_ axis: Int) -> Tensor {
        let a = normalizeAxis(axis, rank: rank)
        precondition(shape[a] == 1, "axis \(axis) has size \(shape[a]), not 1")
        var s = shape
        s.remove(at: a)
        return reshaped(s)
    }

    /// Joins tensors along an existing axis.
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat of no tensors")
        let first = tensors[0]
        let a = normalizeAxis(axis, rank: first.rank)
        for t in tensors {
            precondition(t.rank == first.rank && (0..<t.rank).allSatisfy { $0 == a || t.shape[$0] == first.shape[$0] },
                         "concat: shapes \(first.shape) and \(t.shape) differ off axis \(a)")
        }
        var outShape = first.shape
        outShape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        let out = Tensor(uninitialized: outShape)
        let outer = first.shape[..<a].reduce(1, *), inner = first.shape[(a + 1)...].reduce(1, *)
        let total = outShape[a]
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            let n = t.shape[a]
            offsets.append(offset)
            for o in 0..<outer {
                (out.pointer + (o * total + offset) * inner).update(from: t.pointer + o * n * inner, count: n * inner)
            }
            offset += n
        }
        return out.recorded("concat", tensors) { g in
            zip(tensors, offsets).map { t, off in t.requiresGrad ? g.sliced(axis: a, off..<off + t.shape[a]) : nil }
        }
    }

    /// Stacks same-shaped tensors along a new axis.
    public static func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
        precondition(!tensors.isEmpty, "stack of no tensors")
        let a = axis < 0 ? axis + tensors[0].rank + 1 : axis
        return concat(tensors.map { $0.unsqueezed(a) }, axis: a)
    }
}
