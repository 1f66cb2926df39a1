// The UI's whole state: a value. The reducer (Reducer.swift) changes it in answer to key actions and
// engine events and returns the effects the App performs; the widgets draw it. Nothing here touches
// the terminal, a thread or the clock (times arrive inside events and `tick`).

import Foundation
import Formats
import Relations
import Imaging
import Steering
import Diffusion
import Tensors

/// Where a run is.
enum RunPhase: String, Sendable, Equatable {
    case idle, starting, running, paused, finished, cancelled, failed
    var label: String {
        switch self {
        case .idle: return "IDLE"
        case .starting: return "STARTING"
        case .running: return "RUNNING"
        case .paused: return "PAUSED"
        case .finished: return "DONE"
        case .cancelled: return "CANCELLED"
        case .failed: return "FAILED"
        }
    }
    var isActive: Bool { self == .starting || self == .running || self == .paused }
}

/// The editable settings shown in the schedule pane, in display order.
enum ScheduleField: String, CaseIterable, Sendable {
    case steps, start, end, stepSize, iterations, probabilityTarget, lossTarget, guidance, seed

    var label: String {
        switch self {
        case .steps: return "steps"
        case .start: return "start"
        case .end: return "end"
        case .stepSize: return "step size"
        case .iterations: return "iters"
        case .probabilityTarget: return "p target"
        case .lossTarget: return "loss target"
        case .guidance: return "cfg"
        case .seed: return "seed"
        }
    }

    /// Whether a change reaches a run in progress (steps and seed apply to the next run).
    var isLive: Bool { self != .steps && self != .seed }

    func value(in s: GenerationSettings) -> String {
        switch self {
        case .steps: return "\(s.steps)"
        case .start: return "\(s.steering.startStep)"
        case .end: return "\(s.steering.endStep)"
        case .stepSize: return Self.short(s.steering.stepSizes.first ?? 0)
        case .iterations: return "\(s.steering.maxIterations)"
        case .probabilityTarget: return String(format: "%.2f", s.steering.probabilityTarget)
        case .lossTarget: return Self.short(s.steering.lossTarget)
        // One decimal as before (2.0, 7.5), two where the value has them (1.25 read as "1.2").
        case .guidance: return String(format: (s.guidance * 10).rounded() == s.guidance * 10 ? "%.1f" : "%.2f", s.guidance)
        case .seed: return "\(s.seed)"
        }
    }

    static func short(_ v: Float) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 0.01 && abs(v) < 1000 {
            var t = String(format: "%.3f", v)
            while t.hasSuffix("0") { t.removeLast() }
            if t.hasSuffix(".") { t.removeLast() }
            return t
        }
        return String(format: "%.1e", v)
    }

    /// One notch up (+1) or down (−1), clamped to the valid range.
    func adjust(_ s: inout GenerationSettings, by direction: Int) {
        let d = direction >= 0 ? 1 : -1
        switch self {
        case .steps: s.steps = Self.clamp(s.steps + 5 * d, SamplerSettings.stepRange)
        case .start: s.steering.startStep = min(max(s.steering.startStep + d, 0), s.steering.endStep)
        case .end: s.steering.endStep = min(max(s.steering.endStep + d, s.steering.startStep), SteeringSettings.maxStep)
        case .stepSize:
            let v = s.steering.stepSizes.first ?? 0
            var n: Float = d > 0 ? (v == 0 ? 0.01 : v * 1.25) : (v < 0.002 ? 0 : v / 1.25)
            n = min(n, s.steering.maxStepSize)
            s.steering.stepSizes = [Float((Double(n) * 1000).rounded() / 1000)]
        case .iterations: s.steering.maxIterations = Self.clamp(s.steering.maxIterations + d, SteeringSettings.iterationRange)
        case .probabilityTarget:
            s.steering.probabilityTarget = min(max(((s.steering.probabilityTarget + 0.05 * Float(d)) * 100).rounded() / 100, 0.05), 1)
        case .lossTarget:
            let v = s.steering.lossTarget
            s.steering.lossTarget = d > 0 ? (v == 0 ? 0.001 : min(v * 2, 100)) : (v <= 0.001 ? 0 : v / 2)
        case .guidance: s.guidance = Self.clamp(((s.guidance + 0.5 * Float(d)) * 2).rounded() / 2, SamplerSettings.guidanceRange)
        case .seed: s.seed = d > 0 ? s.seed &+ 1 : (s.seed == 0 ? 0 : s.seed - 1)
        }
    }

    static func clamp<T: Comparable>(_ v: T, _ range: ClosedRange<T>) -> T { min(max(v, range.lowerBound), range.upperBound) }

    /// Sets the field from typed text; returns an error message for text it cannot use.
    func set(_ s: inout GenerationSettings, from text: String) -> String? {
        let t = text.trimmingCharacters(in: .whitespaces)
        func int(_ range: ClosedRange<Int>) -> Int? { Int(t).flatMap { range.contains($0) ? $0 : nil } }
        func float(_ range: ClosedRange<Float>) -> Float? { Float(t).flatMap { $0.isFinite && range.contains($0) ? $0 : nil } }
        switch self {
        case .steps: guard let v = int(SamplerSettings.stepRange) else { return "steps must be a whole number in \(SamplerSettings.stepRange.spelled)" }; s.steps = v
        case .start:
            guard let v = int(0...s.steering.endStep) else { return "start must be in 0…\(s.steering.endStep) (the end)" }
            s.steering.startStep = v
        case .end:
            guard let v = int(s.steering.startStep...SteeringSettings.maxStep) else { return "end must be in \(s.steering.startStep)…\(SteeringSettings.maxStep)" }
            s.steering.endStep = v
        case .stepSize:
            let limit = s.steering.maxStepSize
            guard let v = float(0...limit) else { return "step size must be a number in 0…\(Int(limit)) for the \(s.steering.update.rawValue) update" }
            s.steering.stepSizes = [v]
        case .iterations: guard let v = int(SteeringSettings.iterationRange) else { return "iterations must be a whole number in \(SteeringSettings.iterationRange.spelled)" }; s.steering.maxIterations = v
        case .probabilityTarget: guard let v = float(SteeringSettings.probabilityTargetRange) else { return "p target must be in \(SteeringSettings.probabilityTargetRange.spelled)" }; s.steering.probabilityTarget = v
        case .lossTarget: guard let v = float(SteeringSettings.lossTargetRange) else { return "loss target must be a number ≥ 0" }; s.steering.lossTarget = v
        case .guidance: guard let v = float(SamplerSettings.guidanceRange) else { return "guidance must be in \(SamplerSettings.guidanceRange.spelled)" }; s.guidance = v
        case .seed: guard let v = UInt64(t) else { return "seed must be a whole number ≥ 0" }; s.seed = v
        }
        return nil
    }
}

/// Which token's map the attention pane shows.
enum MapToken: String, Sendable {
    case subject, object
    var other: MapToken { self == .subject ? .object : .subject }
}

/// One run as the UI keeps it.
struct RunView: Sendable {
    var id: Int
    /// The settings the run samples with now (its own, then each live edit the engine applied).
    var settings: GenerationSettings
    /// The settings in force from each step on (step 0: the run's own).
    private(set) var applied: [AppliedSettings]
    var phase: RunPhase = .starting
    /// The engine's parse (edge indices match the UI's).
    var graph: RelationGraph?
    /// Edges the engine can steer (have tokens in the model).
    var steerable: [Int] = []
    var iterations: [IterationRecord] = []
    /// Step records in arrival order (`steps[i].step == i`).
    var steps: [StepRecord] = []
    var final: RGBImage?
    var seconds: Double?
    var message: String?
    var pausedAt: Int?
    var pauseRequested = false
    var cancelRequested = false
    /// Live changes the engine applied: "step 12: cfg 5.0".
    var appliedChanges: [String] = []

    init(id: Int, settings: GenerationSettings) {
        self.id = id
        self.settings = settings
        self.applied = [AppliedSettings(step: 0, settings: settings)]
    }

    var prompt: String { settings.prompt }

    /// Records `settings` as in force from `step` on (a later edit at the same step replaces it).
    mutating func recordApplied(at step: Int) {
        applied.record(settings, at: step)
    }

    var totalSteps: Int { steps.last?.totalSteps ?? settings.steps }
    var latestStep: Int? { steps.last?.step }

    /// Steps per second over the last few steps (nil before two steps).
    var stepsPerSecond: Double? {
        let recent = steps.suffix(8)
        let t = recent.reduce(0) { $0 + $1.seconds }
        guard recent.count >= 1, t > 0 else { return nil }
        return Double(recent.count) / t
    }

    /// Steps per second over the whole run (its wall time once finished).
    var averageStepsPerSecond: Double? {
        let t = seconds ?? steps.reduce(0) { $0 + $1.seconds }
        guard !steps.isEmpty, t > 0 else { return nil }
        return Double(steps.count) / t
    }

    /// Whether the run steers anything: steered mode, a relation switched on that the engine can
    /// steer, and a steering range with iterations inside the run.
    var steersSomething: Bool {
        guard settings.steered else { return false }
        let active = settings.activeOrder.filter { graph == nil || steerable.contains($0) }
        let s = settings.steering
        return !active.isEmpty && s.endStep > s.startStep && s.startStep < settings.steps && s.maxIterations > 0
    }

    /// What the run does to the image: "steered", "unsteered" (the A/B half) or "nothing to steer".
    var steeringLabel: String {
        !settings.steered ? "unsteered" : (steersSomething ? "steered" : "nothing to steer")
    }

    /// Seconds left at the recent rate.
    var eta: Double? {
        guard let r = stepsPerSecond, r > 0 else { return nil }
        return Double(totalSteps - steps.count) / r
    }

    /// Iterations recorded at a step, in order.
    func iterations(at step: Int) -> [IterationRecord] { iterations.filter { $0.step == step } }

    /// The newest iteration for an edge at or before a step.
    func latestIteration(edge: Int, atOrBefore step: Int) -> IterationRecord? {
        iterations.last { $0.edge == edge && $0.step <= step }
    }

    /// Per step 0..<totalSteps: the target probability of the edge's last iteration at that step.
    func targetHistory(edge: Int) -> [Float?] {
        var out = [Float?](repeating: nil, count: max(totalSteps, 0))
        for it in iterations where it.edge == edge && it.step >= 0 && it.step < out.count { out[it.step] = it.targetProbability }
        return out
    }
}

/// A finished run kept for A/B comparison (same prompt, seed and steps, the other steering mode):
/// its image, and its record for the sidecar when the pair is saved.
struct ABImage: Sendable {
    var run: RunView
    var image: RGBImage
    var runID: Int { run.id }
    var prompt: String { run.prompt }
    var seed: UInt64 { run.settings.seed }
    var steps: Int { run.settings.steps }
    var steered: Bool { run.settings.steered }
}

/// The whole UI state.
struct ViewState: Sendable {
    var theme: Theme
    var engineName: String
    var engineStatus: EngineStatus = .starting("starting")
    var vocabulary: ObjectVocabulary?
    /// Whether the `!` crash hook is bound (L2S_TUI_TEST_TRAP).
    var testTrap = false

    var mode: InputMode = .prompt
    var focus: Focus = .relations
    var prompt = LineEditor()
    var fieldEditor = LineEditor("", limit: 40)
    var helpScroll = 0
    var zoomImages = false

    /// The graph on screen: the UI's parse at Enter, replaced by the engine's.
    var graph: RelationGraph?
    /// Why the prompt could not be parsed (shown in the graph pane).
    var graphError: String?
    /// Extra lines for the graph pane (e.g. relations switched off because an object is unknown).
    var graphNotes: [String] = []
    var selectedEdge: Int?

    var settings = GenerationSettings()
    var settingsVersion = 0
    var appliedVersion = 0
    /// Fields changed since the engine last applied settings (drawn as pending).
    var pendingFields: Set<ScheduleField> = []
    var orderPending = false
    /// What changed since the last applied version, for the "applied at step N" message.
    var pendingChanges: [(key: String, text: String)] = []
    /// Settings pushed to the running engine by version, until it says it applied them.
    var sentSettings: [Int: GenerationSettings] = [:]
    var field: ScheduleField = .guidance

    var run: RunView?
    var nextRunID = 1
    /// Finished images by steering mode, for the A/B view.
    var abImages: [Bool: ABImage] = [:]
    /// The step the image panes show (nil: the newest).
    var viewStep: Int?
    var token: MapToken = .subject
    /// The attention pane's layer (index into the shown stack's layers; nil: mean of all layers) and
    /// head within it (nil: mean of the layer's heads).
    var mapLayer: Int?
    var mapHead: Int?
    /// Images fitted to pane sizes (by the engine or the fitter queue).
    var fitted: [FitKey: FittedImage] = [:]
    /// How the preview and attention panes draw images: half-blocks, or a true-pixel protocol the terminal supports.
    var graphics: GraphicsProtocol = .blocks
    /// A cell's size in pixels (for sixel images; from the terminal, else a usual 10×20).
    var cellSize = PixelBox(width: 10, height: 20)

    /// Recent log lines (newest last); the status line shows the newest.
    var log: [String] = []
    /// Log lines not yet written to the log file (the App takes them).
    var unwrittenLog: [String] = []
    /// Animation counter (spinner), bumped by the App while waiting.
    var tick = 0
    /// Source of new seeds (SplitMix64 state).
    var seedState: UInt64 = 0x9E37_79B9_7F4A_7C15
    var quitRequested = false
    /// Where the last save went.
    var lastSave: String?

    init(theme: Theme, engineName: String, defaults: GenerationSettings, vocabulary: ObjectVocabulary?) {
        self.theme = theme
        self.engineName = engineName
        self.settings = defaults
        self.vocabulary = vocabulary
    }

    /// An example prompt the loaded model can draw (the placeholder and the parse-error hints).
    var examplePrompt: String {
        guard let v = vocabulary else { return "a dog to the right of a teddy bear" }
        let preferred = ["red circle", "blue square"]
        let pair = preferred.allSatisfy(v.names.contains) ? preferred : Array(v.names.prefix(2))
        guard pair.count == 2 else { return v.names.first.map { Self.article($0) } ?? "a red circle" }
        return "\(Self.article(pair[0])) to the left of \(Self.article(pair[1]))"
    }

    /// "a cat", "an orange ring".
    static func article(_ noun: String) -> String {
        ("aeiou".contains(noun.first ?? "x") ? "an " : "a ") + noun
    }

    /// The step shown: `viewStep` or the newest step of the run.
    var shownStep: Int? {
        guard let run else { return nil }
        if let v = viewStep { return min(v, max((run.latestStep ?? 0), 0)) }
        return run.latestStep
    }

    /// The graph edges shown in the order pane: the settings' order, then unsupported edges.
    var orderedEdges: [Int] {
        guard let g = graph else { return [] }
        let order = (settings.order ?? g.order).filter { g.edges.indices.contains($0) }
        return order + g.edges.indices.filter { !order.contains($0) }
    }

    /// Adds a line to the on-screen log and the file log.
    mutating func note(_ line: String) {
        log.append(line)
        if log.count > 100 { log.removeFirst(log.count - 100) }
        unwrittenLog.append(line)
    }

    /// The next seed from the state's generator (SplitMix64), kept below 10⁶ to be easy to read.
    mutating func freshSeed() -> UInt64 {
        var g = SplitMix(seed: seedState)
        let z = g.next()
        seedState = g.state
        return z % 1_000_000
    }
}
