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
}
