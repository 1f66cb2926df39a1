// `l2s replay`: the workbench on a recorded run, without a model. The recording's events are posted
// as the engine would post them, so every pane (classifier bars, maps, x̂₀ per step) and the step
// scrubbing (`, . < >`) work as after a live run. Only the recorded run can be shown: another seed,
// step count or steering mode has no model to sample with, and says so.

import Foundation
import Relations
import Steering

final class ReplayEngine: WorkbenchEngine, @unchecked Sendable {
    let recording: RunTrace.Recording
    var name: String { "replay of \((recording.source as NSString).lastPathComponent)" }
    var vocabulary: ObjectVocabulary? { nil }
    var defaults: GenerationSettings { recording.settings }
    private let lock = NSLock()
    private var sink: (@Sendable (EngineEvent) -> Void)?

    init(_ recording: RunTrace.Recording) { self.recording = recording }

    func start(sink: @escaping @Sendable (EngineEvent) -> Void) {
        lock.lock(); self.sink = sink; lock.unlock()
        sink(.status(.ready("\(name): \(recording.steps.count) steps recorded (no model; , . < > scrub the steps)")))
    }

    func submit(_ request: RunRequest, control: RunControl) {
        lock.lock(); let sink = self.sink; lock.unlock()
        guard let sink else { return }
        for e in Self.events(of: recording, for: request) { sink(e) }
    }

    /// What a request is answered with: the recording, or why it cannot be shown.
    static func events(of r: RunTrace.Recording, for request: RunRequest) -> [EngineEvent] {
        let id = request.id
        let s = request.settings
        guard request.prompt == r.prompt, s.seed == r.settings.seed, s.steps == r.settings.steps, s.steered == r.settings.steered else {
            return [.failed(run: id, message: "a replay has no model: only the recorded run can be shown (\"\(r.prompt)\", seed \(r.settings.seed), "
                            + "\(r.settings.steps) steps, \(r.settings.steered ? "steered" : "unsteered"); r shows it again)")]
        }
        var out: [EngineEvent] = []
        if let g = r.graph { out.append(.parsed(run: id, graph: g, steerable: r.steerable)) }
        var byStep: [Int: [IterationRecord]] = [:]
        for it in r.iterations { byStep[it.step, default: []].append(it) }
        for step in r.steps {
            out += (byStep[step.step] ?? []).map { .iteration(run: id, $0) }
            out.append(.step(run: id, step))
        }
        if let f = r.final {
            out.append(.finished(run: id, image: f, seconds: r.seconds))
        } else {
            out.append(.cancelled(run: id, step: r.steps.last?.step ?? 0))
        }
        return out
    }

    func shutdown(timeout: Double) -> Bool { true }
}
