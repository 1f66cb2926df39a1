import Foundation
import Testing
@testable import Tensors
import CKernels

/// A fresh scratch directory per use, removed by the caller's `defer`.
func ioScratchDirectory() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-io-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Suite("Float16 / bfloat16 conversion")
struct HalfFloatTests {
    #if !(os(macOS) && arch(x86_64))
    @Test func f16ToFloatMatchesSwiftFloat16ForAllPatterns() {
        for bits in 0...UInt16.max {
            let ours = HalfFloat.float(fromF16: bits)
            let reference = Float(Float16(bitPattern: bits))
            if reference.isNaN { #expect(ours.isNaN); continue }
            if ours.bitPattern != reference.bitPattern {
                Issue.record("f16 \(String(bits, radix: 16)): \(ours) vs \(reference)")
                return
            }
        }
    }

    @Test func floatToF16MatchesSwiftFloat16() {
        var rng = RNG(seed: 11)
        var specials: [Float] = [0, -0, 1, -1, 65504, 65519.996, 65520, -65520, 1e9, .infinity, -.infinity,
                                 0x1p-14, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26, 0x1.ffcp-15, .leastNonzeroMagnitude,
                                 1 + 0x1p-11, 1 + 0x1p-11 + 0x1p-20, 1 + 3 * 0x1p-11, .greatestFiniteMagnitude]
        // every f16 value and the midpoints between neighbours (the ties)
        for bits in UInt16(0)..<0x7C00 {
            let a = HalfFloat.float(fromF16: bits), b = HalfFloat.float(fromF16: bits + 1)
            specials += [a, -a, (a + b) / 2]
        }
        for _ in 0..<200_000 { specials.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        for x in specials {
            let ours = HalfFloat.f16(x)
            let reference = Float16(x).bitPattern
            if x.isNaN {
                #expect(HalfFloat.float(fromF16: ours).isNaN, "NaN \(x.bitPattern) lost")
                #expect(ours & 0x8000 == UInt16(x.bitPattern >> 16) & 0x8000, "NaN sign lost")
                continue
            }
            if ours != reference {
                Issue.record("f16(\(x)) = \(String(ours, radix: 16)), Swift gives \(String(reference, radix: 16))")
                return
            }
        }
    }
    #endif

    @Test func f16KnownPatterns() {
        #expect(HalfFloat.f16(1) == 0x3C00)
        #expect(HalfFloat.f16(-2) == 0xC000)
        #expect(HalfFloat.f16(65504) == 0x7BFF)
        #expect(HalfFloat.f16(65520) == 0x7C00)          // halfway to the next binade: ties to even = Inf
        #expect(HalfFloat.f16(0x1p-24) == 0x0001)        // smallest subnormal
        #expect(HalfFloat.f16(0x1p-25) == 0x0000)        // tie between 0 and the smallest subnormal: even
        #expect(HalfFloat.f16(1 + 0x1p-11) == 0x3C00)    // tie, round to even
        #expect(HalfFloat.f16(1 + 3 * 0x1p-11) == 0x3C02)
        #expect(HalfFloat.f16(-.infinity) == 0xFC00)
        #expect(HalfFloat.float(fromF16: 0x7C00) == .infinity)
        #expect(HalfFloat.float(fromF16: 0x7E00).isNaN)
        #expect(HalfFloat.float(fromF16: 0x8000).bitPattern == (-0.0 as Float).bitPattern)
    }

    @Test func bf16RoundsToNearestEven() {
        #expect(HalfFloat.bf16(1) == 0x3F80)
        #expect(HalfFloat.bf16(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie, even below
        #expect(HalfFloat.bf16(Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie, odd below: up
        #expect(HalfFloat.bf16(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(HalfFloat.bf16(Float(bitPattern: 0x3F80_7FFF)) == 0x3F80)
        #expect(HalfFloat.bf16(.infinity) == 0x7F80)
        #expect(HalfFloat.bf16(-.infinity) == 0xFF80)
        #expect(HalfFloat.bf16(.greatestFiniteMagnitude) == 0x7F80)         // rounds past the largest bf16
        #expect(HalfFloat.float(fromBF16: HalfFloat.bf16(.nan)).isNaN)
        #expect(HalfFloat.float(fromBF16: HalfFloat.bf16(Float(bitPattern: 0x7F80_0001))).isNaN)  // low payload only
        #expect(HalfFloat.float(fromBF16: HalfFloat.bf16(-.nan)).sign == .minus)

        // Against a Double reference on random finite values.
        var rng = RNG(seed: 5)
        for _ in 0..<100_000 {
            let x = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            guard x.isFinite, abs(x) < 0x1p127 else { continue }
            let low = UInt16(x.bitPattern >> 16), high = low + 1
            let dl = abs(Double(x) - Double(HalfFloat.float(fromBF16: low)))
            let dh = abs(Double(x) - Double(HalfFloat.float(fromBF16: high)))
            let expected = dl < dh ? low : dh < dl ? high : (low & 1 == 0 ? low : high)
            if HalfFloat.bf16(x) != expected {
                Issue.record("bf16(\(x)) = \(HalfFloat.bf16(x)), expected \(expected)")
                return
            }
        }
    }

    /// Backing the destination's pages first (the weight loader's path) changes nothing but speed:
    /// the same values and non-finite index as without, in fresh anonymous memory at an unaligned
    /// offset across several pages and conversion blocks, and the floats around it keep their values.
    @Test func prefaultedConversionMatchesAndLeavesNeighboursAlone() {
        let n = 3 * (1 << 16) + 1234, pad = 3
        let bytes = 4 * (n + 2 * pad) + 8192
        let fresh = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        #expect(fresh != MAP_FAILED)
        defer { munmap(fresh, bytes) }
        let out = fresh.bindMemory(to: Float.self, capacity: bytes / 4) + 1000  // neither end page-aligned
        for i in 0..<pad { out[i] = 7; out[pad + n + i] = 7 }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 2 * n, alignment: 8)
        defer { raw.deallocate() }
        for i in 0..<n { raw.storeBytes(of: HalfFloat.f16(Float(i % 977) / 8 - 60).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        raw.storeBytes(of: UInt16(0x7C00).littleEndian, toByteOffset: 2 * (n - 5), as: UInt16.self)
        let plain = Tensor(zeros: [n])
        #expect(HalfFloat.f16ToFloat(raw, plain.pointer, count: n) == n - 5)
        #expect(HalfFloat.f16ToFloat(raw, out + pad, count: n, prefault: true) == n - 5)
        #expect((0..<n).allSatisfy { out[pad + $0].bitPattern == plain.pointer[$0].bitPattern })
        #expect((0..<pad).allSatisfy { out[$0] == 7 && out[pad + n + $0] == 7 })
        #expect(HalfFloat.f32ToFloat(UnsafeRawPointer(plain.pointer), out + pad, count: 10, prefault: true) == nil)
    }

    /// Every binary16 pattern through the bulk kernel (the CPU's path and the portable one) gives the
    /// scalar conversion's value, and the first non-finite pattern (0x7C00, +Inf) is the one reported.
    @Test func bulkF16MatchesScalarForAllPatternsAndFindsTheFirstNonFinite() {
        let n = 1 << 16
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 2 * n + 1, alignment: 8)
        defer { raw.deallocate() }
        for i in 0..<n { (raw + 1).storeBytes(of: UInt16(i).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        let bulk = Tensor(zeros: [n]), portable = Tensor(zeros: [n]), avx2 = Tensor(zeros: [n])
        #expect(HalfFloat.f16ToFloat(raw + 1, bulk.pointer, count: n) == 0x7C00)
        #expect(l2s_f16_to_f32_portable(raw + 1, portable.pointer, n) == 0x7C00)
        let hasAVX2 = l2s_f16_to_f32_avx2(raw + 1, avx2.pointer, n) != -2
        if hasAVX2 { #expect(l2s_f16_to_f32_avx2(raw + 1, avx2.pointer, n) == 0x7C00) }
        // The first non-finite index inside a vector and in a ragged tail, for the AVX2 path.
        for bad in [3, 8, 13, 1021] where hasAVX2 {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2 * 1024, alignment: 8)
            defer { buffer.deallocate() }
            for i in 0..<1024 { buffer.storeBytes(of: UInt16(0x3C00).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            buffer.storeBytes(of: UInt16(0x7E00).littleEndian, toByteOffset: 2 * bad, as: UInt16.self)
            #expect(l2s_f16_to_f32_avx2(buffer, avx2.pointer, 1023) == bad)
        }
        if hasAVX2 { _ = l2s_f16_to_f32_avx2(raw + 1, avx2.pointer, n) }
        for i in 0..<n {
            let reference = HalfFloat.float(fromF16: UInt16(i))
            var paths = [("bulk", bulk.pointer[i]), ("portable", portable.pointer[i])]
            if hasAVX2 { paths.append(("avx2", avx2.pointer[i])) }
            for (path, value) in paths {
                if reference.isNaN ? !value.isNaN : value.bitPattern != reference.bitPattern {
                    Issue.record("\(path) f16 \(String(i, radix: 16)): \(value) vs \(reference)")
                    return
                }
            }
        }
    }

    /// The first non-finite index across block boundaries, tails and threads, for every source type.
    @Test func bulkConversionsReportTheFirstNonFiniteIndex() {
        let n = 200_003  // several 65,536-value blocks, a ragged tail, the threaded path
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 4 * n + 1, alignment: 8)
        defer { raw.deallocate() }
        let source = randomTensor([n], seed: 5, std: 10)
        let out = Tensor(zeros: [n])
        for bad in [nil, 0, 15, 16, 65_535, 65_536, 131_080, n - 1] as [Int?] {
            for value in [Float.nan, .infinity, -.infinity] {
                let values = source.pointer
                let saved = bad.map { values[$0] }
                if let bad { values[bad] = value }
                defer { if let bad, let saved { values[bad] = saved } }
                HalfFloat.floatToF16(values, raw + 1, count: n)
                #expect(HalfFloat.f16ToFloat(raw + 1, out.pointer, count: n) == bad, "f16 \(value) at \(String(describing: bad))")
                HalfFloat.floatToBF16(values, raw + 1, count: n)
                #expect(HalfFloat.bf16ToFloat(raw + 1, out.pointer, count: n) == bad, "bf16 \(value) at \(String(describing: bad))")
                (raw + 1).copyMemory(from: values, byteCount: 4 * n)
                #expect(HalfFloat.f32ToFloat(raw + 1, out.pointer, count: n) == bad, "f32 \(value) at \(String(describing: bad))")
                #expect(HalfFloat.firstNonFinite(values, count: n) == bad)
                for i in stride(from: 0, to: n, by: 997) where i != bad { #expect(out.pointer[i] == values[i]) }
                if bad == nil { break }
            }
        }
        #expect(HalfFloat.f16ToFloat(raw, out.pointer, count: 0) == nil)
    }

    @Test func bulkConversionsMatchScalarOnesAtOddAlignment() {
        let n = 100_003  // long enough to take the threaded path
        let source = randomTensor([n], seed: 3, std: 100)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 2 * n + 1, alignment: 8)
        defer { raw.deallocate() }
        let back = Tensor(zeros: [n])
        HalfFloat.floatToF16(source.pointer, raw + 1, count: n)
        HalfFloat.f16ToFloat(raw + 1, back.pointer, count: n)
        for i in stride(from: 0, to: n, by: 97) {
            #expect(back.pointer[i] == HalfFloat.float(fromF16: HalfFloat.f16(source.pointer[i])))
        }
        HalfFloat.floatToBF16(source.pointer, raw + 1, count: n)
        HalfFloat.bf16ToFloat(raw + 1, back.pointer, count: n)
        for i in stride(from: 0, to: n, by: 97) {
            #expect(back.pointer[i] == HalfFloat.float(fromBF16: HalfFloat.bf16(source.pointer[i])))
        }
    }
}

@Suite("Safetensors read/write")
struct SafetensorsTests {
    static let sample: [(String, Tensor)] = [
        ("weight", randomTensor([3, 4], seed: 1)),
        ("bias", randomTensor([4], seed: 2, std: 10)),
        ("scalar", Tensor(scalar: -3.25)),
        ("empty", Tensor(zeros: [0, 5])),
        ("blocks.0.big", randomTensor([2, 3, 5, 7], seed: 3, std: 0.01)),
    ]

    @Test(arguments: SafetensorsDType.allCases)
    func roundTrip(dtype: SafetensorsDType) throws {
        let dir = ioScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.safetensors").path
        let metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n ünïcode"]
        try writeSafetensors(Self.sample, to: path, dtype: dtype, metadata: metadata)
        let file = try SafetensorsFile(path: path)
        #expect(file.names == ["bias", "blocks.0.big", "empty", "scalar", "weight"])
        #expect(file.metadata == metadata)
        let tolerance: Float = dtype == .f32 ? 0 : dtype == .f16 ? 0x1p-11 : 0x1p-8   // half an ulp, relative
        for (name, t) in Self.sample {
            #expect(file.info(name)?.dtype == dtype.rawValue)
            #expect(file.info(name)?.shape == t.shape)
            let back = try file.tensor(name)
            #expect(back.shape == t.shape)
            for i in 0..<t.count {
                let x = t.pointer[i], y = back.pointer[i]
                #expect(abs(x - y) <= tolerance * abs(x) + (dtype == .f16 ? 0x1p-25 : 0), "\(name)[\(i)]: \(x) → \(y)")
            }
        }
        #expect(file.info("nope") == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["t.safetensors"])  // no temp left
    }

    @Test(arguments: SafetensorsDType.allCases)
    func representableValuesAndSpecialsAreExact(dtype: SafetensorsDType) throws {
        let dir = ioScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("x.safetensors").path
        let values: [Float] = [0, -0.0, 1, -2, 0.5, 0.15625, 1024, -0.375, 3, .infinity, -.infinity, .nan]
        try writeSafetensors([("v", Tensor(values))], to: path, dtype: dtype)
        let back = try SafetensorsFile(path: path).tensor("v")
        for (i, x) in values.enumerated() {
            if x.isNaN { #expect(back.pointer[i].isNaN); continue }
            #expect(back.pointer[i].bitPattern == x.bitPattern, "\(x) became \(back.pointer[i])")
        }
    }

    /// The exact bytes the reference (Python/Rust safetensors) writer produces for the same input.
    @Test func byteLayoutMatchesReferenceFormat() throws {
        let dir = ioScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("l.safetensors").path
        try writeSafetensors([("b", Tensor([1, -2])), ("a", Tensor([0.5, 2, 65504], shape: [1, 3]))],
                             to: path, dtype: .f16, metadata: ["z": "1", "format": "pt"])
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let n = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let json = #"{"__metadata__":{"format":"pt","z":"1"},"#
            + #""a":{"dtype":"F16","shape":[1,3],"data_offsets":[0,6]},"#
            + #""b":{"dtype":"F16","shape":[2],"data_offsets":[6,10]}}"#
        #expect(n % 8 == 0)
        #expect(n == (json.utf8.count + 7) / 8 * 8)
        #expect(String(decoding: bytes[8..<(8 + n)], as: UTF8.self) == json + String(repeating: " ", count: n - json.utf8.count))
        let data = Array(bytes[(8 + n)...])
        #expect(data == [0x00, 0x38, 0x00, 0x40, 0xFF, 0x7B,   // a: 0.5, 2, 65504
                         0x00, 0x3C, 0x00, 0xC0])              // b: 1, -2

        // F32 data is the little-endian floats, contiguous in key order.
        try writeSafetensors([("x", Tensor([1, 2]))], to: path)
        let f32 = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let header = #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        #expect(f32.count == 8 + 56 + 8)
        #expect(String(decoding: f32[8..<64], as: UTF8.self) == header + "  ")
        #expect(Array(f32[64...]) == [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40])
    }

    @Test func readsHandCraftedFileWithPaddingAndUnsortedKeys() throws {
        // As another writer might produce: keys out of order, whitespace, no metadata, escaped name.
        let header = #"{ "z\u00e9" : {"shape": [2], "dtype": "BF16", "data_offsets": [4, 8]}, "#
            + #""a": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]} }"#
        let data: [UInt8] = [0, 0, 0x20, 0x41] + [0x80, 0x3F, 0x00, 0xC0]  // 10.0; bf16 1, -2
        let path = try craft(header: header, data: data)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try SafetensorsFile(path: path)
        #expect(file.names == ["a", "zé"])
        #expect(file.metadata.isEmpty)
        #expect(try file.tensor("a").item == 10)
        #expect(try file.tensor("zé").array == [1, -2])
    }

    // MARK: Malformed input: each case its own error, naming the file and key; nothing crashes.

    private func craft(header: String? = nil, headerBytes: [UInt8]? = nil, length: UInt64? = nil,
                       data: [UInt8] = [], raw: [UInt8]? = nil) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-bad-\(UUID().uuidString).safetensors").path
        var bytes: [UInt8]
        if let raw { bytes = raw } else {
            let h = headerBytes ?? Array(header!.utf8)
            let n = length ?? UInt64(h.count)
            bytes = (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * $0)) } + h + data
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func openError(header: String? = nil, headerBytes: [UInt8]? = nil, length: UInt64? = nil, data: [UInt8] = [],
                           raw: [UInt8]? = nil) throws -> (SafetensorsError?, String) {
        let path = try craft(header: header, headerBytes: headerBytes, length: length, data: data, raw: raw)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try SafetensorsFile(path: path)
            return (nil, path)
        } catch let e as SafetensorsError {
            #expect(e.description.contains(path), "error does not name the file: \(e)")
            return (e, path)
        }
    }

    private func entry(_ dtype: String = "F32", _ shape: String = "[2]", _ offsets: String = "[0,8]") -> String {
        #"{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":\#(offsets)}"#
    }

    /// Integer buffers (old CLIP files' I64 `position_ids`) can be skipped at open instead of failing it;
    /// they are still bounds-checked.
    @Test func skippingNonFloatDTypes() throws {
        let data = [UInt8](repeating: 0, count: 8) + [0, 0, 128, 63, 0, 0, 0, 64]
        let header = #"{"ids": \#(entry("I64", "[1]", "[0,8]")), "w": \#(entry("F32", "[2]", "[8,16]"))}"#
        let path = try craft(header: header, headerBytes: nil, length: nil, data: data, raw: nil)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let f = try SafetensorsFile(path: path, skipping: ["I64"])
        #expect(f.names == ["w"] && f.skipped["ids"]?.dtype == "I64" && f.skipped["ids"]?.shape == [1])
        #expect(try f.tensor("w").array == [1, 2])
        #expect(throws: SafetensorsError.unsupportedDType(path: path, key: "ids", dtype: "I64")) { try SafetensorsFile(path: path) }
        let (e, p) = try openError(header: #"{"ids": \#(entry("I64", "[2]", "[0,8]"))}"#, data: [UInt8](repeating: 0, count: 8))
        #expect(e == .unsupportedDType(path: p, key: "ids", dtype: "I64"))
    }

    @Test func truncatedAndOversizedHeaders() throws {
        var (e, _) = try openError(raw: [])
        #expect(e == .fileTooShort(path: e.path, size: 0))
        (e, _) = try openError(raw: [1, 0, 0, 0, 0])
        #expect(e == .fileTooShort(path: e.path, size: 5))
        (e, _) = try openError(header: "{}", length: 200_000_000)
        #expect(e == .headerTooLarge(path: e.path, length: 200_000_000, limit: 100_000_000))
        (e, _) = try openError(header: "{}", length: UInt64.max)
        #expect(e == .headerTooLarge(path: e.path, length: UInt64.max, limit: 100_000_000))
        (e, _) = try openError(header: "{}", length: 100)
        #expect(e == .headerBeyondFile(path: e.path, length: 100, fileSize: 10))
        let p = "/nonexistent/dir/x.safetensors"
        #expect(throws: SafetensorsError.self) { try SafetensorsFile(path: p) }
    }

    @Test func invalidHeaderJSON() throws {
        func kind(_ header: String) throws -> String {
            let (e, _) = try openError(header: header)
            switch e {
            case .invalidJSON?: return "json"
            case .headerNotObject?: return "notObject"
            case .headerNotUTF8?: return "utf8"
            default: return "\(String(describing: e))"
            }
        }
        #expect(try kind(#"{"a": "#) == "json")
        #expect(try kind(#"{"a": 1,}"#) == "json")
        #expect(try kind(#"{'a': 1}"#) == "json")
        #expect(try kind(#"{"a": 01}"#) == "json")
        #expect(try kind(#"{"a": "\x"}"#) == "json")
        #expect(try kind(#"{"a": "\ud800"}"#) == "json")
        #expect(try kind(#"{} x"#) == "json")
        #expect(try kind("") == "json")
        #expect(try kind(String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)) == "json")
        #expect(try kind("[1, 2]") == "notObject")
        #expect(try kind(#""text""#) == "notObject")
        #expect(try kind("null") == "notObject")
        let (e, _) = try openError(headerBytes: Array("{\"a".utf8) + [0xFF, 0xFE] + Array("\": 1}".utf8))
        #expect(e == .headerNotUTF8(path: e.path))
    }

    @Test func malformedEntries() throws {
        let eight = [UInt8](repeating: 0, count: 8)
        func check(_ header: String, data: [UInt8] = eight, _ expected: (String) -> SafetensorsError,
                   mentions key: String = "t", _ loc: SourceLocation = #_sourceLocation) throws {
            let (e, path) = try openError(header: header, data: data)
            #expect(e == expected(path), sourceLocation: loc)
            #expect(e?.description.contains("'\(key)'") == true, "\(String(describing: e))", sourceLocation: loc)
        }
        try check(#"{"t": 3}"#) { .entryNotObject(path: $0, key: "t") }
        try check(#"{"t": {"shape":[2],"data_offsets":[0,8]}}"#) { .missingField(path: $0, key: "t", field: "dtype") }
        try check(#"{"t": {"dtype":"F32","data_offsets":[0,8]}}"#) { .missingField(path: $0, key: "t", field: "shape") }
        try check(#"{"t": {"dtype":"F32","shape":[2]}}"#) { .missingField(path: $0, key: "t", field: "data_offsets") }
        try check(#"{"t": \#(entry("I64"))}"#) { .unsupportedDType(path: $0, key: "t", dtype: "I64") }
        try check(#"{"t": \#(entry("F32", "[-1,2]"))}"#) { .negativeDimension(path: $0, key: "t", shape: [-1, 2]) }
        try check(#"{"t": \#(entry("F32", "[2]", "[8,0]"))}"#) { .offsetsReversed(path: $0, key: "t", begin: 8, end: 0) }
        try check(#"{"t": \#(entry("F32", "[4]", "[0,16]"))}"#) {
            .offsetsOutOfBounds(path: $0, key: "t", begin: 0, end: 16, bufferSize: 8)
        }
        try check(#"{"t": \#(entry("F32", "[0]", "[-4,-4]"))}"#) {
            .offsetsOutOfBounds(path: $0, key: "t", begin: -4, end: -4, bufferSize: 8)
        }
        try check(#"{"t": \#(entry("F32", "[3]"))}"#) {
            .byteLengthMismatch(path: $0, key: "t", dtype: "F32", shape: [3], expected: 12, actual: 8)
        }
        try check(#"{"t": \#(entry("F16", "[2]"))}"#) {
            .byteLengthMismatch(path: $0, key: "t", dtype: "F16", shape: [2], expected: 4, actual: 8)
        }
        let huge = #"{"t": \#(entry("F32", "[4611686018427387904,4611686018427387904]"))}"#
        try check(huge) {
            .byteLengthMismatch(path: $0, key: "t", dtype: "F32", shape: [1 << 62, 1 << 62], expected: Int.max, actual: 8)
        }
        let twelve = [UInt8](repeating: 0, count: 12)
        try check(#"{"s": \#(entry("F32", "[2]", "[0,8]")), "t": \#(entry("F32", "[2]", "[4,12]"))}"#, data: twelve) {
            .overlappingTensors(path: $0, key: "t", other: "s")
        }
        try check(#"{"t": \#(entry()), "t": \#(entry())}"#) { .duplicateKey(path: $0, key: "t") }
        for (field, value) in [("shape", "[2.5]"), ("shape", "\"2\""), ("shape", "[99999999999999999999]"),
                               ("data_offsets", "[0]"), ("data_offsets", "[0,4,8]"), ("dtype", "4")] {
            let header: String
            switch field {
            case "shape": header = #"{"t": \#(entry("F32", value))}"#
            case "dtype": header = #"{"t": {"dtype":\#(value),"shape":[2],"data_offsets":[0,8]}}"#
            default: header = #"{"t": \#(entry("F32", "[2]", value))}"#
            }
            let (e, _) = try openError(header: header, data: eight)
            guard case .invalidField(_, "t", field, _)? = e else {
                Issue.record("\(field) = \(value): \(String(describing: e))")
                continue
            }
        }
        var (e, _) = try openError(header: #"{"__metadata__": {"k": 1}, "t": \#(entry())}"#, data: eight)
        guard case .invalidMetadata? = e else { Issue.record("\(String(describing: e))"); return }
        (e, _) = try openError(header: #"{"__metadata__": [], "t": \#(entry())}"#, data: eight)
        guard case .invalidMetadata? = e else { Issue.record("\(String(describing: e))"); return }
    }

    @Test func zeroLengthTensorsMayShareAnOffset() throws {
        let header = #"{"a": \#(entry("F32", "[0]", "[4,4]")), "b": \#(entry("F16", "[2,0]", "[4,4]")), "#
            + #""c": \#(entry("F32", "[1]", "[0,4]"))}"#
        let path = try craft(header: header, data: [0, 0, 0x80, 0x3F])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try SafetensorsFile(path: path)
        #expect(try file.tensor("b").shape == [2, 0])
        #expect(try file.tensor("c").array == [1])
        #expect(throws: SafetensorsError.tensorNotFound(path: path, key: "d")) { try file.tensor("d") }
    }

    @Test func randomCorruptionNeverCrashes() throws {
        let dir = ioScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.safetensors").path
        try writeSafetensors(Self.sample, to: good, dtype: .bf16, metadata: ["a": "b"])
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: good)))
        var rng = RNG(seed: 77)
        var opened = 0, rejected = 0
        let path = dir.appendingPathComponent("bad.safetensors").path
        let symbols = [UInt8](#"[]{}",:-0129e."#.utf8)
        for trial in 0..<400 {
            var bytes = original
            switch trial % 4 {
            case 0: bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))          // truncate
            case 1: for _ in 0..<3 { bytes[Int(rng.next() % 200)] = UInt8(truncatingIfNeeded: rng.next()) }  // header noise
            case 2: bytes[Int(rng.next() % 200)] = symbols[Int(rng.next() % UInt64(symbols.count))]
            default: bytes[Int(rng.next() % 8)] = UInt8(truncatingIfNeeded: rng.next())       // length field
            }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                let file = try SafetensorsFile(path: path)
                for n in file.names { _ = try file.tensor(n) }
                opened += 1
            } catch is SafetensorsError {
                rejected += 1
            }
        }
        #expect(opened + rejected == 400)
        #expect(rejected > 100)
    }

    @Test func writerRejectsBadNamesAndLeavesNoPartialFile() throws {
        let dir = ioScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.safetensors").path
        let t = Tensor([1])
        #expect(throws: SafetensorsError.invalidName(path: path, key: "a", reason: "appears twice")) {
            try writeSafetensors([("a", t), ("a", t)], to: path)
        }
        #expect(throws: SafetensorsError.self) { try writeSafetensors([("__metadata__", t)], to: path) }
        #expect(throws: SafetensorsError.self) { try writeSafetensors([("", t)], to: path) }
        let missingDir = dir.appendingPathComponent("no/such/dir/w.safetensors").path
        #expect(throws: SafetensorsError.self) { try writeSafetensors([("a", t)], to: missingDir) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)

        // Overwriting replaces the old file whole.
        try writeSafetensors([("a", Tensor([1, 2, 3]))], to: path)
        try writeSafetensors([("b", Tensor([4]))], to: path, dtype: .bf16)
        let file = try SafetensorsFile(path: path)
        #expect(file.names == ["b"])
        #expect(try file.tensor("b").array == [4])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["w.safetensors"])
        // A file still mapped stays readable after being replaced (rename, not truncate-in-place).
        try writeSafetensors([("c", Tensor([5]))], to: path)
        #expect(try file.tensor("b").array == [4])
    }
}

private extension Optional where Wrapped == SafetensorsError {
    /// The path an error names (for building the expected value).
    var path: String {
        switch self {
        case let .fileTooShort(p, _)?, let .headerTooLarge(p, _, _)?, let .headerBeyondFile(p, _, _)?, let .headerNotUTF8(p)?:
            return p
        default: return ""
        }
    }
}

// MARK: Module state dicts

private final class TinyLinear: Module {
    var weight: Tensor
    var bias: Tensor?

    init(_ inputs: Int, _ outputs: Int, bias: Bool = true, seed: UInt64) {
        weight = randomTensor([outputs, inputs], seed: seed)
        self.bias = bias ? randomTensor([outputs], seed: seed + 1000) : nil
    }
}

private final class TinyBlock: Module {
    var norm: TinyLinear
    var proj: TinyLinear
    var _cache: Tensor?   // not part of the tree

    init(seed: UInt64) {
        norm = TinyLinear(4, 4, bias: false, seed: seed)
        proj = TinyLinear(4, 4, seed: seed + 1)
        _cache = Tensor([1])
    }
}

private final class TinyNet: Module {
    var embed: Tensor
    var blocks: [TinyBlock]
    var head: TinyLinear

    init(seed: UInt64) {
        embed = randomTensor([5, 4], seed: seed)
        blocks = [TinyBlock(seed: seed + 10), TinyBlock(seed: seed + 20)]
        head = TinyLinear(4, 2, seed: seed + 30)
    }
}

@Suite("Module state dicts")
struct StateDictTests {
    static let keys = ["embed", "blocks.0.norm.weight", "blocks.0.proj.weight", "blocks.0.proj.bias",
                       "blocks.1.norm.weight", "blocks.1.proj.weight", "blocks.1.proj.bias", "head.weight", "head.bias"]

    func same(_ a: Module, _ b: Module) -> Bool {
        zip(a.stateDict(), b.stateDict()).allSatisfy { $0.0 == $1.0 && $0.1.array == $1.1.array }
    }

    @Test func saveAndLoadRoundTrip() throws {
        let dir = ioScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("net.safetensors").path
        let net = TinyNet(seed: 1)
        #expect(net.stateDict().map(\.0) == Self.keys)
        try net.save(to: path, metadata: ["step": "7"])
        let file = try SafetensorsFile(path: path)
        #expect(file.names == Self.keys.sorted())
        #expect(file.metadata == ["step": "7"])

        let fresh = TinyNet(seed: 2)
        #expect(!same(net, fresh))
        let parameterObjects = fresh.parameters.map(ObjectIdentifier.init)
        try fresh.loadStateDict(from: file)
        #expect(same(net, fresh))
        #expect(fresh.parameters.map(ObjectIdentifier.init) == parameterObjects)  // values copied in place

        let viaDict = TinyNet(seed: 3)
        try viaDict.loadStateDict(Dictionary(uniqueKeysWithValues: net.stateDict()))
        #expect(same(net, viaDict))
    }

    @Test func halfPrecisionCheckpointLoadsApproximately() throws {
        let dir = ioScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("net16.safetensors").path
        let net = TinyNet(seed: 1)
        try net.save(to: path, dtype: .bf16)
        let fresh = TinyNet(seed: 2)
        try fresh.loadStateDict(from: SafetensorsFile(path: path))
        for ((_, a), (_, b)) in zip(net.stateDict(), fresh.stateDict()) {
            for i in 0..<a.count { #expect(abs(a.pointer[i] - b.pointer[i]) <= 0x1p-8 * abs(a.pointer[i])) }
        }
    }

    @Test func prefixSelectsAndStrips() throws {
        let dir = ioScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("pipe.safetensors").path
        let net = TinyNet(seed: 1)
        let other = TinyNet(seed: 9)
        try writeSafetensors(net.stateDict().map { ("unet.\($0.0)", $0.1) } + other.stateDict().map { ("unet2.\($0.0)", $0.1) }
                             + [("unet", Tensor([1]))], to: path)
        let fresh = TinyNet(seed: 2)
        try fresh.loadStateDict(from: SafetensorsFile(path: path), prefix: "unet")
        #expect(same(net, fresh))
        try fresh.loadStateDict(from: SafetensorsFile(path: path), prefix: "unet2")
        #expect(same(other, fresh))
        try fresh.loadStateDict(Dictionary(uniqueKeysWithValues: net.stateDict().map { ("unet.\($0.0)", $0.1) }), prefix: "unet.")
        #expect(same(net, fresh))
    }

    @Test func strictErrorsNameEveryProblemAndLeaveModuleUntouched() throws {
        let source = TinyNet(seed: 1)
        var dict = Dictionary(uniqueKeysWithValues: source.stateDict())
        dict["blocks.0.proj.bias"] = nil
        dict["blocks.2.proj.weight"] = Tensor(zeros: [4, 4])
        dict["head.weight"] = Tensor(zeros: [3, 4])
        let target = TinyNet(seed: 2)
        let before = target.stateDict().map { ($0.0, $0.1.array) }
        do {
            try target.loadStateDict(dict)
            Issue.record("load should fail")
        } catch let e as StateDictError {
            #expect(e.missing == ["blocks.0.proj.bias"])
            #expect(e.unexpected == ["blocks.2.proj.weight"])
            #expect(e.misshaped.map(\.key) == ["head.weight"])
            #expect(e.misshaped.first?.expected == [2, 4] && e.misshaped.first?.found == [3, 4])
            for key in ["blocks.0.proj.bias", "blocks.2.proj.weight", "head.weight", "[2, 4]", "[3, 4]"] {
                #expect(e.description.contains(key), "\(e)")
            }
        }
        #expect(target.stateDict().map { $0.1.array } == before.map(\.1))

        // Non-strict: missing and unexpected keys are fine, a wrong shape is not.
        #expect(throws: StateDictError.self) { try target.loadStateDict(dict, strict: false) }
        dict["head.weight"] = source.head.weight
        try target.loadStateDict(dict, strict: false)
        #expect(target.head.weight.array == source.head.weight.array)
        #expect(target.blocks[0].proj.bias!.array != source.blocks[0].proj.bias!.array)
    }

    @Test func errorFromFileNamesTheFileAndListsFirstFew() throws {
        let dir = ioScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("other.safetensors").path
        try writeSafetensors((0..<12).map { ("junk.\($0)", Tensor([Float($0)])) }, to: path)
        do {
            try TinyNet(seed: 1).loadStateDict(from: SafetensorsFile(path: path))
            Issue.record("load should fail")
        } catch let e as StateDictError {
            #expect(e.missing.count == 9 && e.unexpected.count == 12)
            #expect(e.description.contains(path))
            #expect(e.description.contains("9 missing keys") && e.description.contains("(4 more)"))
            #expect(e.description.contains("12 unexpected keys") && e.description.contains("(7 more)"))
        }
    }
}
