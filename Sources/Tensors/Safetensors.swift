import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The safetensors checkpoint format (https://github.com/huggingface/safetensors):
//
//   [8 bytes: N, little-endian UInt64] [N bytes: UTF-8 JSON header] [byte buffer]
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets are
// relative to the start of the byte buffer) and may hold "__metadata__", a string → string map.
// Reading maps the file read-only and validates the whole header up front, so `tensor(_:)` never
// touches bytes outside the file. Writing follows the reference implementation byte for byte for
// single-dtype files: compact JSON, "__metadata__" first, tensors sorted by name and laid out
// contiguously in that order, the header padded with spaces to a multiple of 8 bytes.

/// Element types this package reads and writes in safetensors files (always Float32 in memory).
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"

    /// Bytes per element.
    public var byteSize: Int { self == .f32 ? 4 : 2 }
}

/// What went wrong reading or writing a safetensors file. Every case names the file, and where it
/// concerns one tensor, its key.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case fileTooShort(path: String, size: Int)
    case headerTooLarge(path: String, length: UInt64, limit: Int)
    case headerBeyondFile(path: String, length: UInt64, fileSize: Int)
    case headerNotUTF8(path: String)
    case invalidJSON(path: String, offset: Int, reason: String)
    case headerNotObject(path: String)
    case duplicateKey(path: String, key: String)
    case entryNotObject(path: String, key: String)
    case missingField(path: String, key: String, field: String)
    case invalidField(path: String, key: String, field: String, reason: String)
    case unsupportedDType(path: String, key: String, dtype: String)
    case negativeDimension(path: String, key: String, shape: [Int])
    case offsetsReversed(path: String, key: String, begin: Int, end: Int)
    case offsetsOutOfBounds(path: String, key: String, begin: Int, end: Int, bufferSize: Int)
    case byteLengthMismatch(path: String, key: String, dtype: String, shape: [Int], expected: Int, actual: Int)
    case overlappingTensors(path: String, key: String, other: String)
    case invalidMetadata(path: String, reason: String)
    case tensorNotFound(path: String, key: String)
    case invalidName(path: String, key: String, reason: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "cannot open safetensors file \(path): \(reason)"
        case let .fileTooShort(path, size):
            return "\(path) is not a safetensors file: it is \(size) bytes long, shorter than the 8-byte header length"
        case let .headerTooLarge(path, length, limit):
            return "\(path): header length \(length) exceeds the \(limit)-byte limit (corrupt file or not safetensors)"
        case let .headerBeyondFile(path, length, fileSize):
            return "\(path): header length \(length) runs past the end of the \(fileSize)-byte file (truncated download?)"
        case let .headerNotUTF8(path):
            return "\(path): header is not valid UTF-8"
        case let .invalidJSON(path, offset, reason):
            return "\(path): header is not valid JSON at header byte \(offset): \(reason)"
        case let .headerNotObject(path):
            return "\(path): header JSON must be an object mapping tensor names to entries"
        case let .duplicateKey(path, key):
            return "\(path): header lists key '\(key)' more than once"
        case let .entryNotObject(path, key):
            return "\(path): header entry for '\(key)' is not an object"
        case let .missingField(path, key, field):
            return "\(path): tensor '\(key)' has no '\(field)' field"
        case let .invalidField(path, key, field, reason):
            return "\(path): tensor '\(key)' has an invalid '\(field)': \(reason)"
        case let .unsupportedDType(path, key, dtype):
            return "\(path): tensor '\(key)' has dtype '\(dtype)', which is not supported "
                + "(supported: \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))"
        case let .negativeDimension(path, key, shape):
            return "\(path): tensor '\(key)' has a negative dimension in shape \(shape)"
        case let .offsetsReversed(path, key, begin, end):
            return "\(path): tensor '\(key)' has data_offsets [\(begin), \(end)] with begin after end"
        case let .offsetsOutOfBounds(path, key, begin, end, bufferSize):
            return "\(path): tensor '\(key)' has data_offsets [\(begin), \(end)] outside the \(bufferSize)-byte data buffer (truncated file?)"
        case let .byteLengthMismatch(path, key, dtype, shape, expected, actual):
            return "\(path): tensor '\(key)' (\(dtype), shape \(shape)) needs \(expected) bytes but data_offsets span \(actual)"
        case let .overlappingTensors(path, key, other):
            return "\(path): tensors '\(other)' and '\(key)' have overlapping byte ranges"
        case let .invalidMetadata(path, reason):
            return "\(path): invalid __metadata__: \(reason)"
        case let .tensorNotFound(path, key):
            return "\(path) has no tensor named '\(key)'"
        case let .invalidName(path, key, reason):
            return "cannot write \(path): tensor name '\(key)' \(reason)"
        case let .writeFailed(path, reason):
            return "cannot write \(path): \(reason)"
        }
    }
}

/// A read-only, memory-mapped safetensors file. The header is parsed and validated on open; tensor
/// data is read (and converted to Float32) only when asked for.
public final class SafetensorsFile: @unchecked Sendable {
    /// Longest header accepted (the reference implementation's limit).
    public static let maxHeaderLength = 100_000_000

    struct Entry {
        let dtype: SafetensorsDType
        let shape: [Int]
        let begin: Int
        let end: Int
        /// The file's dtype name when it is one of the skipped (non-float) types; such entries are
        /// validated but not readable.
        var skippedDType: String? = nil
    }

    /// Element sizes of the safetensors dtypes that are not read as weights (see `skipping`).
    public static let otherDTypeSizes: [String: Int] = ["F64": 8, "I64": 8, "U64": 8, "I32": 4, "U32": 4, "I16": 2,
                                                        "U16": 2, "I8": 1, "U8": 1, "BOOL": 1]

    /// The path the file was opened from.
    public let path: String
    /// Tensor names, sorted.
    public let names: [String]
    /// The `__metadata__` map (empty when the file has none).
    public let metadata: [String: String]
    /// Tensors whose dtype was in the `skipping` set at open: name → (dtype, shape). They are not
    /// in `names` and cannot be read (e.g. the I64 `position_ids` buffer in old CLIP checkpoints).
    public let skipped: [String: (dtype: String, shape: [Int])]
    private let entries: [String: Entry]
    private let base: UnsafeMutableRawPointer
    private let mappedLength: Int
    private let dataStart: Int

    /// Maps `path` and validates its header; throws `SafetensorsError` on any malformation.
    /// Tensors whose dtype is in `skipping` (names from `otherDTypeSizes`, e.g. "I64") are validated
    /// and listed in `skipped` instead of failing the open with `unsupportedDType`.
    public init(path: String, skipping: Set<String> = []) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SafetensorsError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SafetensorsError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw SafetensorsError.cannotOpen(path: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        guard size >= 8 else { throw SafetensorsError.fileTooShort(path: path, size: size) }
        guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw SafetensorsError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        do {
            let header = try SafetensorsFile.parseHeader(UnsafeRawPointer(map), size: size, path: path, skipping: skipping)
            base = map
            mappedLength = size
            dataStart = header.dataStart
            entries = header.entries.filter { $0.value.skippedDType == nil }
            skipped = header.entries.compactMapValues { e in e.skippedDType.map { ($0, e.shape) } }
            metadata = header.metadata
            names = entries.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        } catch {
            munmap(map, size)
            throw error
        }
    }

    deinit { munmap(base, mappedLength) }

    /// Whether the file holds a tensor named `name`.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// The stored dtype ("F32", "F16" or "BF16") and shape of `name`, or nil when absent.
    public func info(_ name: String) -> (dtype: String, shape: [Int])? {
        entries[name].map { ($0.dtype.rawValue, $0.shape) }
    }

    /// Reads `name` into a new Float32 tensor (converting from F16/BF16 as needed).
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw SafetensorsError.tensorNotFound(path: path, key: name) }
        let t = Tensor(uninitialized: e.shape)
        let source = UnsafeRawPointer(base) + dataStart + e.begin
        switch e.dtype {
        case .f32: HalfFloat.f32ToFloat(source, t.pointer, count: t.count)
        case .f16: HalfFloat.f16ToFloat(source, t.pointer, count: t.count)
        case .bf16: HalfFloat.bf16ToFloat(source, t.pointer, count: t.count)
        }
        return t
    }

    /// Every tensor, read and converted to Float32.
    public func tensors() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for n in names { out[n] = try tensor(n) }
        return out
    }

    // MARK: Header validation

    private static func parseHeader(_ p: UnsafeRawPointer, size: Int, path: String, skipping: Set<String>) throws
        -> (entries: [String: Entry], metadata: [String: String], dataStart: Int) {
        let n = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(maxHeaderLength) else {
            throw SafetensorsError.headerTooLarge(path: path, length: n, limit: maxHeaderLength)
        }
        guard n <= UInt64(size - 8) else { throw SafetensorsError.headerBeyondFile(path: path, length: n, fileSize: size) }
        let headerLength = Int(n)
        let bytes = UnsafeBufferPointer(start: (p + 8).assumingMemoryBound(to: UInt8.self), count: headerLength)
        guard isValidUTF8(bytes) else { throw SafetensorsError.headerNotUTF8(path: path) }
        let root: JSONValue
        do {
            var parser = HeaderJSONParser(bytes)
            root = try parser.parseDocument()
        } catch let e as HeaderJSONParser.Failure {
            throw SafetensorsError.invalidJSON(path: path, offset: e.offset, reason: e.reason)
        }
        guard case let .object(members) = root else { throw SafetensorsError.headerNotObject(path: path) }

        let dataStart = 8 + headerLength
        let bufferSize = size - dataStart
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        var seen = Set<String>()
        for (key, value) in members {
            guard seen.insert(key).inserted else { throw SafetensorsError.duplicateKey(path: path, key: key) }
            if key == "__metadata__" {
                guard case let .object(pairs) = value else {
                    throw SafetensorsError.invalidMetadata(path: path, reason: "it must be an object of strings")
                }
                for (k, v) in pairs {
                    guard case let .string(s) = v else {
                        throw SafetensorsError.invalidMetadata(path: path, reason: "value of '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            entries[key] = try validateEntry(key, value, bufferSize: bufferSize, path: path, skipping: skipping)
        }

        // No two non-empty tensors may share bytes.
        let ordered = entries.filter { $0.value.end > $0.value.begin }
            .sorted { ($0.value.begin, $0.key) < ($1.value.begin, $1.key) }
        if ordered.count > 1 {
            for i in 1..<ordered.count where ordered[i].value.begin < ordered[i - 1].value.end {
                throw SafetensorsError.overlappingTensors(path: path, key: ordered[i].key, other: ordered[i - 1].key)
            }
        }
        return (entries, metadata, dataStart)
    }

    private static func validateEntry(_ key: String, _ value: JSONValue, bufferSize: Int, path: String,
                                      skipping: Set<String>) throws -> Entry {
        guard case let .object(fields) = value else { throw SafetensorsError.entryNotObject(path: path, key: key) }
        func field(_ name: String) throws -> JSONValue {
            guard let v = fields.last(where: { $0.0 == name })?.1 else {
                throw SafetensorsError.missingField(path: path, key: key, field: name)
            }
            return v
        }
        func integers(_ name: String, _ v: JSONValue) throws -> [Int] {
            guard case let .array(items) = v else {
                throw SafetensorsError.invalidField(path: path, key: key, field: name, reason: "expected an array of integers")
            }
            return try items.map {
                guard case let .number(text) = $0, let i = Int(text) else {
                    throw SafetensorsError.invalidField(path: path, key: key, field: name,
                                                        reason: "expected an array of 64-bit integers, found \($0.summary)")
                }
                return i
            }
        }

        guard case let .string(dtypeName) = try field("dtype") else {
            throw SafetensorsError.invalidField(path: path, key: key, field: "dtype", reason: "expected a string")
        }
        let shape = try integers("shape", try field("shape"))
        let offsets = try integers("data_offsets", try field("data_offsets"))
        let dtype = SafetensorsDType(rawValue: dtypeName) ?? .f32
        let otherSize = skipping.contains(dtypeName) ? otherDTypeSizes[dtypeName] : nil
        guard SafetensorsDType(rawValue: dtypeName) != nil || otherSize != nil else {
            throw SafetensorsError.unsupportedDType(path: path, key: key, dtype: dtypeName)
        }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw SafetensorsError.negativeDimension(path: path, key: key, shape: shape) }
        guard offsets.count == 2 else {
            throw SafetensorsError.invalidField(path: path, key: key, field: "data_offsets",
                                                reason: "expected [begin, end], found \(offsets.count) numbers")
        }
        let begin = offsets[0], end = offsets[1]
        guard begin <= end else { throw SafetensorsError.offsetsReversed(path: path, key: key, begin: begin, end: end) }
        guard begin >= 0, end <= bufferSize else {
            throw SafetensorsError.offsetsOutOfBounds(path: path, key: key, begin: begin, end: end, bufferSize: bufferSize)
        }
        var expected = otherSize ?? dtype.byteSize
        var overflow = false
        for d in shape where !overflow {
            (expected, overflow) = expected.multipliedReportingOverflow(by: d)
        }
        guard !overflow, expected == end - begin else {
            throw SafetensorsError.byteLengthMismatch(path: path, key: key, dtype: dtypeName, shape: shape,
                                                      expected: overflow ? Int.max : expected, actual: end - begin)
        }
        return Entry(dtype: dtype, shape: shape, begin: begin, end: end, skippedDType: otherSize == nil ? nil : dtypeName)
    }
}

// MARK: Writing

/// Writes `tensors` as a safetensors file at `path`, converting to `dtype` on the way (`dtypes`
/// overrides it per tensor name, e.g. fp16 maps beside fp32 labels).
///
/// The file is written to a temporary sibling, flushed to disk and renamed over `path`, so a crash
/// leaves either the old file or the complete new one. Names must be unique, non-empty and not
/// `__metadata__`. The layout matches the reference (Python/Rust) writer: keys sorted, data
/// contiguous in key order, header padded with spaces to a multiple of 8 bytes.
public func writeSafetensors(_ tensors: [(String, Tensor)], to path: String, dtype: SafetensorsDType = .f32,
                             dtypes: [String: SafetensorsDType] = [:], metadata: [String: String] = [:]) throws {
    var seen = Set<String>()
    for (name, _) in tensors {
        if name.isEmpty { throw SafetensorsError.invalidName(path: path, key: name, reason: "is empty") }
        if name == "__metadata__" {
            throw SafetensorsError.invalidName(path: path, key: name, reason: "is reserved for the metadata map")
        }
        if !seen.insert(name).inserted { throw SafetensorsError.invalidName(path: path, key: name, reason: "appears twice") }
    }
    let sorted = tensors.sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }

    var json = "{"
    var first = true
    if !metadata.isEmpty {
        json += "\"__metadata__\":{"
        let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        json += keys.map { "\(jsonQuoted($0)):\(jsonQuoted(metadata[$0]!))" }.joined(separator: ",")
        json += "}"
        first = false
    }
    var offset = 0
    for (name, t) in sorted {
        let dtype = dtypes[name] ?? dtype
        let length = t.count * dtype.byteSize
        if !first { json += "," }
        first = false
        json += "\(jsonQuoted(name)):{\"dtype\":\"\(dtype.rawValue)\",\"shape\":["
            + t.shape.map(String.init).joined(separator: ",")
            + "],\"data_offsets\":[\(offset),\(offset + length)]}"
        offset += length
    }
    json += "}"
    var header = Array(json.utf8)
    header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))

    let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
        throw SafetensorsError.writeFailed(path: path, reason: "cannot create \(temporary): \(String(cString: strerror(errno)))")
    }
    var closed = false
    do {
        defer { if !closed { close(fd) } }
        var length = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &length) { try writeAll(fd, $0.baseAddress!, 8, path: path) }
        try header.withUnsafeBytes { try writeAll(fd, $0.baseAddress!, header.count, path: path) }
        let chunk = 1 << 20
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: chunk * 2, alignment: 64)
        defer { scratch.deallocate() }
        for (name, t) in sorted {
            let dtype = dtypes[name] ?? dtype
            switch dtype {
            case .f32:
                #if _endian(little)
                try writeAll(fd, UnsafeRawPointer(t.pointer), t.count * 4, path: path)
                #else
                fatalError("big-endian hosts are not supported")
                #endif
            case .f16, .bf16:
                var start = 0
                while start < t.count {
                    let n = min(chunk, t.count - start)
                    if dtype == .f16 { HalfFloat.floatToF16(t.pointer + start, scratch, count: n) }
                    else { HalfFloat.floatToBF16(t.pointer + start, scratch, count: n) }
                    try writeAll(fd, scratch, n * 2, path: path)
                    start += n
                }
            }
        }
        guard fsync(fd) == 0 else {
            throw SafetensorsError.writeFailed(path: path, reason: "fsync failed: \(String(cString: strerror(errno)))")
        }
        closed = true
        guard close(fd) == 0 else {
            throw SafetensorsError.writeFailed(path: path, reason: "close failed: \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, path) == 0 else {
            throw SafetensorsError.writeFailed(path: path, reason: "rename from \(temporary) failed: \(String(cString: strerror(errno)))")
        }
    } catch {
        unlink(temporary)
        throw error
    }
    // Make the rename itself durable (best effort).
    let directory = (path as NSString).deletingLastPathComponent
    let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}

private func writeAll(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int, path: String) throws {
    var done = 0
    while done < count {
        let n = write(fd, bytes + done, min(count - done, 1 << 30))
        if n < 0 {
            if errno == EINTR { continue }
            throw SafetensorsError.writeFailed(path: path, reason: String(cString: strerror(errno)))
        }
        done += n
    }
}

/// Whether `bytes` is well-formed UTF-8 (no overlongs, surrogates or truncated sequences).
func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    var iterator = bytes.makeIterator()
    var decoder = UTF8()
    while true {
        switch decoder.decode(&iterator) {
        case .scalarValue: continue
        case .emptyInput: return true
        case .error: return false
        }
    }
}

/// A JSON string literal escaped the way serde_json writes it (UTF-8 kept, control characters escaped).
func jsonQuoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}

// MARK: Header JSON

/// A parsed JSON value; object members keep file order and duplicates (the caller rejects them);
/// numbers keep their text so integers are read exactly.
indirect enum JSONValue {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    var summary: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case let .string(s): return "string \"\(s.prefix(40))\""
        case let .number(n): return n
        case let .bool(b): return "\(b)"
        case .null: return "null"
        }
    }
}

/// A small strict JSON parser (RFC 8259) over the header bytes, with a nesting limit so hostile
/// input cannot exhaust the stack.
struct HeaderJSONParser {
    struct Failure: Error {
        let offset: Int
        let reason: String
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var i = 0
    private var depth = 0
    private static let maxDepth = 64

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func parseDocument() throws -> JSONValue {
        skipSpace()
        let v = try parseValue()
        skipSpace()
        guard i == bytes.count else { throw fail("unexpected trailing characters after the top-level value") }
        return v
    }

    private func fail(_ reason: String) -> Failure { Failure(offset: i, reason: reason) }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func expectLiteral(_ word: StaticString, _ value: JSONValue) throws -> JSONValue {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw fail("unexpected end of header") }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw fail("invalid literal") }
        i += n
        return value
    }

    private mutating func parseValue() throws -> JSONValue {
        guard i < bytes.count else { throw fail("unexpected end of header") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try expectLiteral("true", .bool(true))
        case UInt8(ascii: "f"): return try expectLiteral("false", .bool(false))
        case UInt8(ascii: "n"): return try expectLiteral("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected character '\(Character(Unicode.Scalar(bytes[i])))'")
        }
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= HeaderJSONParser.maxDepth else { throw fail("nesting deeper than \(HeaderJSONParser.maxDepth) levels") }
    }

    private mutating func parseObject() throws -> JSONValue {
        try enter()
        defer { depth -= 1 }
        i += 1
        var members: [(String, JSONValue)] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try parseString()
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':' after key") }
            i += 1
            skipSpace()
            members.append((key, try parseValue()))
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of header inside an object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw fail("expected ',' or '}' in an object")
        }
    }

    private mutating func parseArray() throws -> JSONValue {
        try enter()
        defer { depth -= 1 }
        i += 1
        var items: [JSONValue] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try parseValue())
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of header inside an array") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("expected ',' or ']' in an array")
        }
    }

    private mutating func parseNumber() throws -> JSONValue {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        func digits(_ p: inout Int, _ b: UnsafeBufferPointer<UInt8>) -> Int {
            let s = p
            while p < b.count, b[p] >= 0x30, b[p] <= 0x39 { p += 1 }
            return p - s
        }
        guard i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 else { throw fail("expected a digit") }
        if bytes[i] == 0x30 { i += 1 } else { _ = digits(&i, bytes) }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits(&i, bytes) > 0 else { throw fail("expected a digit after '.'") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&i, bytes) > 0 else { throw fail("expected a digit in the exponent") }
        }
        return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
    }

    private mutating func parseString() throws -> String {
        i += 1  // opening quote
        var scalars = String.UnicodeScalarView()
        var runStart = i
        func flush(_ end: Int) {
            if end > runStart {
                scalars.append(contentsOf: String(decoding: UnsafeBufferPointer(rebasing: bytes[runStart..<end]),
                                                  as: UTF8.self).unicodeScalars)
            }
        }
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                flush(i)
                i += 1
                return String(scalars)
            }
            if c < 0x20 { throw fail("unescaped control character in a string") }
            if c != UInt8(ascii: "\\") { i += 1; continue }
            flush(i)
            i += 1
            guard i < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code) {
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw fail("unpaired surrogate in \\u escape")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("invalid low surrogate in \\u escape") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                scalars.append(scalar)
            default:
                throw fail("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
            }
            runStart = i
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid hex digit in \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }
}
