import CKernels
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
    if tracked && !returnProbabilities {
        return AttentionResult(output: flashAttention(q, k, v, scale: s, mask: mask), probabilities: nil)
    }
    let (out, probs) = fusedAttention(q, k, v, scale: s, mask: mask)
    return AttentionResult(output: out, probabilities: returnProbabilities ? probs.detached() : nil)
}

/// c [m, n] (row stride ldc) = alpha · a [m, k] · b [n, k]ᵀ on the calling thread, for the attention's
/// thin products (k = the head dimension): the AVX-512 C kernel where the CPU has it and k ≤ 128
/// (OpenBLAS runs a 256 × 256 × 32 product at a quarter of its GEMM speed), else sgemm. Called inside
/// the attention's parallel loops.
@inline(__always)
func attentionProductNT(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                        b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if l2s_scores_nt(a, lda, b, ldb, c, ldc, m, n, k, alpha) != 0 { return }
    sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
}

/// Block sizes of the flash kernel: `rows` queries × `keys` keys per score tile. The key block is
/// sized for the head dimensions so that a K block, a V block and the score tile stay near 512 kB
/// (an L2-resident working set), the query block keeps the GEMMs' m dimension at 64.
struct FlashTiles {
    let rows: Int, keys: Int

    init(rows: Int, keys: Int) {
        self.rows = max(1, rows)
        self.keys = max(1, keys)
    }

    init(lq: Int, lk: Int, d: Int, dv: Int) {
        rows = max(1, min(lq, 64))
        let budget = (1 << 17) / max(d + dv + rows, 1)          // floats per key row of the working set
        keys = max(1, min(lk, max(64, budget / 16 * 16)))
    }
}

/// Flash-style attention for the tape (training, steering through the output): the forward pass runs
/// over query blocks and key blocks with an online softmax (running row max m and sum l; the output
/// block is rescaled by e^(m_old − m_new) when the max grows) and keeps only each row's log-sum-exp
/// L = m + log l, never the [Lq, Lk] probabilities. The backward pass recomputes each probability
/// tile as P = exp(scale·q·kᵀ + mask − L) and accumulates, per (batch, head):
/// dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − D) with D = rowsum(dO ⊙ O), dQ += scale·dS·K,
/// dK += scale·dSᵀ·Q (Dao et al., FlashAttention, 2022, Algorithm 2, as CPU GEMM tiles).
func flashAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float, mask: Tensor?, tiles chosen: FlashTiles? = nil) -> Tensor {
    let lq = q.shape[q.rank - 2], d = q.shape[q.rank - 1]
    let lk = k.shape[k.rank - 2], dv = v.shape[v.rank - 1]
    precondition(k.shape[k.rank - 1] == d && v.shape[v.rank - 2] == lk, "attention: q \(q.shape), k \(k.shape), v \(v.shape)")
    let batch = q.count / max(lq * d, 1)
    let tiles = chosen.map { FlashTiles(rows: min($0.rows, max(lq, 1)), keys: min($0.keys, max(lk, 1))) }
        ?? FlashTiles(lq: lq, lk: lk, d: d, dv: dv)
    let queryBlocks = (lq + tiles.rows - 1) / tiles.rows
    let out = Tensor(uninitialized: Array(q.shape.dropLast()) + [dv])
    let lse = Storage(uninitializedCount: max(batch * lq, 1))
    let maskRows: Tensor? = mask.map { m in m.count == lq * lk ? m : m.expanded(to: [lq, lk]) }
    let pq = q.pointer, pk = k.pointer, pv = v.pointer, po = out.pointer, pl = lse.pointer, pm = maskRows?.pointer

    // Scores of query rows r0..<r0+m of block b against keys c0..<c0+n into S [m, n] (ldc n).
    @inline(__always)
    func scores(_ b: Int, _ r0: Int, _ m: Int, _ c0: Int, _ n: Int, into S: UnsafeMutablePointer<Float>) {
        attentionProductNT(m: m, n: n, k: d, alpha: scale, a: pq + (b * lq + r0) * d, lda: d,
                           b: pk + (b * lk + c0) * d, ldb: d, c: S, ldc: n)
        if let pm {
            for i in 0..<m {
                let row = S + i * n, mrow = pm + (r0 + i) * lk + c0
                for j in 0..<n { row[j] += mrow[j] }
            }
        }
    }

    parallelFor(batch * queryBlocks, costPerItem: tiles.rows * lk * (2 * d + dv), grain: 1 << 16) { range in
        let S = UnsafeMutablePointer<Float>.allocate(capacity: tiles.rows * tiles.keys)
        let runMax = UnsafeMutablePointer<Float>.allocate(capacity: tiles.rows)
        let runSum = UnsafeMutablePointer<Float>.allocate(capacity: tiles.rows)
        let alphas = UnsafeMutablePointer<Float>.allocate(capacity: tiles.rows)
        defer { S.deallocate(); runMax.deallocate(); runSum.deallocate(); alphas.deallocate() }
        for task in range {
            let b = task / queryBlocks, r0 = (task % queryBlocks) * tiles.rows, m = min(tiles.rows, lq - r0)
            let O = po + (b * lq + r0) * dv
            O.update(repeating: 0, count: m * dv)
            runMax.update(repeating: -.infinity, count: m)
            runSum.update(repeating: 0, count: m)
            var c0 = 0
            while c0 < lk {
                let n = min(tiles.keys, lk - c0)
                scores(b, r0, m, c0, n, into: S)
                if l2s_online_softmax_tile(S, m, n, runMax, runSum, alphas) != 0 {
                    for i in 0..<m where alphas[i] != 1 { vscale(O + i * dv, dv, by: alphas[i]) }
                } else {
                    for i in 0..<m {
                        let row = S + i * n
                        let newMax = Swift.max(runMax[i], vmax(row, n))
                        if newMax == -.infinity { row.update(repeating: 0, count: n); continue }   // all masked so far
                        let alpha = runMax[i] == -.infinity ? 0 : Foundation.exp(runMax[i] - newMax)
                        vexp(row, row, n, shift: -newMax)
                        runSum[i] = runSum[i] * alpha + vsum(row, n)
                        if alpha != 1 { vscale(O + i * dv, dv, by: alpha) }
                        runMax[i] = newMax
                    }
                }
                sgemm(transA: false, transB: false, m: m, n: dv, k: n, a: S, lda: n, b: pv + (b * lk + c0) * dv, ldb: dv,
                      beta: 1, c: O, ldc: dv)
                c0 += n
            }
            for i in 0..<m {
                // A row with every key masked has no softmax: output 0, L = +∞ (its recomputed P is 0).
                let l = runSum[i]
                vscale(O + i * dv, dv, by: l > 0 ? 1 / l : 0)
                pl[b * lq + r0 + i] = l > 0 ? runMax[i] + Foundation.log(l) : .infinity
            }
        }
    }

    return out.recorded("flash_attention", [q, k, v]) { [lse, maskRows] g in
        // The closure owns L and the mask rows the recomputed scores read through `pm` (the caller's
        // mask, e.g. a causal mask made per call, may be gone by the time the backward pass runs).
        let pl = lse.pointer
        defer { withExtendedLifetime(maskRows) {} }
        let gq = Tensor(zeros: q.shape), gk = Tensor(zeros: k.shape), gv = Tensor(zeros: v.shape)
        let pg = g.pointer, pgq = gq.pointer, pgk = gk.pointer, pgv = gv.pointer
        parallelFor(batch, costPerItem: lq * lk * (3 * d + 2 * dv), grain: 1 << 16) { range in
            let P = UnsafeMutablePointer<Float>.allocate(capacity: tiles.rows * tiles.keys)
            let dP = UnsafeMutablePointer<Float>.allocate(capacity: tiles.rows * tiles.keys)
            let D = UnsafeMutablePointer<Float>.allocate(capacity: tiles.rows)
            defer { P.deallocate(); dP.deallocate(); D.deallocate() }
            for b in range {
                for r0 in stride(from: 0, to: lq, by: tiles.rows) {
                    let m = min(tiles.rows, lq - r0)
                    let dO = pg + (b * lq + r0) * dv, O = po + (b * lq + r0) * dv
                    for i in 0..<m { D[i] = vdot(dO + i * dv, O + i * dv, dv) }
                    var c0 = 0
                    while c0 < lk {
                        let n = min(tiles.keys, lk - c0)
                        scores(b, r0, m, c0, n, into: P)
                        if l2s_exp_rows_shifted(P, m, n, pl + b * lq + r0) == 0 {
                            for i in 0..<m { vexp(P + i * n, P + i * n, n, shift: -pl[b * lq + r0 + i]) }
                        }
                        // dV[c0..] += Pᵀ·dO; dP = dO·V[c0..]ᵀ
                        sgemm(transA: true, transB: false, m: n, n: dv, k: m, a: P, lda: n, b: dO, ldb: dv,
                              beta: 1, c: pgv + (b * lk + c0) * dv, ldc: dv)
                        attentionProductNT(m: m, n: n, k: dv, a: dO, lda: dv, b: pv + (b * lk + c0) * dv, ldb: dv,
                                           c: dP, ldc: n)
                        // dS = P ⊙ (dP − D), in dP
                        for i in 0..<m {
                            let prow = P + i * n, drow = dP + i * n, di = D[i]
                            for j in 0..<n { drow[j] = prow[j] * (drow[j] - di) }
                        }
                        // dQ += scale·dS·K[c0..]; dK[c0..] += scale·dSᵀ·Q
                        sgemm(transA: false, transB: false, m: m, n: d, k: n, alpha: scale, a: dP, lda: n,
                              b: pk + (b * lk + c0) * d, ldb: d, beta: 1, c: pgq + (b * lq + r0) * d, ldc: d)
                        sgemm(transA: true, transB: false, m: n, n: d, k: m, alpha: scale, a: dP, lda: n,
                              b: pq + (b * lq + r0) * d, ldb: d, beta: 1, c: pgk + (b * lk + c0) * d, ldc: d)
                        c0 += n
                    }
                }
            }
        }
        return [gq, gk, gv]
    }
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
        attentionProductNT(m: m, n: lk, k: d, alpha: scale, a: pq + (b * lq + r0) * d, lda: d,
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
