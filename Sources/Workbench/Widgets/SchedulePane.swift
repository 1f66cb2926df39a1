// The schedule pane: steps, guidance, seed and the steering settings, editable field by field.
// A pure function from the view state to cells in its rectangle (see Widgets.swift).

import Foundation
import Steering

extension Widgets {
    // MARK: Schedule

    static func schedule(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
        let t = s.theme, g = t.glyphs
        let focused = s.mode == .command && s.focus == .schedule
        let typing: ScheduleField? = { if case .field(let f) = s.mode { return f }; return nil }()
        let inner = grid.box(r, title: "Schedule", tag: focused ? "↑/↓ select ←/→ change ⏎ type" : "[ ] select, +/- change",
                             theme: t, focused: focused || typing != nil)
        guard !inner.isEmpty else { return }
        // Progress line.
        var progress: [(String, Style)] = []
        if let run = s.run {
            let done = run.steps.count, total = run.totalSteps
            let w = max(4, min(40, inner.width / 3))
            progress.append(("step \(done)/\(total) ", t.text))
            progress.append((String(g.barLeft), t.dim))
            progress.append((Gauge.bar(total > 0 ? Float(done) / Float(total) : 0, width: w, glyphs: g), t.bar))
            progress.append((String(g.barRight), t.dim))
            let sched = run.settings.steering
            progress.append(("  steering [\(sched.startStep), \(sched.endStep))", t.dim))
            progress.append(("  \(run.settings.steered ? run.steeringLabel : "unsteered (A/B)")", run.steersSomething ? t.good : t.warning))
            progress.append(("  seed \(run.settings.seed)", t.dim))
        } else {
            progress.append(("no run yet", t.dim))
        }
        grid.segments(progress, x: inner.x, y: inner.y, clip: inner)
        // Field chips, wrapped over the remaining lines.
        var x = inner.x
        var y = inner.y + 1
        for f in ScheduleField.allCases {
            var value = f.value(in: s.settings)
            var valueStyle = t.text.with(.bold)
            if typing == f { value = s.fieldEditor.isEmpty ? "(was \(f.value(in: s.settings)))" : s.fieldEditor.text; valueStyle = t.selected }
            let pending = s.pendingFields.contains(f)
            let nextRun = !f.isLive && s.run.map { f.value(in: $0.settings) != f.value(in: s.settings) } == true
            let suffix = pending ? "*" : (nextRun ? " (next run)" : "")
            let chip = "\(f.label) \(value)\(suffix)"
            let w = TextWidth.columns(of: chip) + 3
            if x > inner.x && x + w > inner.maxX { x = inner.x; y += 1 }
            guard y < inner.maxY else { break }
            let selected = s.field == f
            let labelStyle = selected ? (focused || typing != nil ? t.selected : t.text.with(.underline)) : t.dim
            var cx = grid.segments([(f.label + " ", labelStyle)], x: x, y: y, clip: inner)
            if typing == f {
                let (start, col) = s.fieldEditor.viewport(width: 12)
                grid.cursor = (min(cx + col, inner.maxX - 1), y)
                if s.fieldEditor.isEmpty {
                    // The field starts empty; the old value is a hint, replaced by what is typed.
                    cx = grid.segments([(value, t.dim)], x: cx, y: y, clip: inner)
                } else {
                    grid.text(String(s.fieldEditor.characters[start...]), x: cx, y: y, style: valueStyle, clip: inner)
                    cx += max(TextWidth.columns(of: value), 1)
                }
            } else {
                cx = grid.segments([(value, pending ? t.pending.with(.bold) : valueStyle)], x: cx, y: y, clip: inner)
            }
            cx = grid.segments([(suffix, pending ? t.pending : t.dim)], x: cx, y: y, clip: inner)
            x = cx + 3
        }
    }
}
