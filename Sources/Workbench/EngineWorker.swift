// What both engines (`LiveEngine`, `ScriptedEngine`) do the same way around a run: a new submit
// cancels the run before it; at each step boundary the run waits while paused, then takes the
// newest settings if the UI sent a newer version; each step's preview is fitted to the box the UI
// asked for. The engines differ only in what a step is.

import Foundation
import Steering

/// The run an engine is working on: a new one cancels the one before; shutdown cancels it.
final class CurrentRun: @unchecked Sendable {
    private let lock = NSLock()
    private var control: RunControl?

    /// Cancels the current run (if any) and makes `next` current.
    func replace(with next: RunControl) {
        lock.lock(); control?.cancel(); control = next; lock.unlock()
    }

    func cancel() {
        lock.lock(); control?.cancel(); lock.unlock()
    }
}

extension RunControl {
    /// The first half of the step-boundary protocol: blocks while paused, posting `.paused` before
    /// and `.resumed` after (not when the wait ended in a cancel).
    func waitAtBoundary(run id: Int, step: Int, sink: (EngineEvent) -> Void) {
        if waitWhilePaused(onPause: { sink(.paused(run: id, step: step)) }) {
            if !isCancelled { sink(.resumed(run: id)) }
        }
    }

    /// The second half: the newest settings when their version differs from `applied` (which it
    /// updates), posting `.applied` for the step they take effect at; nil when nothing changed.
    func newerSettings(than applied: inout Int, run id: Int, step: Int, sink: (EngineEvent) -> Void) -> GenerationSettings? {
        let (settings, version) = latest()
        guard version != applied else { return nil }
        applied = version
        sink(.applied(run: id, version: version, step: step))
        return settings
    }

    /// `record` with its preview fitted to the box the UI asked for (unchanged when it asked for none).
    func fittingPreview(_ record: StepRecord) -> StepRecord {
        guard let box = previewBox else { return record }
        var r = record
        r.fitted = ImageFitter.fit(r.preview, boxWidth: box.width, boxHeight: box.height)
        r.fittedBox = box
        return r
    }
}
