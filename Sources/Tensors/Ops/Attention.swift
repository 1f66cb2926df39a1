import Foundation

// Scaled dot-product attention. The plain path is one fused op: per (batch, head) block, scores into
// a buffer, softmax in place, then P·V, with its own backward; only P is kept for the pullback. When
// the caller wants the probabilities themselves (cross-attention capture) and they must stay
// differentiable (a steering loss on the maps), it is built from matmul + softmax so gradients can
// flow through both outputs.

/// Output and, when asked, the attention probabilities softmax(q·kᵀ·scale).
public struct AttentionResult {
    public let output: Tensor
    public let probabilities: Tensor?
}

/// softmax(q·kᵀ·scale + mask)·v over [..., Lq, D] × [..., Lk, D] × [..., Lk, Dv] (batch and head axes
/// in front). `scale` defaults to 1/√D as in PyTorch's `scaled_dot_product_attention`; `mask` is added
/// to the scores (broadcast; use -inf or a large negative number to hide a key, e.g. a causal mask).
public func scaledDotProductAttention(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float? = nil,
                                      mask: Tensor? = nil, returnProbabilities: Bool = false) -> AttentionResult {
    let d = q.shape.last!
    let s = scale ?? 1 / Float(d).squareRoot()
    let tracked = GradMode.isEnabled && (q.requiresGrad || k.requiresGrad || v.requiresGrad || (mask?.requiresGrad ?? false))
    if returnProbabilities && tracked || mask?.requiresGrad == true || q.shape.dropLast(2) != k.shape.dropLast(2)
        || k.shape.dropLast(2) != v.shape.dropLast(2) {
        var scores = q.matmul(k, transposeOther: true) * s
        if let mask { scores = scores + mask }
        let probs = scores.softmax()
        let out = probs.matmul(v)
        return AttentionResult(output: out, probabilities: returnProbabilities ? probs : nil)
    }
    if !tracked && !returnProbabilities {
        return AttentionResult(output: chunkedAttention(q, k, v, scale: s, mask: mask), probabilities: nil)
    }
    let (out, probs) = fusedAttention(q, k, v, scale: s, mask: mask)
    return AttentionResult(output: out, probabilities: returnProbabilities ? probs.detached() : nil)
}

/// Inference attention over query chunks: each task scores `chunkRows` queries against all keys in a
/// scratch block, so memory is O(threads · chunkRows · Lk) instead of the full [batch, Lq, Lk]
/// probabilities (SD at 512×512: 4096 × 4096 scores per head — 1 GiB for CFG's batch of 2 × 8 heads).
/// The default chunk keeps the scratch near 2 MB.
func chunkedAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float, mask: Tensor?, chunkRows: Int? = nil) -> Tensor {
    let lq = q.shape[q.rank - 2], d = q.shape[q.rank - 1]
    let lk = k.shape[k.rank - 2], dv = v.shape[v.rank - 1]
    precondition(k.shape[k.rank - 1] == d && v.shape[v.rank - 2] == lk, "attention: q \(q.shape), k \(k.shape), v \(v.shape)")
    let batch = q.count / max(lq * d, 1)
    let rows = max(1, min(lq, chunkRows ?? max(64, (1 << 19) / max(lk, 1))))
    let chunks = (lq + rows - 1) / rows
    let out = Tensor(uninitialized: Array(q.shape.dropLast()) + [dv])
    let maskRows: Tensor? = mask.map { m in m.count == lq * lk ? m : m.expanded(to: [lq, lk]) }
    let blocks = AttentionBlocks(q: q, k: k, v: v, out: out, mask: maskRows, scale: scale)
    parallelFor(batch * chunks, costPerItem: rows * lk * (2 * d + dv), grain: 1 << 16) { range in
        let P = UnsafeMutablePointer<Float>.allocate(capacity: rows * lk)
        defer { P.deallocate() }
        for task in range {
            let r0 = (task % chunks) * rows
            blocks.attend(block: task / chunks, rows: r0..<min(r0 + rows, lq), probabilities: P)
        }
    }
    return out
}

/// The forward pass over raw pointers, shared by the fused op and the chunked one: for query rows
/// `rows` of block b, scores = scale·q·kᵀ (+ mask rows) into P, softmax in place, out rows = P·v.
struct AttentionBlocks {
    let pq: UnsafeMutablePointer<Float>, pk: UnsafeMutablePointer<Float>, pv: UnsafeMutablePointer<Float>
    let po: UnsafeMutablePointer<Float>, pm: UnsafeMutablePointer<Float>?
    let lq: Int, lk: Int, d: Int, dv: Int, scale: Float

    init(q: Tensor, k: Tensor, v: Tensor, out: Tensor, mask: Tensor?, scale: Float) {
        pq = q.pointer; pk = k.pointer; pv = v.pointer; po = out.pointer; pm = mask?.pointer
        lq = q.shape[q.rank - 2]; d = q.shape[q.rank - 1]; lk = k.shape[k.rank - 2]; dv = v.shape[v.rank - 1]
        self.scale = scale
    }

    func attend(block b: Int, rows: Range<Int>, probabilities P: UnsafeMutablePointer<Float>) {
        let r0 = rows.lowerBound, m = rows.count
        sgemm(transA: false, transB: true, m: m, n: lk, k: d, alpha: scale, a: pq + (b * lq + r0) * d, lda: d,
              b: pk + b * lk * d, ldb: d, c: P, ldc: lk)
        if let pm { for i in 0..<(m * lk) { P[i] += pm[r0 * lk + i] } }
        softmaxRows(P, P, rows: m, n: lk, log: false)
        sgemm(transA: false, transB: false, m: m, n: dv, k: lk, a: P, lda: lk, b: pv + b * lk * dv, ldb: dv,
              c: po + (b * lq + r0) * dv, ldc: dv)
    }
}

/// The fused op: returns the output (recorded on the tape) and P (a plain tensor).
func fusedAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float, mask: Tensor?) -> (Tensor, Tensor) {
    let lq = q.shape[q.rank - 2], d = q.shape[q.rank - 1]
    let lk = k.shape[k.rank - 2], dv = v.shape[v.rank - 1]
    precondition(k.shape[k.rank - 1] == d && v.shape[v.rank - 2] == lk, "attention: q \(q.shape), k \(k.shape), v \(v.shape)")
    let batch = q.count / max(lq * d, 1)
    let probs = Tensor(uninitialized: Array(q.shape.dropLast(2)) + [lq, lk])
    let out = Tensor(uninitialized: Array(q.shape.dropLast()) + [dv])
    // The mask as [lq, lk] (it must broadcast over the batch axes).
    let maskRows: Tensor? = mask.map { m in m.count == lq * lk ? m : m.expanded(to: [lq, lk]) }
    let pq = q.pointer, pk = k.pointer, pv = v.pointer, pp = probs.pointer
    let blocks = AttentionBlocks(q: q, k: k, v: v, out: out, mask: maskRows, scale: scale)
    parallelFor(batch, costPerItem: lq * lk * (2 * d + dv), grain: 1 << 16) { range in
        for b in range { blocks.attend(block: b, rows: 0..<lq, probabilities: pp + b * lq * lk) }
    }
    let result = out.recorded("attention", [q, k, v]) { [probs] g in
        let pp = probs.pointer  // the closure owns P (raw pointers alone would not keep it alive)
        let gq = Tensor(uninitialized: q.shape), gk = Tensor(uninitialized: k.shape), gv = Tensor(uninitialized: v.shape)
        let pg = g.pointer
        parallelFor(batch, costPerItem: lq * lk * (2 * d + 2 * dv), grain: 1 << 16) { range in
            let dP = UnsafeMutablePointer<Float>.allocate(capacity: lq * lk)
            defer { dP.deallocate() }
            for b in range {
                let P = pp + b * lq * lk, G = pg + b * lq * dv
                // dV = Pᵀ·dO; dP = dO·Vᵀ
                sgemm(transA: true, transB: false, m: lk, n: dv, k: lq, a: P, lda: lk, b: G, ldb: dv, c: gv.pointer + b * lk * dv, ldc: dv)
                sgemm(transA: false, transB: true, m: lq, n: lk, k: dv, a: G, lda: dv, b: pv + b * lk * dv, ldb: dv, c: dP, ldc: lk)
                // dS = P ⊙ (dP − rowsum(dP ⊙ P))
                for i in 0..<lq {
                    let row = dP + i * lk, prow = P + i * lk
                    let dot = vdot(row, prow, lk)
                    for j in 0..<lk { row[j] = prow[j] * (row[j] - dot) }
                }
                // dQ = scale·dS·K; dK = scale·dSᵀ·Q
                sgemm(transA: false, transB: false, m: lq, n: d, k: lk, alpha: scale, a: dP, lda: lk, b: pk + b * lk * d, ldb: d,
                      c: gq.pointer + b * lq * d, ldc: d)
                sgemm(transA: true, transB: false, m: lk, n: d, k: lq, alpha: scale, a: dP, lda: lk, b: pq + b * lq * d, ldb: d,
                      c: gk.pointer + b * lk * d, ldc: d)
            }
        }
        return [gq, gk, gv]
    }
    return (result, probs)
}

/// An additive causal mask [L, L]: 0 on and below the diagonal, -inf above (CLIP's text encoder).
public func causalMask(_ length: Int) -> Tensor {
    let m = Tensor(zeros: [length, length])
    for i in 0..<length { for j in (i + 1)..<max(length, i + 1) { m.pointer[i * length + j] = -.infinity } }
    return m
}
