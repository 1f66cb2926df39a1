import Foundation

// Element-wise arithmetic with NumPy/PyTorch broadcasting, scalar ops and simple unary maps.
// Backward of a broadcast op sums the gradient back to each input's shape (`sumTo`).

/// The broadcast shape of two shapes (right-aligned; a 1 stretches), or a precondition failure.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
    let r = max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        precondition(da == db || da == 1 || db == 1, "shapes \(a) and \(b) do not broadcast")
        out[i] = da == 1 ? db : da
    }
    return out
}

/// Iteration plan for a broadcast binary kernel: dims coalesced where both operands are contiguous,
/// so the inner loop is as long as possible.
struct BroadcastPlan {
    var dims: [Int] = []       // coalesced output dims (outer ... inner)
    var sa: [Int] = []         // element strides of a (0 = broadcast)
    var sb: [Int] = []

    init(out: [Int], a: [Int], b: [Int]) {
        let r = out.count
        func strides(_ s: [Int]) -> [Int] {
            let padded = [Int](repeating: 1, count: r - s.count) + s
            var st = [Int](repeating: 0, count: r)
            var acc = 1
            for i in stride(from: r - 1, through: 0, by: -1) {
                st[i] = padded[i] == 1 ? 0 : acc
                acc *= padded[i]
            }
            return st
        }
        let fa = strides(a), fb = strides(b)
        for i in 0..<r where out[i] != 1 {
            if let last = dims.indices.last,
               sa[last] == fa[i] * out[i], sb[last] == fb[i] * out[i] {
                // previous (outer) dim is contiguous over this one for both operands: merge
                dims[last] *= out[i]
                sa[last] = fa[i]
                sb[last] = fb[i]
            } else {
                dims.append(out[i]); sa.append(fa[i]); sb.append(fb[i])
            }
        }
        if dims.isEmpty { dims = [1]; sa = [0]; sb = [0] }
    }
}

@inline(__always)
func broadcastBinary(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
    let outShape = a.shape == b.shape ? a.shape : broadcastShape(a.shape, b.shape)
    let out = Tensor(uninitialized: outShape)
    let n = out.count
    if n == 0 { return out }
    let pa = a.pointer, pb = b.pointer, po = out.pointer
    if a.count == n && b.count == n {
        parallelFor(n, grain: 1 << 16) { r in for i in r { po[i] = f(pa[i], pb[i]) } }
        return out
    }
    if b.count == 1 && a.count == n {
        let s = pb[0]
        parallelFor(n, grain: 1 << 16) { r in for i in r { po[i] = f(pa[i], s) } }
        return out
    }
    if a.count == 1 && b.count == n {
        let s = pa[0]
        parallelFor(n, grain: 1 << 16) { r in for i in r { po[i] = f(s, pb[i]) } }
        return out
    }
    let plan = BroadcastPlan(out: outShape, a: a.shape, b: b.shape)
    let inner = plan.dims.last!, ia = plan.sa.last!, ib = plan.sb.last!
    let outerDims = Array(plan.dims.dropLast()), osa = Array(plan.sa.dropLast()), osb = Array(plan.sb.dropLast())
    let outer = outerDims.reduce(1, *)
    parallelFor(outer, costPerItem: inner, grain: 1 << 16) { range in
        for o in range {
            var rem = o, offA = 0, offB = 0
            for d in stride(from: outerDims.count - 1, through: 0, by: -1) {
                let idx = rem % outerDims[d]
                rem /= outerDims[d]
                offA += idx * osa[d]
                offB += idx * osb[d]
            }
            let qa = pa + offA, qb = pb + offB, qo = po + o * inner
            if ia == 1 && ib == 1 {
                for i in 0..<inner { qo[i] = f(qa[i], qb[i]) }
            } else if ia == 1 {
                let s = qb[0]
                for i in 0..<inner { qo[i] = f(qa[i], s) }
            } else if ib == 1 {
                let s = qa[0]
                for i in 0..<inner { qo[i] = f(s, qb[i]) }
            } else {
                for i in 0..<inner { qo[i] = f(qa[i * ia], qb[i * ib]) }
            }
        }
    }
    return out
}

@inline(__always)
func mapUnary(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let px = x.pointer, po = out.pointer
    parallelFor(x.count, grain: 1 << 15) { r in for i in r { po[i] = f(px[i]) } }
    return out
}

extension Tensor {
    /// Sums a broadcast gradient back to `shape` (the inverse of broadcasting `shape` to self.shape).
    public func sumTo(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        var axes: [Int] = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        let s = axes.isEmpty ? self : sum(axes: axes, keepDims: true)
        return s.reshaped(target)
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        broadcastBinary(a, b, +).recorded("add", [a, b]) { g in [g.sumTo(a.shape), g.sumTo(b.shape)] }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        broadcastBinary(a, b, -).recorded("sub", [a, b]) { g in [g.sumTo(a.shape), (-g).sumTo(b.shape)] }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        broadcastBinary(a, b, *).recorded("mul", [a, b]) { g in
            [a.requiresGrad ? (g * b).sumTo(a.shape) : nil, b.requiresGrad ? (g * a).sumTo(b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        broadcastBinary(a, b, /).recorded("div", [a, b]) { g in
            [a.requiresGrad ? (g / b).sumTo(a.shape) : nil,
             b.requiresGrad ? broadcastBinary(g * a, b, { x, y in -x / (y * y) }).sumTo(b.shape) : nil]
        }
    }

    public static prefix func - (a: Tensor) -> Tensor {
        mapUnary(a) { -$0 }.recorded("neg", [a]) { g in [-g] }
    }

    public static func + (a: Tensor, s: Float) -> Tensor {
        mapUnary(a) { $0 + s }.recorded("add_scalar", [a]) { g in [g] }
    }

    public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }

    public static func - (s: Float, a: Tensor) -> Tensor {
        mapUnary(a) { s - $0 }.recorded("rsub_scalar", [a]) { g in [-g] }
    }

    public static func * (a: Tensor, s: Float) -> Tensor {
        mapUnary(a) { $0 * s }.recorded("mul_scalar", [a]) { g in [g * s] }
    }

    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }

    /// e^x.
    public func exp() -> Tensor {
        let y = mapUnary(self) { Foundation.exp($0) }
        return y.recorded("exp", [self]) { g in [g * y] }
    }

    /// Natural logarithm.
    public func log() -> Tensor {
        mapUnary(self) { Foundation.log($0) }.recorded("log", [self]) { g in [g / self] }
    }

    /// Square root.
    public func sqrt() -> Tensor {
        let y = mapUnary(self) { $0.squareRoot() }
        return y.recorded("sqrt", [self]) { g in [broadcastBinary(g, y) { a, b in 0.5 * a / b }] }
    }

    /// x².
    public func square() -> Tensor {
        mapUnary(self) { $0 * $0 }.recorded("square", [self]) { g in [broadcastBinary(g, self) { a, b in 2 * a * b }] }
    }

    /// x^p for a constant exponent.
    public func pow(_ p: Float) -> Tensor {
        mapUnary(self) { Foundation.pow($0, p) }.recorded("pow", [self]) { g in
            [broadcastBinary(g, self) { a, b in a * p * Foundation.pow(b, p - 1) }]
        }
    }

    /// Clamps to [low, high]; the gradient passes only where the input was inside.
    public func clamped(_ low: Float, _ high: Float) -> Tensor {
        mapUnary(self) { Swift.min(Swift.max($0, low), high) }.recorded("clamp", [self]) { g in
            [broadcastBinary(g, self) { a, x in (x >= low && x <= high) ? a : 0 }]
        }
    }

    /// |x| (gradient sign(x), 0 at 0).
    public func abs() -> Tensor {
        mapUnary(self) { Swift.abs($0) }.recorded("abs", [self]) { g in
            [broadcastBinary(g, self) { a, x in x > 0 ? a : (x < 0 ? -a : 0) }]
        }
    }
}
