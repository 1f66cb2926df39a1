import Foundation

// Vectorised exp (8 lanes): Cephes' expf polynomial after reduction by ln 2, relative error ≈ 2e-7
// over the float range. glibc's scalar expf dominated softmax and SiLU (measured ~20 % of a UNet
// pass); these loops are what the hot kernels call.

@inline(__always)
func simdExp(_ v: SIMD8<Float>) -> SIMD8<Float> {
    let x = v.clamped(lowerBound: SIMD8(repeating: -87.33654), upperBound: SIMD8(repeating: 88.0))  // e^88 ≈ 1.7e38; beyond it 2^k would overflow before scaling
    // Round x·log2(e) to an integer with the 1.5·2²³ trick: the float add rounds to nearest even, and
    // the sum's low mantissa bits hold k. (SIMD's rounded(_:) and Int32(_:rounding:) conversions are
    // generic per-lane code here: measured 20× slower.)
    let magic = SIMD8<Float>(repeating: 12_582_912)
    let shifted = x * 1.44269504088896341 + magic
    let k = shifted - magic
    var r = x - k * 0.693359375
    r = r - k * -2.12194440e-4
    let r2 = r * r
    var p = SIMD8<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r2 + r + 1
    let ki = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let bits = (ki &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: SIMD8<Float>.self)
}

/// y[i] = exp(x[i] + shift) for i in 0..<n (x and y may alias).
@inline(__always)
func vexp(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, shift: Float = 0) {
    var i = 0
    let s = SIMD8<Float>(repeating: shift)
    while i + 8 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: simdExp(v + s), as: SIMD8<Float>.self)
        i += 8
    }
    if i < n {
        var tail = SIMD8<Float>(repeating: -100)
        for j in 0..<(n - i) { tail[j] = x[i + j] }
        let e = simdExp(tail + s)
        for j in 0..<(n - i) { y[i + j] = e[j] }
    }
}

/// y = x · sigmoid(x) over n elements.
@inline(__always)
func vsilu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 8 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: v / (1 + simdExp(-v)), as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { y[i] = x[i] / (1 + Foundation.exp(-x[i])); i += 1 }
}

/// The exponential of each element with the vector kernel (for tests and callers outside the ops).
public func fastExp(_ values: [Float]) -> [Float] {
    var out = [Float](repeating: 0, count: values.count)
    values.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { y in vexp(x.baseAddress!, y.baseAddress!, values.count) } }
    return out
}
