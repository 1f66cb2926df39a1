// The relation-graph pane: the parsed objects and relations, in round-robin order.
// A pure function from the view state to cells in its rectangle (see Widgets.swift).

import Foundation
import Steering

extension Widgets {
    // MARK: Relation graph

    static func relations(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
        let focused = s.mode == .command && s.focus == .relations
        let inner = grid.box(r, title: "Relations \(s.theme.glyphs.sectionDot) round-robin", tag: focused ? "j/k J/K d" : "",
                             theme: s.theme, focused: focused)
        guard !inner.isEmpty else { return }
        let t = s.theme, g = t.glyphs
        var lines: [[(String, Style)]] = []
        func wrapped(_ prefix: String, _ text: String, _ style: Style) {
            let pw = TextWidth.columns(of: prefix)
            for (i, l) in Wrap.lines(text, width: max(1, inner.width - pw)).enumerated() {
                lines.append([(i == 0 ? prefix : String(repeating: " ", count: pw), style), (l, style)])
            }
        }
        if let err = s.graphError {
            wrapped("\(g.warning) ", err, t.error)
            if s.run == nil || s.run?.prompt != s.prompt.text { wrapped("  ", "Nothing was sampled; fix the prompt and press Enter.", t.dim) }
        } else if let graph = s.graph {
            let names = graph.objects.map { o in s.vocabulary != nil && o.vocabularyName == nil ? "\(o.name)?" : o.name }
            wrapped("objects: ", names.isEmpty ? "none" : names.joined(separator: ", "), t.dim)
            let steeringNow = s.run?.steersSomething == true && (s.run?.phase.isActive == true || s.viewStep != nil) ? s.shownIteration?.edge : nil
            let contradicted = Set(graph.contradictions.flatMap(\.edges))
            for e in s.orderedEdges {
                let edge = graph.edges[e]
                let selected = s.selectedEdge == e
                let off = s.settings.disabled.contains(e)
                let head = [(selected ? String(g.pointer) : " ", selected ? t.accent : t.text), ("\(e + 1) ", t.dim)]
                let labelStyle = edge.relation == nil || off ? t.dim : (selected ? t.text.with(.bold) : t.text)
                // Flags shorten to their glyphs when the row is narrow; then the label gets an ellipsis.
                var flags: [Flex] = []
                if edge.relation == nil { flags.append(Flex(["  \(g.warning) not steerable", "  \(g.warning)"], t.warning)) }
                if off { flags.append(Flex(["  off"], t.warning)) }
                if contradicted.contains(e) { flags.append(Flex(["  \(g.cross) contradiction", "  \(g.cross)"], t.error)) }
                if steeringNow == e { flags.append(Flex(["  \(g.steering) steering", "  \(g.steering)"], t.good)) }
                let label = s.edgeLabel(e)
                let room = inner.width - 1 - TextWidth.columns(of: "\(e + 1) ")
                let fitted = Flex.fit(flags, width: max(0, room - TextWidth.columns(of: label)))
                let flagWidth = fitted.reduce(0) { $0 + TextWidth.columns(of: $1.0) }
                lines.append(head + [(TextWidth.truncate(label, to: max(1, room - flagWidth), ellipsis: g.ellipsis), labelStyle)] + fitted)
            }
            if graph.edges.isEmpty { lines.append([("  no relation between the objects", t.dim)]) }
            let active = s.settings.activeOrder
            if !active.isEmpty {
                var orderText = "order: " + active.map { "\($0 + 1)" }.joined(separator: " \(g.arrow) ")
                if let it = s.shownIteration, s.run?.phase.isActive == true, let i = active.firstIndex(of: it.edge) {
                    orderText += "   next: \(active[(i + 1) % active.count] + 1)"
                }
                lines.append([(orderText, s.orderPending ? t.pending : t.dim), (s.orderPending ? " (pending)" : "", t.pending)])
            }
            for c in graph.contradictions { wrapped("\(g.cross) ", c.message, t.error) }
            for w in graph.warnings {
                if case .unsupportedRelation = w { continue }
                wrapped("\(g.warning) ", w.description, t.warning)
            }
            for n in s.graphNotes { wrapped("\(g.warning) ", n, t.warning) }
            if s.settings.activeOrder.isEmpty && !graph.edges.isEmpty || graph.order.isEmpty {
                wrapped("  ", "nothing to steer: the sampler runs unsteered", t.dim)
            }
        } else if case .unavailable(let why) = s.engineStatus {
            wrapped("\(g.warning) ", "Model unavailable: \(why)", t.warning)
        } else {
            wrapped("", "No prompt yet. Type one above and press Enter; the parsed objects and relations appear here.", t.dim)
        }
        draw(lines, in: inner, grid: &grid, theme: t)
    }
}
