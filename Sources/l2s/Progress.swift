import Foundation

/// A one-line progress bar on stderr: redrawn in place on a terminal, a line every few seconds otherwise
/// (logs, CI). Never writes to stdout, so command output stays machine-readable.
final class ProgressBar {
    let total: Int
    let label: String
    let isTTY = isatty(2) != 0
    private var lastPrint = Date.distantPast
    private let start = Date()
    /// Progress this run did not do (a resumed job's earlier work, shards found done): the ETA uses
    /// only this run's rate.
    private var notDoneHere: Int

    init(total: Int, label: String, alreadyDone: Int = 0) {
        self.total = max(total, 1)
        self.label = label
        notDoneHere = alreadyDone
    }

    /// Seconds left at this run's rate: `done − notDoneHere` units took `elapsed` seconds. (It used
    /// to take the first update's `done − 1` as the work found done, which is right only for callers
    /// that report one unit at a time: build-dataset's first batch of 16 scenes read as one scene
    /// done, and a 10-minute build showed an ETA of 2:47:46.)
    static func eta(elapsed: Double, done: Int, total: Int, notDoneHere: Int) -> Double {
        let doneHere = done - notDoneHere
        return doneHere > 0 ? elapsed / Double(doneHere) * Double(max(total - done, 0)) : 0
    }

    /// `count` more units were found done (not this run's work).
    func skipped(_ count: Int) { notDoneHere += count }

    func update(_ done: Int, detail: String, force: Bool = false) {
        let now = Date()
        let interval = isTTY ? 0.1 : 10
        guard force || done >= total || now.timeIntervalSince(lastPrint) >= interval else { return }
        lastPrint = now
        let frac = Double(done) / Double(total)
        let width = 24
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let elapsed = now.timeIntervalSince(start)
        let eta = Self.eta(elapsed: elapsed, done: done, total: total, notDoneHere: notDoneHere)
        let line = "\(label) \(bar) \(done)/\(total) \(detail) ETA \(formatDuration(eta))"
        if isTTY {
            FileHandle.standardError.write(("\r\u{1B}[2K" + line).data(using: .utf8)!)
            if done >= total { FileHandle.standardError.write("\n".data(using: .utf8)!) }
        } else {
            FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
        }
    }

    func finish() {
        if isTTY { FileHandle.standardError.write("\n".data(using: .utf8)!) }
    }
}

/// "1:02:03" / "4:05".
func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "--:--" }
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}

/// Prints a message on stderr.
func note(_ message: String) { FileHandle.standardError.write((message + "\n").data(using: .utf8)!) }

/// Set by SIGINT/SIGTERM so long jobs can checkpoint and stop cleanly.
nonisolated(unsafe) var interruptRequested: sig_atomic_t = 0

/// Installs SIGINT/SIGTERM handlers that only set `interruptRequested` (a second Ctrl-C kills).
func installInterruptHandler() {
    let handler: @convention(c) (Int32) -> Void = { sig in
        if interruptRequested != 0 { signal(sig, SIG_DFL); raise(sig) }
        interruptRequested = 1
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
}
