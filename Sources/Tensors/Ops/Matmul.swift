import Foundation

// Matrix products on cblas_sgemm: batched matmul (with a shared right-hand matrix or equal batch
// dims) and Linear (x·Wᵀ + b with PyTorch's [out, in] weight layout).

/// C[m×n] = alpha · op(A) · op(B) + beta · C, row-major. Large products are split into blocks of
/// rows (or columns, when n is the larger side) that run on separate threads, each a single-threaded
/// OpenBLAS call.
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let threads = Threads.count
    let flops = m * n * k
    if threads > 1 && flops >= 1 << 21 && !ParallelRegion.isInside && max(m, n) >= 2 * threads {
        if m >= n {
            parallelFor(m, costPerItem: n * k, grain: 0) { r in
                let aOff = transA ? r.lowerBound : r.lowerBound * lda
                sgemmSingle(transA: transA, transB: transB, m: r.count, n: n, k: k, alpha: alpha, a: a + aOff, lda: lda,
                            b: b, ldb: ldb, beta: beta, c: c + r.lowerBound * ldc, ldc: ldc)
            }
        } else {
            parallelFor(n, costPerItem: m * k, grain: 0) { r in
                let bOff = transB ? r.lowerBound * ldb : r.lowerBound
                sgemmSingle(transA: transA, transB: transB, m: m, n: r.count, k: k, alpha: alpha, a: a, lda: lda,
                            b: b + bOff, ldb: ldb, beta: beta, c: c + r.lowerBound, ldc: ldc)
            }
        }
        return
    }
    sgemmSingle(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                beta: beta, c: c, ldc: ldc)
}

/// One cblas_sgemm call on the calling thread.
@inline(__always)
func sgemmSingle(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    BLAS.library.sgemm(BLAS.rowMajor, transA ? BLAS.trans : BLAS.noTrans, transB ? BLAS.trans : BLAS.noTrans,
                       Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Runs `count` independent GEMMs: small ones (per-head attention) one per thread; large ones in
/// turn, each split across the threads by `sgemm`.
func batchedGEMM(_ count: Int, flopsEach: Int, _ body: (Int) -> Void) {
    if count < 2 || flopsEach >= 1 << 22 {
        for i in 0..<count { body(i) }
        return
    }
    parallelFor(count, costPerItem: flopsEach, grain: 1 << 16) { range in
        for i in range { body(i) }
    }
}

extension Tensor {
    /// Matrix product over the last two axes. `self` is [..., M, K]; `other` is [K, N] (shared) or
    /// [..., K, N] with the same batch dims (or batch dims of size 1 on one side, broadcast).
    /// `transposeOther` reads `other` as [..., N, K] (so q·kᵀ needs no copy).
    public func matmul(_ other: Tensor, transposeOther: Bool = false) -> Tensor {
        precondition(rank >= 2 && other.rank >= 2, "matmul needs rank ≥ 2, got \(shape) and \(other.shape)")
        let m = shape[rank - 2], k = shape[rank - 1]
        let kb = transposeOther ? other.shape[other.rank - 1] : other.shape[other.rank - 2]
        let n = transposeOther ? other.shape[other.rank - 2] : other.shape[other.rank - 1]
        precondition(k == kb, "matmul: inner dims differ, \(shape) × \(other.shape)\(transposeOther ? "ᵀ" : "")")
        let batchA = Array(shape.dropLast(2)), batchB = Array(other.shape.dropLast(2))
        let ba = batchA.reduce(1, *), bb = batchB.reduce(1, *)
        let outBatch: [Int]
        if other.rank == 2 { outBatch = batchA }
        else if batchA == batchB { outBatch = batchA }
        else if bb == 1 { outBatch = batchA }
        else if ba == 1 { outBatch = batchB }
        else { preconditionFailure("matmul: batch dims \(batchA) and \(batchB) do not match") }
        let batch = outBatch.reduce(1, *)
        let out = Tensor(uninitialized: outBatch + [m, n])
        let pa = pointer, pb = other.pointer, po = out.pointer
        let ldb = transposeOther ? k : n
        if bb == 1 && ba == batch {
            // Shared right-hand matrix: one big GEMM over all rows of self.
            sgemm(transA: false, transB: transposeOther, m: batch * m, n: n, k: k, a: pa, lda: k, b: pb, ldb: ldb, c: po, ldc: n)
        } else {
            batchedGEMM(batch, flopsEach: m * n * k) { i in
                let ai = ba == 1 ? 0 : i, bi = bb == 1 ? 0 : i
                sgemm(transA: false, transB: transposeOther, m: m, n: n, k: k, a: pa + ai * m * k, lda: k,
                      b: pb + bi * k * n, ldb: ldb, c: po + i * m * n, ldc: n)
            }
        }
        let a = self, b = other
        return out.recorded("matmul", [a, b]) { g in
            var ga: Tensor? = nil, gb: Tensor? = nil
            let pg = g.pointer
            if a.requiresGrad {
                // dA = dC · op(B)ᵀ
                let r = Tensor(zeros: a.shape)
                let body = { (i: Int) in
                    let ai = ba == 1 ? 0 : i, bi = bb == 1 ? 0 : i
                    sgemm(transA: false, transB: !transposeOther, m: m, n: k, k: n, a: pg + i * m * n, lda: n,
                          b: b.pointer + bi * k * n, ldb: ldb, beta: (ba == 1 && i > 0) ? 1 : 0,
                          c: r.pointer + ai * m * k, ldc: k)
                }
                if ba == 1 { for i in 0..<batch { body(i) } } else { batchedGEMM(batch, flopsEach: m * n * k, body) }
                ga = r
            }
            if b.requiresGrad {
                // d op(B) = Aᵀ · dC; for transposeOther, dB = dCᵀ · A.
                let r = Tensor(zeros: b.shape)
                if bb == 1 && ba == batch {
                    if transposeOther {
                        sgemm(transA: true, transB: false, m: n, n: k, k: batch * m, a: pg, lda: n, b: a.pointer, ldb: k, c: r.pointer, ldc: k)
                    } else {
                        sgemm(transA: true, transB: false, m: k, n: n, k: batch * m, a: a.pointer, lda: k, b: pg, ldb: n, c: r.pointer, ldc: n)
                    }
                } else {
                    let body = { (i: Int) in
                        let ai = ba == 1 ? 0 : i, bi = bb == 1 ? 0 : i
                        let beta: Float = (bb == 1 && i > 0) ? 1 : 0
                        if transposeOther {
                            sgemm(transA: true, transB: false, m: n, n: k, k: m, a: pg + i * m * n, lda: n,
                                  b: a.pointer + ai * m * k, ldb: k, beta: beta, c: r.pointer + bi * k * n, ldc: k)
                        } else {
                            sgemm(transA: true, transB: false, m: k, n: n, k: m, a: a.pointer + ai * m * k, lda: k,
                                  b: pg + i * m * n, ldb: n, beta: beta, c: r.pointer + bi * k * n, ldc: n)
                        }
                    }
                    if bb == 1 { for i in 0..<batch { body(i) } } else { batchedGEMM(batch, flopsEach: m * n * k, body) }
                }
                gb = r
            }
            return [ga, gb]
        }
    }
}

/// y = x·Wᵀ + b over the last axis of x. `weight` is [out, in] (PyTorch layout), `bias` [out].
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    let inF = weight.shape[1], outF = weight.shape[0]
    precondition(x.shape.last == inF, "linear: input \(x.shape) does not end in \(inF)")
    let rows = x.count / max(inF, 1)
    let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outF])
    let po = out.pointer
    if let bias {
        precondition(bias.count == outF, "linear: bias \(bias.shape) for \(outF) outputs")
        let pb = bias.pointer
        for r in 0..<rows { (po + r * outF).update(from: pb, count: outF) }
    }
    sgemm(transA: false, transB: true, m: rows, n: outF, k: inF, a: x.pointer, lda: inF, b: weight.pointer, ldb: inF,
          beta: bias == nil ? 0 : 1, c: po, ldc: outF)
    let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
    return out.recorded("linear", inputs) { g in
        let pg = g.pointer
        var gx: Tensor? = nil, gw: Tensor? = nil, gb: Tensor? = nil
        if x.requiresGrad {
            let r = Tensor(uninitialized: x.shape)
            sgemm(transA: false, transB: false, m: rows, n: inF, k: outF, a: pg, lda: outF, b: weight.pointer, ldb: inF, c: r.pointer, ldc: inF)
            gx = r
        }
        if weight.requiresGrad {
            let r = Tensor(uninitialized: weight.shape)
            sgemm(transA: true, transB: false, m: outF, n: inF, k: rows, a: pg, lda: outF, b: x.pointer, ldb: inF, c: r.pointer, ldc: inF)
            gw = r
        }
        if let bias, bias.requiresGrad {
            let r = Tensor(uninitialized: bias.shape)
            reduceAxisKernel(pg, outer: 1, n: rows, inner: outF, into: r.pointer)
            gb = r
        }
        return bias == nil ? [gx, gw] : [gx, gw, gb]
    }
}
