import CKernels
import Foundation

// IEEE binary16 ("F16") and bfloat16 ("BF16") ⇄ Float32 conversion, by bit manipulation so the
// results are the same on every platform (Swift's `Float16` is missing on Intel macOS).
// Down-conversion rounds to nearest, ties to even; overflow goes to ±Inf; NaN stays NaN (quiet,
// sign and top payload bits kept); ±0, subnormals and ±Inf convert exactly.
// The bulk functions read and write through raw pointers with unaligned little-endian access, so
// they can work directly on a memory-mapped file at any byte offset. The bulk up-conversions are C
// kernels (Sources/CKernels; F16C where the CPU has it, the same exact values) that also report the
// first non-finite value, so a weight load converts and checks in one pass.

/// Conversions between Float32 and the 16-bit float formats used in checkpoints.
public enum HalfFloat {
    // MARK: Scalars

    /// The Float32 value of an IEEE binary16 bit pattern (exact: every binary16 value is a Float32).
    @inline(__always)
    public static func float(fromF16 h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h) & 0x3FF
        if exponent == 0x1F {                       // Inf or NaN: payload moves up, quiet bit lines up
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {                          // zero or subnormal: mantissa · 2^-24, exact in Float32
            let magnitude = Float(mantissa) * 0x1p-24
            return Float(bitPattern: sign | magnitude.bitPattern)
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// The nearest IEEE binary16 bit pattern to `x` (ties to even; beyond ±65504 rounds to ±Inf).
    @inline(__always)
    public static func f16(_ x: Float) -> UInt16 {
        var bits = x.bitPattern
        let sign = bits & 0x8000_0000
        bits ^= sign
        let out: UInt32
        if bits >= 0x4780_0000 {                    // |x| ≥ 65536, Inf or NaN
            out = bits > 0x7F80_0000 ? (0x7E00 | ((bits >> 13) & 0x3FF)) : 0x7C00
        } else if bits < 0x3880_0000 {              // |x| < 2^-14: subnormal or zero in binary16
            // Adding 0.5 puts the 10 result bits at the bottom of the mantissa; the FPU's own
            // round-to-nearest-even does the rounding.
            let shifted = Float(bitPattern: bits) + 0.5
            out = shifted.bitPattern &- 0x3F00_0000
        } else {
            let odd = (bits >> 13) & 1
            out = (bits &+ 0xC800_0FFF &+ odd) >> 13  // rebias exponent (−112 << 23) and round
        }
        return UInt16(truncatingIfNeeded: out | (sign >> 16))
    }

    /// The Float32 value of a bfloat16 bit pattern (exact: bfloat16 is the top half of a Float32).
    @inline(__always)
    public static func float(fromBF16 b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// The nearest bfloat16 bit pattern to `x` (ties to even; NaN stays a quiet NaN with its sign).
    @inline(__always)
    public static func bf16(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 {       // NaN: truncate, force the quiet bit
            return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        }
        let rounding = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    // MARK: Bulk

    /// Converts `count` little-endian binary16 values at `source` (any alignment) to Float32 and
    /// returns the index of the first NaN/±Inf among them, or nil (the C kernel: F16C where the CPU
    /// has it; every value is converted either way). `prefault`: back the destination's pages first,
    /// for fresh memory (see `backPages`).
    @discardableResult
    public static func f16ToFloat(_ source: UnsafeRawPointer, _ destination: UnsafeMutablePointer<Float>, count: Int,
                                  prefault: Bool = false) -> Int? {
        convertInBlocks(source, destination, count: count, sourceWidth: 2, prefault: prefault, l2s_f16_to_f32)
    }

    /// Converts `count` Float32 values to little-endian binary16 at `destination` (any alignment).
    public static func floatToF16(_ source: UnsafePointer<Float>, _ destination: UnsafeMutableRawPointer, count: Int) {
        parallelFor(count, grain: 1 << 16) { r in
            for i in r {
                destination.storeBytes(of: f16(source[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        }
    }

    /// Converts `count` little-endian bfloat16 values at `source` (any alignment) to Float32; returns
    /// the index of the first NaN/±Inf, or nil.
    @discardableResult
    public static func bf16ToFloat(_ source: UnsafeRawPointer, _ destination: UnsafeMutablePointer<Float>, count: Int,
                                   prefault: Bool = false) -> Int? {
        convertInBlocks(source, destination, count: count, sourceWidth: 2, prefault: prefault, l2s_bf16_to_f32)
    }

    /// Converts `count` Float32 values to little-endian bfloat16 at `destination` (any alignment).
    public static func floatToBF16(_ source: UnsafePointer<Float>, _ destination: UnsafeMutableRawPointer, count: Int) {
        parallelFor(count, grain: 1 << 16) { r in
            for i in r {
                destination.storeBytes(of: bf16(source[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        }
    }

    /// Copies `count` little-endian Float32 values at `source` (any alignment) to `destination`;
    /// returns the index of the first NaN/±Inf, or nil.
    @discardableResult
    public static func f32ToFloat(_ source: UnsafeRawPointer, _ destination: UnsafeMutablePointer<Float>, count: Int,
                                  prefault: Bool = false) -> Int? {
        #if _endian(little)
        return convertInBlocks(source, destination, count: count, sourceWidth: 4, prefault: prefault, l2s_f32_copy)
        #else
        fatalError("big-endian hosts are not supported")
        #endif
    }

    /// The index of the first NaN/±Inf of `count` floats, or nil.
    public static func firstNonFinite(_ values: UnsafePointer<Float>, count: Int) -> Int? {
        let blocks = (count + block - 1) / block
        return firstFlagged(blocks) { b in
            let lo = b * block
            return l2s_first_nonfinite(values + lo, min(block, count - lo))
        }
    }

    private static let block = 1 << 16

    /// The kernel's page size (4 KB on x86-64; 16 or 64 KB on some arm64 kernels, where a 4 KB-aligned
    /// range would be refused).
    private static let pageSize = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)

    /// Asks the kernel to back the whole pages of `count` floats at `p` in one call
    /// (MADV_POPULATE_WRITE, Linux 5.14+), instead of one trap per page as the conversion first
    /// writes them. Best effort: where the kernel refuses, the writes fault the pages in as before.
    static func backPages(_ p: UnsafeMutablePointer<Float>, count: Int) {
        let page = pageSize
        let start = (Int(bitPattern: p) + page - 1) & ~(page - 1)
        let end = (Int(bitPattern: p) + 4 * count) & ~(page - 1)
        guard end > start else { return }
        #if os(Linux)
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, 23 /* MADV_POPULATE_WRITE */)
        #endif
    }

    /// Runs a C conversion over blocks of `block` values on the worker threads; the first flagged index wins.
    private static func convertInBlocks(_ source: UnsafeRawPointer, _ destination: UnsafeMutablePointer<Float>, count: Int,
                                        sourceWidth: Int, prefault: Bool, _ kernel: (UnsafeRawPointer?, UnsafeMutablePointer<Float>?, Int) -> Int) -> Int? {
        let blocks = (count + block - 1) / block
        return firstFlagged(blocks) { b in
            let lo = b * block
            if prefault { backPages(destination + lo, count: min(block, count - lo)) }
            return kernel(source + lo * sourceWidth, destination + lo, min(block, count - lo))
        }
    }

    /// Evaluates `flagged(b)` (a block's first flagged offset + its start, or −1) for every block in parallel.
    private static func firstFlagged(_ blocks: Int, _ flagged: (Int) -> Int) -> Int? {
        guard blocks > 0 else { return nil }
        var found = [Int](repeating: -1, count: blocks)
        found.withUnsafeMutableBufferPointer { out in
            parallelFor(blocks, costPerItem: block) { r in
                for b in r {
                    let i = flagged(b)
                    out[b] = i < 0 ? -1 : b * block + i
                }
            }
        }
        return found.first { $0 >= 0 }
    }
}
