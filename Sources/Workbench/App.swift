// The event loop: the UI thread polls stdin and a self-pipe, drains every key and
// every engine event, applies them to the state, and draws at most one frame per wake-up (capped at
// 60 fps for engine updates; a key is drawn at once). Signals: SIGINT/SIGTERM/SIGHUP set a flag and
// wake the loop for an orderly quit; crash signals restore the terminal and re-raise. stderr goes to
// the log file while the screen is up.

import Foundation
import ToyBench
import Relations
import Steering
#if canImport(Glibc)
import Glibc
#endif

/// Options for a session.
public struct WorkbenchOptions: Sendable {
    public var noColor = false
    public var ascii = false
    /// The log file (created if needed).
    public var logPath: String
    /// Where `s` saves images.
    public var saveDirectory: String
    /// Binds `!` to a deliberate trap (for the crash-restore test).
    public var testTrap = false
    /// The factor `s` enlarges saved images by (nil: enough for ≥ 256 px).
    public var saveUpscale: Int?
    /// How images are drawn: a protocol, or `auto` (detect; half-blocks inside tmux).
    public var graphics: GraphicsChoice = .auto
    /// A run to start as soon as the screen is up (a replay's recorded run): its prompt and mode.
    public var initialRun: (prompt: String, steered: Bool)?
    public init(logPath: String, saveDirectory: String) {
        self.logPath = logPath
        self.saveDirectory = saveDirectory
    }

    /// `$XDG_STATE_HOME/l2s/l2s.log`, else `~/.local/state/l2s/l2s.log`.
    public static var defaultLogPath: String {
        let env = ProcessInfo.processInfo.environment
        if let x = env["XDG_STATE_HOME"], !x.isEmpty { return x + "/l2s/l2s.log" }
        return (env["HOME"] ?? NSTemporaryDirectory()) + "/.local/state/l2s/l2s.log"
    }
}

/// A thread-safe append-only log file.
final class LogFile: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private let formatter: DateFormatter = {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
        return f
    }()

    init(path: String) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path]) }
    }

    deinit { close(fd) }

    var descriptor: Int32 { fd }

    func write(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        let text = formatter.string(from: Date()) + " " + line + "\n"
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
    }
}

/// Frame and latency figures, logged at exit (and used for the README numbers).
struct FrameStats: Sendable {
    var renderMs: [Double] = []
    var drawMs: [Double] = []
    /// Render + draw of frames that repainted every cell (start, resize).
    var fullRedrawMs: [Double] = []
    var keyToScreenMs: [Double] = []
    var frames = 0
    var engineEvents = 0

    static func summary(_ v: [Double]) -> String {
        guard !v.isEmpty else { return "n/a" }
        let s = v.sorted()
        func q(_ p: Double) -> Double { s[min(s.count - 1, Int(Double(s.count - 1) * p))] }
        return String(format: "p50 %.2f ms, p95 %.2f ms, max %.2f ms (n=%d)", q(0.5), q(0.95), s.last!, s.count)
    }

    var description: String {
        "frames \(frames) for \(engineEvents) engine events; render \(Self.summary(renderMs)); "
            + "curses draw \(Self.summary(drawMs)); full redraw \(Self.summary(fullRedrawMs)); key→screen \(Self.summary(keyToScreenMs))"
    }
}

// Signal plumbing: plain globals, touched only with async-signal-safe calls in handlers.
nonisolated(unsafe) private var signalWakeFD: Int32 = -1
nonisolated(unsafe) private var receivedSignal: Int32 = 0
nonisolated(unsafe) private var savedStderr: Int32 = -1
nonisolated(unsafe) private var crashNote: UnsafeMutablePointer<CChar>? = nil
/// Per crash signal, the line the handler writes to the log (stderr points there): made before any
/// crash, since a handler may not allocate.
nonisolated(unsafe) private var crashLogLines: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
    let p = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: 65)
    p.initialize(repeating: nil, count: 65)
    return p
}()
nonisolated(unsafe) private var previousActions = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)

private let crashSignals: [Int32] = [SIGILL, SIGTRAP, SIGABRT, SIGSEGV, SIGBUS, SIGFPE]

private func onQuitSignal(_ sig: Int32) {
    receivedSignal = sig
    var b: UInt8 = 0
    _ = write(signalWakeFD, &b, 1)
}

private func onCrashSignal(_ sig: Int32) {
    if sig >= 0 && sig < 65, let line = crashLogLines[Int(sig)] { _ = write(2, line, strlen(line)) }
    CursesBackend.emergencyEnd()
    if savedStderr >= 0, let note = crashNote { _ = write(savedStderr, note, strlen(note)) }
    // Die of the signal with the default action. Not chained to the Swift runtime's backtracer: it
    // would write to the terminal and wait for a key ("Press space to interact"); the runtime's
    // "Fatal error: …" line, which only a debug build prints, is already in the log (stderr points there).
    signal(sig, SIG_DFL)
    raise(sig)
}

/// What the workbench drives: a model (the embedded toy model or a Stable Diffusion folder, loaded on
/// the engine's thread), the scripted demo engine, or a recorded run.
public enum EngineChoice {
    /// `classifier` nil: the hand-made centroid loss steers.
    case model(ModelProfile.Source, classifier: RelationClassifier?)
    /// Scripted discs, `stepDelay` seconds a step.
    case demo(stepDelay: Double)
    case replay(RunTrace.Recording)
}

/// The workbench session: owns the backend, the state and the loop.
public final class App {
    let engine: WorkbenchEngine
    let options: WorkbenchOptions
    private(set) var state: ViewState
    private(set) var stats = FrameStats()
    private let waker = Waker()
    private let mailbox: Mailbox
    private var backend: CursesBackend?
    private var control: RunControl?
    private var log: LogFile?
    private let fitQueue = DispatchQueue(label: "l2s.fitter", qos: .utility)
    private var pendingFits: Set<FitKey> = []
    private var lastBox: PixelBox?

    public convenience init(_ choice: EngineChoice, options: WorkbenchOptions) {
        let engine: WorkbenchEngine
        switch choice {
        case .model(let source, let classifier): engine = LiveEngine(source, classifier: classifier)
        case .demo(let delay): engine = ScriptedEngine(stepDelay: delay)
        case .replay(let recording): engine = ReplayEngine(recording)
        }
        self.init(engine: engine, options: options)
    }

    init(engine: WorkbenchEngine, options: WorkbenchOptions) {
        self.engine = engine
        self.options = options
        mailbox = Mailbox(waker: waker)
        var s = ViewState(theme: Theme(tier: .none, ascii: options.ascii), engineName: engine.name,
                          defaults: engine.defaults, vocabulary: engine.vocabulary)
        s.testTrap = options.testTrap
        s.seedState = UInt64(Date().timeIntervalSince1970 * 1000)
        s.prompt.seedHistory([engine.vocabulary == nil ? "a dog to the right of a teddy bear"
                                                       : "a red circle to the left of a blue square"])
        state = s
    }

    /// Runs until the user quits or a signal arrives; returns the exit status. The terminal is restored
    /// on every path that returns, and by the crash handlers on the ones that do not.
    public func run() throws -> Int32 {
        let log = try LogFile(path: options.logPath)
        self.log = log
        log.write("l2s workbench starting (\(engine.name)), pid \(getpid())")
        // stderr → log while curses is up (runtime and library chatter, Swift fatal errors).
        savedStderr = dup(2)
        fflush(stderr)
        dup2(log.descriptor, 2)
        let note = "l2s: crashed; the terminal was restored. Details: \(log.path)\n"
        crashNote = strdup(note)
        for (sig, name) in [(SIGILL, "SIGILL, a Swift runtime trap"), (SIGTRAP, "SIGTRAP, a Swift runtime trap"), (SIGABRT, "SIGABRT"),
                            (SIGSEGV, "SIGSEGV"), (SIGBUS, "SIGBUS"), (SIGFPE, "SIGFPE")] where crashLogLines[Int(sig)] == nil {
            crashLogLines[Int(sig)] = strdup("l2s: crashed with signal \(sig) (\(name)); restoring the terminal\n")
        }
        atexit { CursesBackend.emergencyEnd() }

        // True-pixel images: ask the terminal before ncurses owns it (a short wait; never inside tmux).
        let env = ProcessInfo.processInfo.environment
        var graphics: (GraphicsProtocol, String) = (.blocks, "no colour or ASCII mode: half-blocks")
        if !options.noColor && !options.ascii || options.graphics != .auto {
            let reply = GraphicsDetection.shouldQuery(options.graphics, env: env)
                ? CursesBackend.queryTerminal(GraphicsDetection.query, timeout: 0.25) { GraphicsDetection.parse($0).complete } : nil
            graphics = GraphicsDetection.decide(options.graphics, env: env, reply: reply)
        }
        let backend: CursesBackend
        do {
            backend = try CursesBackend(options: CursesBackend.Options(noColor: options.noColor, ascii: options.ascii))
        } catch {
            restoreStderr()
            throw error
        }
        self.backend = backend
        installSignalHandlers()
        state.theme = Theme(tier: backend.tier, ascii: options.ascii || !backend.utf8)
        state.graphics = graphics.0
        if let cell = CursesBackend.cellPixelSize() { state.cellSize = cell }
        log.write("graphics: \(graphics.0.rawValue) (\(graphics.1)); cell \(state.cellSize.width)×\(state.cellSize.height) px")
        log.write("terminal \(ProcessInfo.processInfo.environment["TERM"] ?? "?") \(backend.size), colours \(backend.colors), pairs \(backend.colorPairs), tier \(backend.tier.rawValue), \(state.theme.glyphs.ascii ? "ASCII" : "UTF-8") glyphs")
        let box = mailbox
        engine.start { box.post($0) }
        if let r = options.initialRun {
            state.prompt.setText(r.prompt)
            state.prompt.commit()
            perform(state.startRun(prompt: r.prompt, steered: r.steered))
            state.mode = .command
        }

        let status = loop(backend)

        // Orderly quit: cancel, bounded join, restore, report.
        let stopped = engine.shutdown(timeout: 3)
        if !stopped { log.write("the engine did not stop within 3 s; exiting anyway") }
        backend.end()
        restoreSignalHandlers()
        restoreStderr()
        stats.engineEvents = mailbox.posted
        log.write("session end: \(stats.description)")
        print("l2s: log written to \(log.path)")
        return status
    }

    private func restoreStderr() {
        if savedStderr >= 0 { dup2(savedStderr, 2) }
    }

    private func installSignalHandlers() {
        signalWakeFD = waker.writeFD
        receivedSignal = 0
        for sig in [SIGINT, SIGTERM, SIGHUP] { signal(sig, onQuitSignal) }
        for sig in crashSignals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = onCrashSignal
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            sigaction(sig, &action, previousActions.advanced(by: Int(sig)))
        }
    }

    private func restoreSignalHandlers() {
        for sig in [SIGINT, SIGTERM, SIGHUP] { signal(sig, SIG_DFL) }
        for sig in crashSignals { sigaction(sig, previousActions.advanced(by: Int(sig)), nil) }
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private func loop(_ backend: CursesBackend) -> Int32 {
        let frameInterval = 1.0 / 60
        var dirty = true
        var lastFrame = 0.0
        var lastTick = 0.0
        var keyAt: Double? = nil
        while true {
            if receivedSignal != 0 {
                log?.write("signal \(receivedSignal): quitting")
                return 128 + receivedSignal
            }
            // Keys.
            for event in backend.readInput(now: Self.now()) {
                let t = Self.now()
                switch event {
                case .resize:
                    backend.invalidate()
                    dirty = true
                    keyAt = keyAt ?? t
                case .key(let k):
                    perform(state.handle(key: k))
                    dirty = true
                    keyAt = keyAt ?? t
                }
            }
            // Engine events, all at once: one frame for however many arrived.
            waker.drain()
            let events = mailbox.drain()
            for e in events {
                if case .fitted(let key, _) = e { pendingFits.remove(key) }
                if case .status(.ready) = e { state.engineName = engine.name }  // now with the weights' hash
                state.apply(e)
            }
            if !events.isEmpty { dirty = true }
            flushLog()
            if state.quitRequested { return 0 }
            // Spinner while the engine starts or a run waits for its first step.
            let t = Self.now()
            let animating: Bool = {
                if case .starting = state.engineStatus { return true }
                return state.run?.phase == .starting
            }()
            if animating && t - lastTick >= 0.1 {
                state.tick += 1
                lastTick = t
                dirty = true
            }
            // Draw now for keys; engine-only updates wait for the frame interval.
            if dirty && (keyAt != nil || t - lastFrame >= frameInterval) {
                draw(backend, keyAt: keyAt)
                dirty = false
                keyAt = nil
                lastFrame = Self.now()
            }
            // Sleep until a key, an engine event, the next frame slot or the next spinner tick.
            var timeout: Int32 = -1
            if dirty { timeout = Int32(max(1, (frameInterval - (Self.now() - lastFrame)) * 1000)) }
            if animating { timeout = timeout < 0 ? 100 : min(timeout, 100) }
            if let d = backend.inputDeadline {
                let ms = Int32(max(1, ((d - Self.now()) * 1000).rounded(.up)))
                timeout = timeout < 0 ? ms : min(timeout, ms)
            }
            var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: waker.readFD, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, timeout)
        }
    }

    private func draw(_ backend: CursesBackend, keyAt: Double?) {
        let t0 = Self.now()
        let frame = Screen.render(state, size: backend.size)
        let t1 = Self.now()
        let full = backend.draw(frame.grid)
        let t2 = Self.now()
        stats.frames += 1
        if full { stats.fullRedrawMs.append((t2 - t0) * 1000) }
        stats.renderMs.append((t1 - t0) * 1000)
        stats.drawMs.append((t2 - t1) * 1000)
        if let k = keyAt { stats.keyToScreenMs.append((t2 - k) * 1000) }
        if stats.renderMs.count > 20_000 { stats.renderMs.removeFirst(10_000); stats.drawMs.removeFirst(10_000) }
        // The engine fits step images for half-blocks only; true-pixel images are encoded on the fitter queue.
        let engineBox = state.graphics == .blocks ? frame.previewBox : nil
        if engineBox != lastBox {
            lastBox = engineBox
            control?.previewBox = engineBox
        }
        let box = mailbox
        let graphics = state.graphics, cell = state.cellSize
        for want in frame.wants where !pendingFits.contains(want.key) {
            pendingFits.insert(want.key)
            fitQueue.async {
                var img = ImageFitter.fit(want.source, boxWidth: want.key.box.width, boxHeight: want.key.box.height)
                img.graphics = GraphicsImage.make(want.source, box: want.key.box, cell: cell, protocol: graphics, id: want.key.picture.imageID)
                box.post(.fitted(want.key, img))
            }
        }
    }

    private func flushLog() {
        guard !state.unwrittenLog.isEmpty else { return }
        for line in state.unwrittenLog { log?.write(line) }
        state.unwrittenLog.removeAll()
    }

    private func perform(_ effects: [Effect]) {
        for effect in effects {
            switch effect {
            case .start(let request):
                control?.cancel()
                let c = RunControl(runID: request.id, settings: request.settings, version: request.version, previewBox: lastBox)
                control = c
                engine.submit(request, control: c)
            case .cancel(let id):
                if control?.runID == id { control?.cancel() }
            case .pause(let id, let paused):
                if control?.runID == id { control?.setPaused(paused) }
            case .push(let id, let settings, let version):
                if control?.runID == id { control?.update(settings, version: version) }
            case .save:
                save()
            case .quit:
                break
            case .trap:
                log?.write("test trap requested (L2S_TUI_TEST_TRAP): trapping on purpose")
                let empty: [Int] = []
                _ = empty[Int(getpid()) % 7 + 1]   // index out of range: a Swift runtime trap
            }
        }
    }

    private func save() {
        let snapshot = state
        guard snapshot.run != nil else { return }
        let dir = options.saveDirectory
        let upscale = options.saveUpscale
        let box = mailbox
        state.note(snapshot.abCounterpart == nil ? "saving …" : "saving both halves of the A/B pair …")
        fitQueue.async {
            do {
                let paths = try Sidecar.save(snapshot, directory: dir, upscale: upscale)
                box.post(.log("saved \(paths.joined(separator: " and ")) (each with a .json sidecar)"))
            } catch {
                box.post(.log("save failed: \(error)"))
            }
        }
    }
}
