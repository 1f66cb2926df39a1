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

/// The validated header of a safetensors file (parsed with Swift's bounds and overflow checks on:
/// this target is not built -Ounchecked).
public struct SafetensorsHeader: Sendable {
    /// Longest header accepted (the reference implementation's limit).
    public static let maxHeaderLength = 100_000_000

    /// One tensor's validated entry: dtype, shape and byte range within the data buffer.
    public struct Entry: Sendable {
        public let dtype: SafetensorsDType
        public let shape: [Int]
        public let begin: Int
        public let end: Int
        /// The file's dtype name when it is one of the skipped (non-float) types; such entries are
        /// validated but not readable.
        public var skippedDType: String? = nil
    }

    /// Element sizes of the safetensors dtypes that are not read as weights (see `skipping`).
    public static let otherDTypeSizes: [String: Int] = ["F64": 8, "I64": 8, "U64": 8, "I32": 4, "U32": 4, "I16": 2,
                                                        "U16": 2, "I8": 1, "U8": 1, "BOOL": 1]

    /// Every tensor entry by name (skipped dtypes included, with `skippedDType` set).
    public let entries: [String: Entry]
    /// The `__metadata__` map (empty when the file has none).
    public let metadata: [String: String]
    /// Byte offset of the data buffer from the start of the file.
    public let dataStart: Int

    /// Parses and validates the header of the `file.count`-byte safetensors file `file` (named `path`
    /// in errors): every entry's dtype, shape and byte range, no overlaps, string metadata.
    public init(_ file: UnsafeRawBufferPointer, path: String, skipping: Set<String> = []) throws {
        let size = file.count
        guard size >= 8, let p = file.baseAddress else { throw SafetensorsError.fileTooShort(path: path, size: size) }
        let n = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(Self.maxHeaderLength) else {
            throw SafetensorsError.headerTooLarge(path: path, length: n, limit: Self.maxHeaderLength)
        }
        guard n <= UInt64(size - 8) else { throw SafetensorsError.headerBeyondFile(path: path, length: n, fileSize: size) }
        let headerLength = Int(n)
        let bytes = UnsafeBufferPointer(start: (p + 8).assumingMemoryBound(to: UInt8.self), count: headerLength)
        guard TextLines.firstInvalidUTF8(bytes) == nil else { throw SafetensorsError.headerNotUTF8(path: path) }
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
            entries[key] = try Self.validateEntry(key, value, bufferSize: bufferSize, path: path, skipping: skipping)
        }

        // No two non-empty tensors may share bytes.
        let ordered = entries.filter { $0.value.end > $0.value.begin }
            .sorted { ($0.value.begin, $0.key) < ($1.value.begin, $1.key) }
        if ordered.count > 1 {
            for i in 1..<ordered.count where ordered[i].value.begin < ordered[i - 1].value.end {
                throw SafetensorsError.overlappingTensors(path: path, key: ordered[i].key, other: ordered[i - 1].key)
            }
        }
        self.entries = entries
        self.metadata = metadata
        self.dataStart = dataStart
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


/// A JSON string literal escaped the way serde_json writes it (UTF-8 kept, control characters escaped).
public func jsonQuoted(_ s: String) -> String {
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
