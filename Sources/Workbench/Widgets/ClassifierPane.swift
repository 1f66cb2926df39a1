// The classifier pane: the relation classifier's read-out (class bars, p(target), loss) for the shown iteration,
// and beside it, when the engine has a detector for its model (the embedded toy model), what the
// detector finds on the step's x̂₀ (DetectorReadout.swift): so a fooled classifier shows.
// A pure function from the view state to cells in its rectangle (see Widgets.swift).

import Foundation
import Relations
import Steering
import ToyWorld

extension Widgets {
    // MARK: Classifier

    static func classifier(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
        let t = s.theme, g = t.glyphs
        var title = "Classifier p(relation | x_t)"
        if let r = s.run, let step = s.shownStep { title += " \(g.sectionDot) step \(step + 1)/\(r.totalSteps)" }
        let inner = grid.box(r, title: title, tag: s.run.map { $0.settings.steered ? "" : "unsteered: reading only" } ?? "", theme: t)
        guard !inner.isEmpty else { return }
        guard let run = s.run, let graph = s.graph else {
            draw([[("No run yet.", t.dim)]], in: inner, grid: &grid, theme: t)
            return
        }
        let edges = s.orderedEdges.filter { graph.edges[$0].relation != nil }
        if edges.isEmpty {
            draw(Wrap.lines("No steerable relation: nothing for the classifier to judge. The image is sampled unsteered.",
                            width: inner.width).map { [($0, t.dim)] }, in: inner, grid: &grid, theme: t)
            return
        }
        let step = s.shownStep ?? -1
        let atStep = run.iterations(at: step)
        var lines: [[(String, Style)]] = []
        let reading = run.steps.last { $0.step == step }?.detector
        // The objects line(s) give way to the relation rows when the pane is short (their verdicts stay).
        let objectRoom = min(2, inner.height - edges.count)
        let objectLines = reading.map { detectorObjects($0, width: inner.width, theme: t, maxLines: objectRoom) } ?? []
        lines += objectLines
        let full = inner.height >= edges.count * 7 + 1 + objectLines.count
        let labelWidth = 10
        let barWidth = max(4, min(40, inner.width - labelWidth - 8))

        func header(_ e: Int, compact: Bool) -> [(String, Style)] {
            let it = run.latestIteration(edge: e, atOrBefore: step)
            let off = s.settings.disabled.contains(e)
            var row: [(String, Style)] = [(s.selectedEdge == e ? String(g.pointer) : " ", t.accent), ("\(e + 1) ", t.dim)]
            let name = s.edgeLabel(e, arrows: false)
            let nameWidth = compact ? min(TextWidth.columns(of: name), max(8, inner.width / 3)) : TextWidth.columns(of: name)
            row.append((TextWidth.truncate(name, to: nameWidth, ellipsis: g.ellipsis), off ? t.dim : t.text))
            if let it {
                let p = it.targetProbability
                if compact {
                    row.append((" \(g.barLeft)", t.dim))
                    row.append((Gauge.bar(p, width: 8, glyphs: g), t.targetBar))
                    row.append(("\(g.barRight)", t.dim))
                }
                row.append((" p \(Fmt.p(p))", t.text.with(.bold)))
                if it.step != step { row.append((" (step \(it.step + 1))", t.dim)) }
            } else {
                row.append((off ? "  off" : "  not evaluated yet", t.dim))
            }
            if let reading, let verdict = detectorVerdict(reading, edge: e, probability: it?.targetProbability, theme: t) {
                let before = row.reduce(0) { $0 + TextWidth.columns(of: $1.0) }
                row += Flex.fit([verdict], width: inner.width - before)
            }
            let used = row.reduce(0) { $0 + TextWidth.columns(of: $1.0) } + 2
            let room = inner.width - used
            if room >= 4 {
                let history = run.targetHistory(edge: e)
                let upTo = Array(history.prefix(max(0, step + 1)))
                row.append(("  " + Gauge.sparkline(Array(upTo.suffix(room)), glyphs: g), t.spark))
            }
            return row
        }

        func bars(_ e: Int) -> [[(String, Style)]] {
            guard let it = run.latestIteration(edge: e, atOrBefore: step) else { return [] }
            let target = graph.edges[e].relation?.classIndex ?? -1
            var out: [[(String, Style)]] = []
            for (k, name) in SpatialRelation.classNames.enumerated() {
                let p = k < it.probabilities.count ? it.probabilities[k] : 0
                let label = TextWidth.pad("  " + (SpatialRelation(classIndex: k)?.displayName ?? name), to: labelWidth)
                let isTarget = k == target
                out.append([(label, isTarget ? t.text.with(.bold) : t.dim), (String(g.barLeft), t.dim),
                            (Gauge.bar(p, width: barWidth, glyphs: g), isTarget ? t.targetBar : t.bar),
                            (String(g.barRight), t.dim), (" " + Fmt.p(p), isTarget ? t.text.with(.bold) : t.text),
                            (isTarget ? " target" : "", t.good)])
            }
            let used = atStep.filter { $0.edge == e }.count
            // Shorten "iterations at this step" first, then drop the note, then the iterations.
            // An observed (unsteered) run computes no gradient: its norm reads 0 and is left out (a
            // steered iteration with a zero gradient says so in its note).
            let grad = it.gradientNorm == 0 ? "" : "  |grad| \(Fmt.sci(it.gradientNorm))"
            let parts = [Flex(["  loss \(Fmt.loss(it.loss))" + grad], t.dim),
                         Flex(["  iterations at this step: \(used)", "  iters \(used)", ""], t.dim),
                         Flex(it.note.map { ["  (\($0))", ""] } ?? [""], t.dim)]
            out.append(Flex.fit(parts, width: inner.width, shrinkOrder: [1, 2, 1]))
            return out
        }

        if full {
            for e in edges {
                lines.append(header(e, compact: false))
                lines.append(contentsOf: bars(e))
            }
        } else {
            for e in edges { lines.append(header(e, compact: true)) }
            let sel = s.selectedEdge.flatMap { edges.contains($0) ? $0 : nil } ?? edges[0]
            if inner.height - lines.count >= 3 {
                var b = bars(sel)
                let room = inner.height - lines.count
                if b.count > room {
                    // Keep the target class's bar and the loss line when space is short.
                    let target = graph.edges[sel].relation?.classIndex ?? 0
                    let keep = [target] + (0..<5).filter { $0 != target }
                    let chosen = Array(keep.prefix(max(0, room - 1))).sorted()
                    b = chosen.map { b[$0] } + [b[5]]
                }
                lines.append(contentsOf: b)
            }
        }
        let total = atStep.count
        if step >= 0 && total == 0 && lines.count < inner.height {
            let sched = run.settings.steering
            let why = !run.steersSomething && run.settings.steered
                ? "nothing to steer: no relation is on (d switches the selected one on)"
                : step < sched.startStep || step >= sched.endStep
                ? "step \(step + 1) is outside the steering range [\(sched.startStep), \(sched.endStep)): no evaluation"
                : "no classifier evaluation at step \(step + 1)"
            lines.append([(why, t.dim)])
        }
        draw(lines, in: inner, grid: &grid, theme: t)
    }
}
