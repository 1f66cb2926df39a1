import Foundation
import Testing
@testable import Tensors

@Suite("Vector math kernels")
struct VectorKernelTests {
    @Test("exp: relative error ≤ 3e-7 over the float range; saturates at e^±88ish; NaN → NaN")
    func exp() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let v = SIMD8<Float>((0..<8).map { x + Float($0) * 0.0137 })
            let e = simdExp(v)
            for j in 0..<8 { worst = max(worst, abs(e[j] - Foundation.exp(v[j])) / Foundation.exp(v[j])) }
            x += 0.37
        }
        #expect(worst < 3e-7)
        let special = simdExp(SIMD8(-.infinity, .infinity, .nan, -.nan, 0, -1000, 1000, 1))
        // Below −87.3 the result is e^−87.3 ≈ 1.2e-38 (as before: negligible next to any unmasked term).
        #expect(special[0] < 1.3e-38 && special[1] > 1e38)
        #expect(special[2].isNaN && special[3].isNaN)
        #expect(special[4] == 1 && special[5] < 1.3e-38 && special[6] > 1e38 && abs(special[7] - 2.7182817) < 1e-6)
    }

    @Test("erf: absolute error ≤ 6e-7 on [−6, 6] (A&S's 1.5e-7 plus float rounding), odd, saturating")
    func erf() {
        var worst: Float = 0
        var x: Float = -6
        while x < 6 {
            let v = SIMD8<Float>((0..<8).map { x + Float($0) * 0.001 })
            let e = simdErf(v)
            for j in 0..<8 { worst = max(worst, abs(e[j] - Foundation.erf(v[j]))) }
            x += 0.008
        }
        #expect(worst < 6e-7)
        let e = simdErf(SIMD8(0, -0.5, 0.5, 10, -10, .infinity, -.infinity, .nan))
        #expect(e[0] == 0 && e[1] == -e[2] && e[3] == 1 && e[4] == -1 && e[5] == 1 && e[6] == -1 && e[7].isNaN)
    }

    @Test("sum, dot and max reductions agree with plain loops at every length 0…40")
    func reductions() {
        var rng = RNG(seed: 3)
        for n in 0...40 {
            let a = (0..<n).map { _ in rng.normal() }, b = (0..<n).map { _ in rng.normal() }
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    let p = pa.baseAddress ?? UnsafePointer(bitPattern: 8)!, q = pb.baseAddress ?? UnsafePointer(bitPattern: 8)!
                    #expect(abs(vsum(p, n) - a.reduce(0, +)) < 1e-5)
                    #expect(abs(vdot(p, q, n) - zip(a, b).map(*).reduce(0, +)) < 1e-5)
                    #expect(vmax(p, n) == (a.max() ?? -.infinity))
                }
            }
        }
    }

    /// Softmax rows (the AVX-512 C kernel where the CPU has it, else the Swift loop) against double
    /// precision, at lengths around the 16-lane width, with −∞ (masked) entries and a NaN row.
    @Test("softmax rows agree with double precision at every length 1…40 and 100, 256")
    func softmaxRowsMatchDoublePrecision() {
        var rng = RNG(seed: 9)
        for n in Array(1...40) + [100, 256] {
            let rows = 3
            var x = (0..<(rows * n)).map { _ in rng.normal() * 8 }
            if n > 2 { x[n + 1] = -.infinity }              // a masked key in row 1
            x[2 * n] = .nan                                  // row 2 holds a NaN
            var y = [Float](repeating: 0, count: rows * n)
            x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { py in
                softmaxRows(px.baseAddress!, py.baseAddress!, rows: rows, n: n, log: false)
            } }
            for r in 0..<2 {
                let row = x[(r * n)..<((r + 1) * n)].map(Double.init)
                let m = row.max()!, z = row.map { Foundation.exp($0 - m) }.reduce(0, +)
                for j in 0..<n {
                    let want = Foundation.exp(row[j] - m) / z
                    #expect(abs(Double(y[r * n + j]) - want) < 2e-6 * max(1, want), "n \(n) row \(r) col \(j)")
                }
            }
            #expect(y[(2 * n)..<(3 * n)].contains { $0.isNaN })
        }
    }

    /// The attention's q·kᵀ product (the AVX-512 C kernel for head dimensions ≤ 128, else sgemm)
    /// against a plain loop, at row/key tails around the 4 × 32 tile and head dimensions 1…129.
    @Test("attention q·kᵀ agrees with a plain loop", arguments: [1, 7, 32, 40, 128, 129])
    func attentionProductMatchesPlainLoop(d: Int) {
        var rng = RNG(seed: UInt64(d))
        for (m, n) in [(1, 1), (3, 31), (4, 32), (5, 33), (9, 65), (64, 100)] {
            let ldq = d + 3, ldk = d + 1, lds = n + 2
            let q = (0..<(m * ldq)).map { _ in rng.normal() }, k = (0..<(n * ldk)).map { _ in rng.normal() }
            var s = [Float](repeating: .nan, count: m * lds)
            q.withUnsafeBufferPointer { pq in k.withUnsafeBufferPointer { pk in s.withUnsafeMutableBufferPointer { ps in
                attentionProductNT(m: m, n: n, k: d, alpha: 0.5, a: pq.baseAddress!, lda: ldq, b: pk.baseAddress!, ldb: ldk,
                                   c: ps.baseAddress!, ldc: lds)
            } } }
            for i in 0..<m {
                for j in 0..<n {
                    var want: Double = 0
                    for t in 0..<d { want += Double(q[i * ldq + t]) * Double(k[j * ldk + t]) }
                    want *= 0.5
                    #expect(abs(Double(s[i * lds + j]) - want) < 1e-4 * max(1, abs(want)), "m \(m) n \(n) (\(i), \(j))")
                }
                for j in n..<lds { #expect(s[i * lds + j].isNaN, "wrote past n at (\(i), \(j))") }
            }
        }
    }
}
