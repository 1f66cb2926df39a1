import Foundation

/// A seeded, reproducible random stream: the same seed gives bit-identical tensors on every run and
/// machine (xoshiro256** seeded through SplitMix64; normals by Box–Muller on two 24-bit uniforms).
/// It does not reproduce PyTorch's streams; parity tests load their inputs from fixtures instead.
public struct RNG: Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = SplitMix(seed: seed)
        s = (z.next(), z.next(), z.next(), z.next())
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Next 64 random bits.
    @inline(__always) public mutating func next() -> UInt64 {
        let result = RNG.rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = RNG.rotl(s.3, 45)
        return result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    @inline(__always) public mutating func uniform() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform integer in 0..<n.
    public mutating func int(below n: Int) -> Int {
        precondition(n > 0)
        return Int(next() % UInt64(n))
    }

    /// Standard normal sample.
    public mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-12), u2 = uniform()
        return Float((-2 * Foundation.log(Double(u1))).squareRoot() * Foundation.cos(2 * Double.pi * Double(u2)))
    }

    /// Fills `p[0..<n]` with standard normals (pairs of Box–Muller outputs, so twice as cheap).
    public mutating func fillNormal(_ p: UnsafeMutablePointer<Float>, _ n: Int, mean: Float = 0, std: Float = 1) {
        var i = 0
        while i < n {
            let u1 = Double(max(uniform(), 1e-12)), u2 = Double(uniform())
            let r = (-2 * Foundation.log(u1)).squareRoot(), a = 2 * Double.pi * u2
            p[i] = mean + std * Float(r * Foundation.cos(a))
            if i + 1 < n { p[i + 1] = mean + std * Float(r * Foundation.sin(a)) }
            i += 2
        }
    }

    /// Shuffles an array in place (Fisher–Yates).
    public mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, int(below: i + 1)) }
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny deterministic generator. It seeds `RNG`, and the
/// scripted demo engine and the workbench's fresh seeds draw from it directly.
public struct SplitMix: Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
