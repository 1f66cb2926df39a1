// What the UI drives: an engine that turns a prompt and settings into a stream of events, on its own
// thread. The UI → engine direction is a `RunControl` per run (versioned settings, pause, cancel, the
// preview size it wants); engine → UI is `EngineEvent`s through a `Mailbox` that wakes the UI's poll loop.

import Foundation
import Relations
import Imaging
import Steering
import Diffusion
import ToyWorld

/// The engine's own state, shown in the status line and the graph pane.
enum EngineStatus: Sendable, Equatable {
    case starting(String)
    case ready(String)
    case unavailable(String)
}

/// One refinement iteration as the UI keeps it (edge index, not target index).
struct IterationRecord: Sendable, Equatable {
    var step: Int
    var iteration: Int
    /// Index into the graph's edges of the relation judged.
    var edge: Int
    /// Class probabilities in classifier order: above, below, is, left of, right of.
    var probabilities: [Float]
    var targetProbability: Float
    var loss: Float
    var gradientNorm: Float
    /// 16×16 row-major maps (any square size works).
    var subjectMap: [Float]
    var objectMap: [Float]
    /// The maps per layer and head (nil when the engine has none); the pane's layer/head selector.
    var subjectStack: MapStack?
    var objectStack: MapStack?
    var note: String?

    init(step: Int, iteration: Int, edge: Int, probabilities: [Float], targetProbability: Float, loss: Float,
                gradientNorm: Float, subjectMap: [Float], objectMap: [Float], subjectStack: MapStack? = nil,
                objectStack: MapStack? = nil, note: String? = nil) {
        self.step = step; self.iteration = iteration; self.edge = edge; self.probabilities = probabilities
        self.targetProbability = targetProbability; self.loss = loss; self.gradientNorm = gradientNorm
        self.subjectMap = subjectMap; self.objectMap = objectMap; self.subjectStack = subjectStack
        self.objectStack = objectStack; self.note = note
    }

    /// The map of `token` for a layer/head choice (nil layer: the mean over all channels).
    func map(_ token: MapToken, layer: Int?, head: Int?) -> [Float] {
        let stack = token == .subject ? subjectStack : objectStack
        if let layer, let stack, stack.layers.indices.contains(layer) { return stack.map(layer: layer, head: head) }
        return token == .subject ? subjectMap : objectMap
    }
}

/// The scripted engine's records are its refinement loop's evaluations (a one-element gradient).
extension IterationRecord: RelationScore {
    var gradientCount: Int { 1 }
}

extension IterationRecord: RecordedIteration {}

extension IterationRecord {
    /// The UI's copy of one of the steerer's iterations.
    init(_ it: SteeringIteration) {
        self.init(step: it.step, iteration: it.iteration, edge: it.edge, probabilities: it.probabilities,
                  targetProbability: it.targetProbability, loss: it.loss, gradientNorm: it.gradientNorm,
                  subjectMap: it.subjectMap, objectMap: it.objectMap, subjectStack: it.subjectStack,
                  objectStack: it.objectStack, note: it.note)
    }
}

/// One finished denoising step.
struct StepRecord: Sendable, Equatable {
    var step: Int
    var totalSteps: Int
    var timestep: Int
    /// Wall time of this step (steering iterations included).
    var seconds: Double
    /// The predicted clean image x̂₀ at this step, at most 64×64 (area-averaged on the engine thread).
    var preview: RGBImage
    /// The same, fitted to the pane size the UI asked for (nil if it asked for none).
    var fitted: FittedImage?
    var fittedBox: PixelBox?
    /// What the toy detector reads on x̂₀ against the prompt (nil: the engine has no detector for its model).
    var detector: DetectorReading?
    init(step: Int, totalSteps: Int, timestep: Int, seconds: Double, preview: RGBImage,
                fitted: FittedImage? = nil, fittedBox: PixelBox? = nil, detector: DetectorReading? = nil) {
        self.step = step; self.totalSteps = totalSteps; self.timestep = timestep; self.seconds = seconds
        self.preview = preview; self.fitted = fitted; self.fittedBox = fittedBox; self.detector = detector
    }
}

/// A pixel box an image is fitted into (pane columns × 2·rows).
struct PixelBox: Hashable, Sendable {
    var width: Int
    var height: Int
    init(width: Int, height: Int) { self.width = max(0, width); self.height = max(0, height) }
}

/// Names one fitted image: which run, which picture, which box.
struct FitKey: Hashable, Sendable {
    enum Picture: Hashable, Sendable {
        case step(Int)
        case final
        case other  // the other half of the A/B pair
    }
    var run: Int
    var picture: Picture
    var box: PixelBox
    init(run: Int, picture: Picture, box: PixelBox) { self.run = run; self.picture = picture; self.box = box }
}

extension FitKey.Picture {
    /// The kitty image id of the preview slot that shows this picture (each slot is replaced in place;
    /// the attention map is `Widgets.attentionImageID`, 4).
    var imageID: Int {
        switch self {
        case .step: return 1
        case .final: return 2
        case .other: return 3
        }
    }
}

/// What an engine reports. Every run-scoped event carries the run id so stale ones can be dropped.
enum EngineEvent: Sendable {
    case status(EngineStatus)
    /// The prompt's graph as the engine parsed it, and the edge indices that can be steered.
    case parsed(run: Int, graph: RelationGraph, steerable: [Int])
    case iteration(run: Int, IterationRecord)
    case step(run: Int, StepRecord)
    /// Settings `version` took effect at the boundary before `step`.
    case applied(run: Int, version: Int, step: Int)
    case paused(run: Int, step: Int)
    case resumed(run: Int)
    /// The final image at full resolution and the run's wall time.
    case finished(run: Int, image: RGBImage, seconds: Double)
    case cancelled(run: Int, step: Int)
    case failed(run: Int, message: String)
    case fitted(FitKey, FittedImage)
    case log(String)
}

/// A request to sample one image: its settings (the prompt is in them), their version, and the
/// prompt's graph as the UI parsed it (the engine parses only when it is missing).
struct RunRequest: Sendable {
    var id: Int
    var settings: GenerationSettings
    var version: Int
    var graph: RelationGraph?
    init(id: Int, settings: GenerationSettings, version: Int, graph: RelationGraph? = nil) {
        self.id = id; self.settings = settings; self.version = version; self.graph = graph
    }
    var prompt: String { settings.prompt }
}

/// The UI's handle on one run: versioned settings, pause, cancel and the preview box, all read by the
/// engine thread at step boundaries. Every method is short and lock-protected.
final class RunControl: @unchecked Sendable {
    let runID: Int
    let token = CancellationToken()
    private let condition = NSCondition()
    private var paused = false
    private var settings: GenerationSettings
    private var version: Int
    private var box: PixelBox?

    init(runID: Int, settings: GenerationSettings, version: Int, previewBox: PixelBox? = nil) {
        self.runID = runID
        self.settings = settings
        self.version = version
        self.box = previewBox
    }

    /// Publishes new settings (the engine applies them at the next step boundary).
    func update(_ s: GenerationSettings, version v: Int) {
        condition.lock(); settings = s; version = v; condition.unlock()
    }

    /// The newest settings and their version.
    func latest() -> (GenerationSettings, Int) {
        condition.lock(); defer { condition.unlock() }
        return (settings, version)
    }

    var previewBox: PixelBox? {
        get { condition.lock(); defer { condition.unlock() }; return box }
        set { condition.lock(); box = newValue; condition.unlock() }
    }

    func setPaused(_ p: Bool) {
        condition.lock(); paused = p; condition.broadcast(); condition.unlock()
    }

    var isPaused: Bool { condition.lock(); defer { condition.unlock() }; return paused }

    /// Cancels the run and wakes a paused or sleeping engine.
    func cancel() {
        token.cancel()
        condition.lock(); condition.broadcast(); condition.unlock()
    }

    var isCancelled: Bool { token.isCancelled }

    /// Blocks while paused; returns whether it blocked at all. Wakes on resume or cancel.
    @discardableResult
    func waitWhilePaused(onPause: () -> Void = {}) -> Bool {
        condition.lock()
        guard paused && !token.isCancelled else { condition.unlock(); return false }
        condition.unlock()
        onPause()
        condition.lock()
        while paused && !token.isCancelled { condition.wait() }
        condition.unlock()
        return true
    }

    /// Sleeps up to `seconds`; returns early when cancelled.
    func sleep(_ seconds: Double) {
        guard seconds > 0 else { return }
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        while !token.isCancelled && Date() < deadline { _ = condition.wait(until: deadline) }
        condition.unlock()
    }
}

/// An engine: owns a model (or a script), runs one generation at a time on its own thread.
protocol WorkbenchEngine: AnyObject {
    /// One line naming the model, for the status line and sidecars.
    var name: String { get }
    /// The objects the model can draw (nil: any).
    var vocabulary: ObjectVocabulary? { get }
    /// Settings for a fresh session (model defaults).
    var defaults: GenerationSettings { get }
    /// Starts the engine's thread (loading the model, if any); all events go to `sink`.
    func start(sink: @escaping @Sendable (EngineEvent) -> Void)
    /// Runs `request` after cancelling any run in progress. Never blocks the caller.
    func submit(_ request: RunRequest, control: RunControl)
    /// Cancels everything and waits up to `timeout` seconds for the thread; false if it did not stop.
    func shutdown(timeout: Double) -> Bool
}

/// A self-pipe: any thread (or a signal handler, through `writeFD`) wakes the UI's poll().
final class Waker: @unchecked Sendable {
    let readFD: Int32
    let writeFD: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) != 0 { fds = [-1, -1] }
        readFD = fds[0]
        writeFD = fds[1]
        for fd in fds where fd >= 0 {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
    }

    deinit {
        if readFD >= 0 { close(readFD) }
        if writeFD >= 0 { close(writeFD) }
    }

    /// Writes one byte (EAGAIN means a wake is already pending: fine).
    func wake() {
        var b: UInt8 = 1
        _ = write(writeFD, &b, 1)
    }

    /// Empties the pipe.
    func drain() {
        var buf = [UInt8](repeating: 0, count: 256)
        while read(readFD, &buf, buf.count) > 0 {}
    }
}

/// Lock-protected queue of engine events; posting wakes the UI at most once per drain.
final class Mailbox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [EngineEvent] = []
    private var wakePending = false
    private let waker: Waker?
    /// Events posted since start (for the coalescing figure in the log).
    private(set) var posted = 0

    init(waker: Waker?) { self.waker = waker }

    func post(_ event: EngineEvent) {
        lock.lock()
        items.append(event)
        posted += 1
        let wake = !wakePending
        wakePending = true
        lock.unlock()
        if wake { waker?.wake() }
    }

    /// Takes every pending event, oldest first.
    func drain() -> [EngineEvent] {
        lock.lock()
        defer { lock.unlock() }
        let out = items
        items.removeAll(keepingCapacity: true)
        wakePending = false
        return out
    }
}
