import Foundation
import CKernels

// Vectorised exp (8 lanes): Cephes' expf polynomial after reduction by ln 2, relative error ≈ 2e-7
// over the float range. glibc's scalar expf dominated softmax and SiLU (measured ~20 % of a UNet
// pass); these loops are what the hot kernels call.

@inline(__always)
func simdExp(_ v: SIMD8<Float>) -> SIMD8<Float> {
    let x = clampForExp(v)
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
    let e = unsafeBitCast(p * unsafeBitCast(bits, to: SIMD8<Float>.self), to: SIMD8<Int32>.self)
    // NaN in, NaN out (the clamp alone would turn it into a number). The NaN mask is made with integer
    // arithmetic: SIMD compares lower to per-lane loops here. |v|'s bits above +∞'s ⇔ 0x7F800000 − |v| < 0.
    let magnitude = unsafeBitCast(v, to: SIMD8<Int32>.self) & SIMD8(repeating: 0x7FFF_FFFF)
    let nan = (SIMD8<Int32>(repeating: 0x7F80_0000) &- magnitude) &>> SIMD8(repeating: 31)
    return unsafeBitCast(e | (nan & SIMD8(repeating: 0x7FC0_0000)), to: SIMD8<Float>.self)
}

/// v clamped to [−87.33654, 88] (e^88 ≈ 1.7e38; beyond it 2^k would overflow before scaling) with
/// integer compares on the bit patterns: `clamped(lowerBound:upperBound:)` is a per-lane generic call
/// here (measured 2.6 % of a training step), these lower to vector compares and selects. Positive
/// floats order like their bits as signed integers; a float is below the negative bound exactly
/// when its bits, unsigned, are above the bound's.
@inline(__always)
func clampForExp(_ v: SIMD8<Float>) -> SIMD8<Float> {
    let lo = SIMD8<Float>(repeating: -87.33654), hi = SIMD8<Float>(repeating: 88.0)
    let loBits = unsafeBitCast(lo, to: SIMD8<UInt32>.self), hiBits = unsafeBitCast(hi, to: SIMD8<Int32>.self)
    var bits = unsafeBitCast(v, to: SIMD8<UInt32>.self)
    bits.replace(with: loBits, where: bits .> loBits)
    var signed = unsafeBitCast(bits, to: SIMD8<Int32>.self)
    signed.replace(with: hiBits, where: signed .> hiBits)
    return unsafeBitCast(signed, to: SIMD8<Float>.self)
}

/// Σ p[0..<n] with eight lane accumulators (a scalar `+=` loop is one serial add chain).
@inline(__always)
func vsum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    while i + 8 <= n { acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self); i += 8 }
    var s = acc.sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

/// Σ a[i]·b[i] over n elements with eight lane accumulators.
@inline(__always)
func vdot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    while i + 8 <= n {
        acc += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// The largest of p[0..<n] (−∞ for n = 0), over eight independent scalar chains.
@inline(__always)
func vmax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var m0 = -Float.infinity, m1 = m0, m2 = m0, m3 = m0, m4 = m0, m5 = m0, m6 = m0, m7 = m0
    var i = 0
    while i + 8 <= n {
        m0 = Swift.max(m0, p[i]); m1 = Swift.max(m1, p[i + 1]); m2 = Swift.max(m2, p[i + 2]); m3 = Swift.max(m3, p[i + 3])
        m4 = Swift.max(m4, p[i + 4]); m5 = Swift.max(m5, p[i + 5]); m6 = Swift.max(m6, p[i + 6]); m7 = Swift.max(m7, p[i + 7])
        i += 8
    }
    while i < n { m0 = Swift.max(m0, p[i]); i += 1 }
    return Swift.max(Swift.max(Swift.max(m0, m1), Swift.max(m2, m3)), Swift.max(Swift.max(m4, m5), Swift.max(m6, m7)))
}

/// p[0..<n] *= s.
@inline(__always)
func vscale(_ p: UnsafeMutablePointer<Float>, _ n: Int, by s: Float) {
    var i = 0
    let v = SIMD8<Float>(repeating: s)
    while i + 8 <= n {
        UnsafeMutableRawPointer(p + i).storeBytes(of: UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) * v, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { p[i] *= s; i += 1 }
}

/// y[i] = exp(x[i] + shift) for i in 0..<n (x and y may alias). Kept in Swift, inlined: its callers
/// (the attention softmax) call it per tile row, where a call into the C kernels measured 1.5× slower
/// attention (sdpa forward 10.5 → 16.5 ms).
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

/// The instruction set of the C element-wise kernels in use ("avx512", "avx2" or "baseline").
public var elementwiseKernelISA: String { String(cString: l2s_kernel_isa()) }

/// The exponential of each element with the vector kernel (for tests and callers outside the ops).
public func fastExp(_ values: [Float]) -> [Float] {
    var out = [Float](repeating: 0, count: values.count)
    values.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { y in vexp(x.baseAddress!, y.baseAddress!, values.count) } }
    return out
}

/// erf over 8 lanes: Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7, the form PyTorch's vectorised CPU
/// erf uses), odd symmetry restored from the sign bit.
@inline(__always)
func simdErf(_ v: SIMD8<Float>) -> SIMD8<Float> {
    let bits = unsafeBitCast(v, to: SIMD8<UInt32>.self)
    let sign = bits & SIMD8(repeating: 0x8000_0000)
    let a = unsafeBitCast(bits & SIMD8(repeating: 0x7FFF_FFFF), to: SIMD8<Float>.self)
    let t = 1 / (1 + 0.3275911 * a)
    var p = SIMD8<Float>(repeating: 1.061405429)
    p = p * t - 1.453152027
    p = p * t + 1.421413741
    p = p * t - 0.284496736
    p = p * t + 0.254829592
    let y = 1 - p * t * simdExp(-a * a)
    return unsafeBitCast(unsafeBitCast(y, to: SIMD8<UInt32>.self) | sign, to: SIMD8<Float>.self)
}

/// y[i] = f(x[i]) eight lanes at a time (the tail padded with zeros), in parallel.
@inline(__always)
func mapLanes(_ x: Tensor, _ f: (SIMD8<Float>) -> SIMD8<Float>) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let px = x.pointer, po = out.pointer, n = x.count
    parallelFor((n + 7) / 8, costPerItem: 64, grain: 1 << 12) { r in
        for blk in r {
            let i = blk * 8
            if i + 8 <= n {
                UnsafeMutableRawPointer(po + i).storeBytes(of: f(UnsafeRawPointer(px + i).loadUnaligned(as: SIMD8<Float>.self)), as: SIMD8<Float>.self)
            } else {
                var v = SIMD8<Float>()
                for j in 0..<(n - i) { v[j] = px[i + j] }
                let y = f(v)
                for j in 0..<(n - i) { po[i + j] = y[j] }
            }
        }
    }
    return out
}

/// z[i] = f(a[i], b[i]) for two tensors of one shape, eight lanes at a time, in parallel.
@inline(__always)
func zipLanes(_ a: Tensor, _ b: Tensor, _ f: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>) -> Tensor {
    precondition(a.count == b.count, "zipLanes: \(a.shape) vs \(b.shape)")
    let out = Tensor(uninitialized: a.shape)
    let pa = a.pointer, pb = b.pointer, po = out.pointer, n = a.count
    parallelFor((n + 7) / 8, costPerItem: 64, grain: 1 << 12) { r in
        for blk in r {
            let i = blk * 8
            if i + 8 <= n {
                let y = f(UnsafeRawPointer(pa + i).loadUnaligned(as: SIMD8<Float>.self), UnsafeRawPointer(pb + i).loadUnaligned(as: SIMD8<Float>.self))
                UnsafeMutableRawPointer(po + i).storeBytes(of: y, as: SIMD8<Float>.self)
            } else {
                var u = SIMD8<Float>(), v = SIMD8<Float>()
                for j in 0..<(n - i) { u[j] = pa[i + j]; v[j] = pb[i + j] }
                let y = f(u, v)
                for j in 0..<(n - i) { po[i + j] = y[j] }
            }
        }
    }
    return out
}
