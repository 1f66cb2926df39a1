// The status line and the key bar (the key bar is drawn from the keymap table).
// A pure function from the view state to cells in its rectangle (see Widgets.swift).

import Foundation
import Steering

extension Widgets {
    // MARK: Status line and key bar

    static func status(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
        guard !r.isEmpty else { return }
        let t = s.theme, g = t.glyphs
        grid.fill(r)
        var parts: [(String, Style)] = []
        let phase = s.run?.phase ?? .idle
        switch s.engineStatus {
        case .starting(let what) where s.run == nil || phase == .starting:
            parts.append((" \(g.spinner[s.tick % g.spinner.count]) \(what) ", t.stateStyle(.starting)))
        default:
            var label = phase.label
            if phase == .starting { label = "\(g.spinner[s.tick % g.spinner.count]) " + label }
            if phase == .paused, let p = s.run?.pausedAt { label += " at step \(p + 1)" }
            if phase == .running && s.run?.pauseRequested == true { label = "PAUSING" }
            parts.append((" \(label) ", t.stateStyle(phase)))
        }
        if let run = s.run {
            // Finished: the run's average rate; running: the recent one; paused: no rate, the ETA on hold.
            let rate = phase == .finished ? run.averageStepsPerSecond : (phase == .paused ? nil : run.stepsPerSecond)
            if let rate { parts.append((String(format: " %.1f steps/s", rate), t.text)) }
            if phase == .paused { parts.append((" ETA paused", t.text)) }
            else if phase.isActive, let eta = run.eta { parts.append(("  ETA \(Fmt.seconds(eta))", t.text)) }
            if phase == .finished, let sec = run.seconds { parts.append((String(format: "  %.1fs", sec), t.text)) }
        }
        parts.append(("  \(g.vertical) ", t.dim))
        var last = s.log.last ?? ""
        if case .unavailable(let why) = s.engineStatus, s.run == nil {
            // The whole reason is in the Relations pane; the status line keeps the way out in view.
            let used = parts.reduce(0) { $0 + TextWidth.columns(of: $1.0) }
            last = "model unavailable: " + why
            if used + TextWidth.columns(of: last) > r.width { last = "model unavailable (why: Relations pane, log); try `l2s --demo`" }
        }
        parts.append((last, t.text))
        grid.segments(parts, x: r.x, y: r.y, clip: r)
    }

    static func keyBar(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
        guard !r.isEmpty else { return }
        let t = s.theme
        grid.fill(r)
        var x = r.x + 1
        let paused = s.run.map { $0.phase == .paused || ($0.phase.isActive && $0.pauseRequested) } ?? false
        for (keys, text) in Keymap.bar(mode: s.mode, focus: s.focus, ascii: t.glyphs.ascii, paused: paused) {
            let w = TextWidth.columns(of: keys) + 1 + TextWidth.columns(of: text) + 2
            if x + w > r.maxX { break }
            x = grid.segments([(keys, t.keyName), (" " + text, t.text)], x: x, y: r.y, clip: r) + 2
        }
    }
}
