import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Formats

// Reading and writing safetensors checkpoints; the header format, its parser and its errors live in
// Formats/SafetensorsHeader.swift (built with Swift's checks on).


/// A read-only, memory-mapped safetensors file. The header is parsed and validated on open; tensor
/// data is read (and converted to Float32) only when asked for.
public final class SafetensorsFile: @unchecked Sendable {
    /// Longest header accepted (the reference implementation's limit).
    public static var maxHeaderLength: Int { SafetensorsHeader.maxHeaderLength }
    /// Element sizes of the safetensors dtypes that are not read as weights (see `skipping`).
    public static var otherDTypeSizes: [String: Int] { SafetensorsHeader.otherDTypeSizes }

    /// The path the file was opened from.
    public let path: String
    /// Tensor names, sorted.
    public let names: [String]
    /// The `__metadata__` map (empty when the file has none).
    public let metadata: [String: String]
    /// Tensors whose dtype was in the `skipping` set at open: name → (dtype, shape). They are not
    /// in `names` and cannot be read (e.g. the I64 `position_ids` buffer in old CLIP checkpoints).
    public let skipped: [String: (dtype: String, shape: [Int])]
    private let entries: [String: SafetensorsHeader.Entry]
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
            let header = try SafetensorsHeader(UnsafeRawBufferPointer(start: map, count: size), path: path, skipping: skipping)
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
        convert(e, into: t.pointer)
        return t
    }

    /// Reads `name` straight into `destination`'s storage (converting to Float32; no temporary), and
    /// returns the index of its first NaN/±Inf value, or nil. Only the element count must match, so
    /// a [out, in, 1, 1] file tensor can fill an [out, in] parameter.
    public func read(_ name: String, into destination: Tensor) throws -> Int? {
        guard let e = entries[name] else { throw SafetensorsError.tensorNotFound(path: path, key: name) }
        let count = e.shape.reduce(1, *)
        precondition(count == destination.count, "read \(name): \(e.shape) into \(destination.shape)")
        return convert(e, into: destination.pointer)
    }

    @discardableResult
    private func convert(_ e: SafetensorsHeader.Entry, into destination: UnsafeMutablePointer<Float>) -> Int? {
        let source = UnsafeRawPointer(base) + dataStart + e.begin
        let count = e.shape.reduce(1, *)
        switch e.dtype {
        // The destination is usually fresh memory (a model's parameters): backing its pages in one
        // call per block costs less than a trap per page (SD 1.5's folder: 4.3 GB, 1.06 M pages).
        case .f32: return HalfFloat.f32ToFloat(source, destination, count: count, prefault: true)
        case .f16: return HalfFloat.f16ToFloat(source, destination, count: count, prefault: true)
        case .bf16: return HalfFloat.bf16ToFloat(source, destination, count: count, prefault: true)
        }
    }

    /// Every tensor, read and converted to Float32.
    public func tensors() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for n in names { out[n] = try tensor(n) }
        return out
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
