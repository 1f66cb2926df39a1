// Drives the real `l2s` binary inside a private tmux server (tui-notes §2.13): send keys, resize,
// read the screen with capture-pane, and read the raw bytes the program wrote (pipe-pane) to check
// that the terminal was restored. Every wait polls with a generous deadline: the machine may be slow.

import Foundation
import Testing

/// Paths of the built products and the package.
enum Products {
    /// The directory holding the test bundle and the built `l2s` (the bundle's parent).
    static var directory: URL {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        // …/debug/LearnToSteerPackageTests.xctest (an executable on Linux) → …/debug
        var dir = exe.deletingLastPathComponent()
        if dir.lastPathComponent.hasSuffix(".xctest") { dir = dir.deletingLastPathComponent() }
        return dir
    }
    static var l2s: String { directory.appendingPathComponent("l2s").path }
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
    static var tmux: String? {
        for p in ["/usr/bin/tmux", "/usr/local/bin/tmux", "/bin/tmux"] where FileManager.default.isExecutableFile(atPath: p) { return p }
        return nil
    }
}

/// Runs a program, returning (exit status, stdout + stderr). posix_spawn + a blocking waitpid, and
/// output through a temporary file, not a pipe: a tmux client forks a server that inherits its
/// descriptors (a pipe would never reach EOF), and Foundation's Process did not reap such clients
/// reliably here.
@discardableResult
func shell(_ path: String, _ args: [String], stdinPath: String = "/dev/null") -> (Int32, String) {
    let outPath = NSTemporaryDirectory() + "l2s-shell-\(getpid())-\(UUID().uuidString)"
    defer { unlink(outPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
    guard rc == 0 else { return (-1, "posix_spawn \(path): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let exited = status & 0x7f == 0
    return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), text)
}

/// One tmux server with one window running `l2s`.
final class TmuxSession {
    let tmux: String
    let socket: String
    let dir: String
    let logPath: String
    let rawPath: String
    private let goPath: String
    private var serverPID: Int32 = 0

    /// Starts `l2s args` in a `width`×`height` window with `env` (NO_COLOR removed unless given).
    /// The program starts only once output capture is on.
    init(tmux: String, name: String, width: Int, height: Int, args: [String], env: [String: String] = [:]) {
        self.tmux = tmux
        socket = "l2s-test-\(getpid())-\(name)"
        dir = NSTemporaryDirectory() + "l2s-e2e-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        logPath = dir + "/l2s.log"
        rawPath = dir + "/raw.out"
        goPath = dir + "/go"
        var vars = ["LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"]
        vars.merge(env) { $1 }
        let envArgs = vars.map { "\($0.key)=\(TmuxSession.quote($0.value))" }.joined(separator: " ")
        let unset = env["NO_COLOR"] == nil ? "-u NO_COLOR " : ""
        let program = ([Products.l2s] + args + ["--log", logPath]).map(TmuxSession.quote).joined(separator: " ")
        // The shell traps INT (a handler, so the program still gets the default disposition): Ctrl-C
        // reaches the whole foreground group, and the shell must live to print the exit status.
        let script = "trap 'true' INT; cd \(TmuxSession.quote(dir)); while [ ! -e go ]; do sleep 0.05; done; "
            + "env \(unset)\(envArgs) \(program); echo \"l2s-exit=$?\"; sleep 600"
        run(["-f", "/dev/null", "new-session", "-d", "-x", "\(width)", "-y", "\(height)", "sh", "-c", script])
        serverPID = Int32(format("#{pid}")) ?? 0
        run(["set-option", "-g", "remain-on-exit", "on"])
        run(["pipe-pane", "-o", "cat > \(TmuxSession.quote(rawPath))"])
        FileManager.default.createFile(atPath: goPath, contents: Data())
    }

    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    @discardableResult
    func run(_ args: [String]) -> String { shell(tmux, ["-L", socket] + args).1 }

    /// The visible screen (with `history`, the scrollback too).
    func capture(history: Bool = false, escapes: Bool = false) -> String {
        var a = ["capture-pane", "-p"]
        if history { a += ["-S", "-200"] }
        if escapes { a += ["-e"] }
        return run(a)
    }

    func sendText(_ text: String) { run(["send-keys", "-l", text]) }
    func sendKeys(_ keys: String...) { run(["send-keys"] + keys) }
    func resize(_ w: Int, _ h: Int) { run(["resize-window", "-x", "\(w)", "-y", "\(h)"]) }
    func format(_ f: String) -> String { run(["display-message", "-p", f]).trimmingCharacters(in: .whitespacesAndNewlines) }

    /// Polls the screen until `predicate` holds; returns the screen (nil on timeout, with an issue recorded).
    @discardableResult
    func waitFor(_ what: String, timeout: Double = 60, history: Bool = false,
                 sourceLocation: SourceLocation = #_sourceLocation, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        var screen = ""
        while Date() < deadline {
            screen = capture(history: history)
            if predicate(screen) { return screen }
            Thread.sleep(forTimeInterval: 0.1)
        }
        Issue.record("timed out after \(timeout) s waiting for \(what); screen:\n\(screen)\nlog:\n\(log)", sourceLocation: sourceLocation)
        return nil
    }

    func waitFor(text: String, timeout: Double = 60, history: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        waitFor("\"\(text)\"", timeout: timeout, history: history, sourceLocation: sourceLocation) { $0.contains(text) }
    }

    /// The program's pid: the child of the pane's shell named l2s (read from /proc; no pgrep needed).
    var programPID: Int32? {
        guard let shellPID = Int32(format("#{pane_pid}")),
              let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for e in entries {
            guard let pid = Int32(e), let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let name = stat[stat.index(after: stat.firstIndex(of: "(")!)..<close]
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            if name == "l2s", fields.count > 1, Int32(fields[1]) == shellPID { return pid }
        }
        return nil
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var raw: String { (try? String(contentsOfFile: rawPath, encoding: .utf8)) ?? String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: rawPath))) ?? Data(), as: UTF8.self) }

    /// Whether the bytes the program wrote leave the terminal as they found it: the alternate screen
    /// left, the cursor shown (or never hidden), keypad transmit mode off.
    func terminalRestored() -> (Bool, String) {
        let r = raw
        func last(_ a: String, _ b: String) -> String? {
            let ia = r.range(of: a, options: .backwards)?.lowerBound, ib = r.range(of: b, options: .backwards)?.lowerBound
            switch (ia, ib) {
            case (nil, nil): return nil
            case (.some, nil): return a
            case (nil, .some): return b
            case (.some(let x), .some(let y)): return x > y ? a : b
            }
        }
        let alt = last("\u{1B}[?1049h", "\u{1B}[?1049l")
        let cursor = last("\u{1B}[?25l", "\u{1B}[?25h")
        let keypad = last("\u{1B}[?1h", "\u{1B}[?1l")
        let ok = alt == "\u{1B}[?1049l" && cursor != "\u{1B}[?25l" && keypad != "\u{1B}[?1h"
        return (ok, "alternate \(alt.map { $0.debugDescription } ?? "none"), cursor \(cursor.map { $0.debugDescription } ?? "none"), keypad \(keypad.map { $0.debugDescription } ?? "none")")
    }

    deinit {
        run(["kill-server"])
        // A server that did not go (seen once on a loaded machine) is killed outright; its panes get SIGHUP.
        let deadline = Date(timeIntervalSinceNow: 3)
        while serverPID > 0 && kill(serverPID, 0) == 0 && !isZombie(serverPID) && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if serverPID > 0 && kill(serverPID, 0) == 0 && !isZombie(serverPID) { kill(serverPID, SIGKILL) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }
}
