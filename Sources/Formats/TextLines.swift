import Foundation

// The one line splitter for every text file the program reads (prompt lists, annotations, eval
// records, tokenizer merges). It works on bytes: LF, CRLF and a lone CR each end a line (splitting a
// Swift String on "\n" kept "\r\n", a single Character, inside one line, so a CRLF file read as one
// line), a UTF-8 byte-order mark is dropped, and invalid UTF-8 is reported with its line and byte
// offset instead of rejecting the file with no reason.

/// Why a text file could not be read.
public enum TextFileError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    /// `line` is 1-based; `column` is the 1-based byte within the line, `offset` the 0-based byte in the file.
    case invalidUTF8(path: String, line: Int, column: Int, offset: Int)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "cannot read \(path): \(reason)"
        case let .invalidUTF8(path, line, column, offset):
            return "\(path):\(line): invalid UTF-8 at byte \(column) of the line (byte offset \(offset) in the file)"
        }
    }
}

public enum TextLines {
    /// The lines of the file at `path` (terminators removed; empty lines kept so numbering matches the file).
    public static func read(path: String) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TextFileError.unreadable(path: path, reason: "no such file")
        }
        guard !isDir.boolValue else { throw TextFileError.unreadable(path: path, reason: "it is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TextFileError.unreadable(path: path, reason: "permission denied or not a regular file")
        }
        return try split(data, path: path)
    }

    /// Splits `data` on LF, CRLF or CR; a final terminator does not start an extra empty line.
    public static func split(_ data: Data, path: String) throws -> [String] {
        let bytes = [UInt8](data)
        try checkUTF8(bytes, path: path)
        var lines: [String] = []
        forEachLine(bytes) { lines.append(String(decoding: bytes[$0], as: UTF8.self)) }
        return lines
    }

    /// Throws `invalidUTF8` naming the line and byte of the first malformed sequence in `data` (for
    /// files read whole by another parser, e.g. JSON); lines are counted as `split` counts them.
    public static func checkUTF8(_ data: Data, path: String) throws {
        try checkUTF8([UInt8](data), path: path)
    }

    static func checkUTF8(_ bytes: [UInt8], path: String) throws {
        // Line terminators are ASCII, so the first bad byte of the file is the first of its line.
        guard let bad = firstInvalidUTF8(bytes) else { return }
        var line = 0, lineStart = 0
        forEachLine(bytes) { range in
            if range.lowerBound <= bad { line += 1; lineStart = range.lowerBound }
        }
        throw TextFileError.invalidUTF8(path: path, line: line, column: bad - lineStart + 1, offset: bad)
    }

    /// Calls `body` with the byte range of each line (terminators excluded; a leading UTF-8 byte-order
    /// mark skipped; a final terminator does not start an extra empty line).
    static func forEachLine(_ bytes: [UInt8], _ body: (Range<Int>) -> Void) {
        var start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var i = start
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x0A || b == 0x0D {
                body(start..<i)
                i += (b == 0x0D && i + 1 < bytes.count && bytes[i + 1] == 0x0A) ? 2 : 1
                start = i
            } else {
                i += 1
            }
        }
        if start < bytes.count { body(start..<bytes.count) }
    }

    /// Index of the first byte that does not begin a well-formed UTF-8 sequence (RFC 3629: no overlong
    /// forms, no surrogates, nothing above U+10FFFF), or nil.
    public static func firstInvalidUTF8<C: RandomAccessCollection>(_ s: C) -> Int? where C.Element == UInt8, C.Index == Int {
        var i = s.startIndex
        while i < s.endIndex {
            let b = s[i]
            if b < 0x80 { i += 1; continue }
            let (count, low, high): (Int, UInt8, UInt8)
            switch b {
            case 0xC2...0xDF: (count, low, high) = (1, 0x80, 0xBF)
            case 0xE0: (count, low, high) = (2, 0xA0, 0xBF)
            case 0xE1...0xEC, 0xEE...0xEF: (count, low, high) = (2, 0x80, 0xBF)
            case 0xED: (count, low, high) = (2, 0x80, 0x9F)
            case 0xF0: (count, low, high) = (3, 0x90, 0xBF)
            case 0xF1...0xF3: (count, low, high) = (3, 0x80, 0xBF)
            case 0xF4: (count, low, high) = (3, 0x80, 0x8F)
            default: return i
            }
            guard i + count < s.endIndex, (low...high).contains(s[i + 1]) else { return i }
            var k = 2
            while k <= count {
                guard (0x80...0xBF).contains(s[i + k]) else { return i }
                k += 1
            }
            i += count + 1
        }
        return nil
    }
}
