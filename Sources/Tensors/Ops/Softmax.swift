import CKernels
import Foundation

// Softmax and log-softmax over the last axis, and cross-entropy on logits (fused, mean reduction).

@inline(__always)
func softmaxRows(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, n: Int, log: Bool) {
    parallelFor(rows, costPerItem: n * 4, grain: 1 << 14) { range in
        // The AVX-512 C kernel, once per range of rows, where the CPU has it.
        if !log && l2s_softmax_rows(x + range.lowerBound * n, y + range.lowerBound * n, range.count, n) != 0 { return }
        for r in range {
            let p = x + r * n, q = y + r * n
            var m = vmax(p, n)
            if m == -.infinity { m = 0 }
            vexp(p, q, n, shift: -m)
            let s = vsum(q, n)
            if log {
                let lse = m + Foundation.log(s)
                for j in 0..<n { q[j] = p[j] - lse }
            } else {
                vscale(q, n, by: 1 / s)
            }
        }
    }
}

extension Tensor {
    /// Softmax over the last axis.
    public func softmax() -> Tensor {
        let n = shape.last ?? 1, rows = count / max(n, 1)
        let y = Tensor(uninitialized: shape)
        softmaxRows(pointer, y.pointer, rows: rows, n: n, log: false)
        return y.recorded("softmax", [self]) { g in
            // dx = y ⊙ (g − Σ g⊙y)
            let dx = Tensor(uninitialized: y.shape)
            let pg = g.pointer, py = y.pointer, pd = dx.pointer
            parallelFor(rows, costPerItem: n * 3, grain: 1 << 14) { range in
                for r in range {
                    let o = r * n
                    let dot = vdot(pg + o, py + o, n)
                    for j in 0..<n { pd[o + j] = py[o + j] * (pg[o + j] - dot) }
                }
            }
            return [dx]
        }
    }

    /// Log-softmax over the last axis.
    public func logSoftmax() -> Tensor {
        let n = shape.last ?? 1, rows = count / max(n, 1)
        let y = Tensor(uninitialized: shape)
        softmaxRows(pointer, y.pointer, rows: rows, n: n, log: true)
        return y.recorded("log_softmax", [self]) { g in
            // dx = g − softmax ⊙ Σ g
            let dx = Tensor(uninitialized: y.shape)
            let pg = g.pointer, py = y.pointer, pd = dx.pointer
            for r in 0..<rows {
                let o = r * n
                var s: Float = 0
                for j in 0..<n { s += pg[o + j] }
                for j in 0..<n { pd[o + j] = pg[o + j] - Foundation.exp(py[o + j]) * s }
            }
            return [dx]
        }
    }
}

/// Mean cross-entropy of `logits` [B, C] against integer class `targets` (count B), as PyTorch's
/// `nn.CrossEntropyLoss()` (no weights, no smoothing). Returns a 0-d tensor.
public func crossEntropy(_ logits: Tensor, targets: [Int]) -> Tensor {
    precondition(logits.rank == 2, "crossEntropy expects [batch, classes], got \(logits.shape)")
    let b = logits.shape[0], c = logits.shape[1]
    precondition(targets.count == b, "crossEntropy: \(targets.count) targets for batch \(b)")
    precondition(targets.allSatisfy { $0 >= 0 && $0 < c }, "crossEntropy: target out of range 0..<\(c)")
    let logp = Tensor(uninitialized: logits.shape)
    softmaxRows(logits.pointer, logp.pointer, rows: b, n: c, log: true)
    var loss: Double = 0
    for i in 0..<b { loss -= Double(logp.pointer[i * c + targets[i]]) }
    let out = Tensor(scalar: Float(loss / Double(b)))
    return out.recorded("cross_entropy", [logits]) { g in
        let scale = g.item / Float(b)
        let dx = Tensor(uninitialized: logits.shape)
        for i in 0..<b {
            for j in 0..<c { dx.pointer[i * c + j] = Foundation.exp(logp.pointer[i * c + j]) * scale }
            dx.pointer[i * c + targets[i]] -= scale
        }
        return [dx]
    }
}
