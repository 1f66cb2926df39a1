import Foundation

// Output files (PNG, sidecar, trace, config) are written so that a failure (full disk, a directory in
// the way, a read-only folder) leaves the previous files byte-for-byte intact: every file of a group
// goes to a temporary sibling first (same directory, so the rename cannot cross file systems), is
// flushed to disk, and only when all of them are complete are they renamed into place. If a rename
// fails part-way, the files already renamed are put back from hard-link backups of the old ones.

/// Why a group of output files could not be written: one line naming the file and the reason.
public struct OutputWriteError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
    public var description: String { "cannot write \(path): \(reason)" }
}

/// Test hook: when set, a write to a temporary file whose final path this returns true for fails with
/// ENOSPC after half of its bytes, as a full disk would.
nonisolated(unsafe) public var outputWriteFailureInjection: ((String) -> Bool)?

/// Writes every `(path, data)` so that either all of them are replaced or none is (see above);
/// with `createDirectories`, missing folders are made first. Throws `OutputWriteError`.
public func writeFilesAtomically(_ files: [(path: String, data: Data)], createDirectories: Bool = false) throws {
    let fm = FileManager.default
    var temporaries: [String] = []
    func cleanUp() { for t in temporaries { unlink(t) } }
    for (path, data) in files {
        let dir = (path as NSString).deletingLastPathComponent
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            cleanUp()
            throw OutputWriteError(path: path, reason: "it is a directory")
        }
        if createDirectories, !dir.isEmpty {
            do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                cleanUp()
                throw OutputWriteError(path: path, reason: "cannot create the folder \(dir) (\(errnoText(fromNSError: error)))")
            }
        }
        let temporary = siblingName(path, kind: "tmp")
        do { try writeFully(temporary, data, failAfterHalf: outputWriteFailureInjection?(path) ?? false) } catch let reason as ErrnoReason {
            unlink(temporary)
            cleanUp()
            throw OutputWriteError(path: path, reason: reason.text)
        }
        temporaries.append(temporary)
    }
    // All complete: rename into place, keeping backups of what was there until every rename succeeded.
    var done: [(path: String, backup: String?)] = []
    for (i, (path, _)) in files.enumerated() {
        var backup: String? = nil
        if fm.fileExists(atPath: path) {
            let b = siblingName(path, kind: "bak")
            if link(path, b) == 0 { backup = b }
        }
        if rename(temporaries[i], path) != 0 {
            let reason = String(cString: strerror(errno))
            if let backup { unlink(backup) }
            for (p, b) in done.reversed() {
                if let b { rename(b, p) } else { unlink(p) }
            }
            for t in temporaries[i...] { unlink(t) }
            throw OutputWriteError(path: path, reason: reason)
        }
        done.append((path, backup))
    }
    for (_, b) in done { if let b { unlink(b) } }
    for dir in Set(files.map { ($0.path as NSString).deletingLastPathComponent }) {
        let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}

/// `dir/.name.<kind>-<pid>-<random>`: hidden, unique, in the target's directory.
private func siblingName(_ path: String, kind: String) -> String {
    let dir = (path as NSString).deletingLastPathComponent, name = (path as NSString).lastPathComponent
    return (dir.isEmpty ? "" : dir + "/") + ".\(name).\(kind)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
}

private struct ErrnoReason: Error { let text: String }

private func writeFully(_ path: String, _ data: Data, failAfterHalf: Bool) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw ErrnoReason(text: String(cString: strerror(errno))) }
    defer { close(fd) }
    let limit = failAfterHalf ? data.count / 2 : data.count
    try data.withUnsafeBytes { raw in
        var offset = 0
        while offset < limit {
            let n = write(fd, raw.baseAddress! + offset, limit - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw ErrnoReason(text: String(cString: strerror(errno)))
            }
            offset += n
        }
    }
    if failAfterHalf { throw ErrnoReason(text: String(cString: strerror(ENOSPC))) }
    guard fsync(fd) == 0 else { throw ErrnoReason(text: String(cString: strerror(errno))) }
}

private func errnoText(fromNSError error: Error) -> String {
    let ns = error as NSError
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    return ns.localizedDescription
}
