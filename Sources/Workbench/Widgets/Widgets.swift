// The panes: pure functions from the view state to cells in a rectangle. Each clips to its rectangle
// and copes with any size (down to nothing). This file holds the namespace, the number formats and
// the label helpers the panes share; each pane is its own file beside it.

import Foundation
import Steering

/// Number formats shared by the panes.
enum Fmt {
    static func p(_ v: Float) -> String { v.isFinite ? String(format: "%.2f", v) : "nan" }
    static func loss(_ v: Float) -> String {
        guard v.isFinite else { return "nan" }
        return abs(v) >= 0.001 || v == 0 ? String(format: "%.3f", v) : String(format: "%.1e", v)
    }
    static func sci(_ v: Float) -> String { v.isFinite ? String(format: "%.1e", v) : "nan" }
    /// Two decimals for values ≥ 0.01, else three significant digits ("4.2e-03"), so small maps still read.
    static func value(_ v: Float) -> String {
        guard v.isFinite else { return "nan" }
        return v == 0 || abs(v) >= 0.01 ? String(format: "%.2f", v) : String(format: "%.1e", v)
    }
    static func seconds(_ s: Double) -> String {
        if s < 60 { return String(format: "%.0fs", s.rounded(.up)) }
        return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60)
    }
}

/// Relation labels.
extension ViewState {
    /// "dog —right of→ teddy bear" for an edge (unsupported: the phrase as written).
    func edgeLabel(_ e: Int, arrows: Bool = true) -> String {
        guard let g = graph, g.edges.indices.contains(e) else { return "?" }
        let edge = g.edges[e]
        let s = g.objects.indices.contains(edge.subject) ? g.objects[edge.subject].name : "?"
        let o = g.objects.indices.contains(edge.object) ? g.objects[edge.object].name : "?"
        let rel = edge.relation?.displayName ?? edge.phrase.lowercased()
        if !arrows { return "\(s) \(rel) \(o)" }
        return "\(s) \(theme.glyphs.dash)\(rel)\(theme.glyphs.arrow) \(o)"
    }

    /// The iteration the attention and graph panes show: the selected relation's newest at the shown
    /// step, else the newest at that step, else the newest before it.
    var shownIteration: IterationRecord? {
        guard let r = run, let step = shownStep ?? (r.iterations.isEmpty ? nil : r.iterations.last!.step) else { return nil }
        let at = r.iterations(at: step)
        if let e = selectedEdge, let it = at.last(where: { $0.edge == e }) { return it }
        if let it = at.last { return it }
        return r.iterations.last { $0.step <= step }
    }
}

/// The panes.
enum Widgets {
    // One file per pane in this folder (Widgets/<Pane>.swift); shared helpers stay here.

    /// Draws prepared lines, with a "… n more" last line when they do not fit.
    static func draw(_ lines: [[(String, Style)]], in inner: Rect, grid: inout CellGrid, theme: Theme) {
        var shown = lines
        if lines.count > inner.height && inner.height > 0 {
            shown = Array(lines.prefix(inner.height - 1))
            shown.append([("\(theme.glyphs.ellipsis) \(lines.count - inner.height + 1) more", theme.dim)])
        }
        for (i, row) in shown.prefix(inner.height).enumerated() {
            grid.segments(row, x: inner.x, y: inner.y + i, clip: inner)
        }
    }
}
