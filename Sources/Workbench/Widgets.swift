// The panes: pure functions from the view state to cells in a rectangle. Each clips to its rectangle
// and copes with any size (down to nothing).

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
    public func edgeLabel(_ e: Int, arrows: Bool = true) -> String {
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
    public var shownIteration: IterationRecord? {
        guard let r = run, let step = shownStep ?? (r.iterations.isEmpty ? nil : r.iterations.last!.step) else { return nil }
        let at = r.iterations(at: step)
        if let e = selectedEdge, let it = at.last(where: { $0.edge == e }) { return it }
        if let it = at.last { return it }
        return r.iterations.last { $0.step <= step }
    }
}

/// The panes.
public enum Widgets {
    // MARK: Prompt

    public static func prompt(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
        let editing = s.mode == .prompt
        let inner = grid.box(r, title: "Prompt", tag: editing ? "editing · Esc for keys" : "e to edit", theme: s.theme, focused: editing)
        guard !inner.isEmpty else { return }
        let line = Rect(x: inner.x + 1, y: inner.y, width: inner.width - 2, height: 1)
        guard line.width > 0 else { return }
        if s.prompt.isEmpty {
            let hint = "type a prompt, e.g. \"\(s.examplePrompt)\" and press Enter"
            grid.text(TextWidth.truncate(hint, to: line.width, ellipsis: s.theme.glyphs.ellipsis), x: line.x, y: line.y, style: s.theme.dim, clip: line)
            if editing { grid.cursor = (line.x, line.y) }
            return
        }
        let (start, col) = s.prompt.viewport(width: line.width)
        let visible = String(s.prompt.characters[start...])
        grid.text(visible, x: line.x, y: line.y, clip: line)
        if start > 0 { grid.text(s.theme.glyphs.ellipsis, x: inner.x, y: line.y, style: s.theme.dim, clip: inner) }
        if TextWidth.columns(of: visible) > line.width {
            grid.text(s.theme.glyphs.ellipsis, x: line.maxX, y: line.y, style: s.theme.dim, clip: inner)
        }
        if editing { grid.cursor = (line.x + min(col, line.width - 1), line.y) }
    }

    // MARK: Relation graph

    public static func relations(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
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

    // MARK: Classifier

    public static func classifier(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
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
        let full = inner.height >= edges.count * 7 + 1
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
            let parts = [Flex(["  loss \(Fmt.loss(it.loss))  |grad| \(Fmt.sci(it.gradientNorm))"], t.dim),
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
            let sched = run.settings.schedule
            let why = !run.steersSomething && run.settings.steered
                ? "nothing to steer: no relation is on (d switches the selected one on)"
                : step < sched.startStep || step >= sched.endStep
                ? "step \(step + 1) is outside the steering range [\(sched.startStep), \(sched.endStep)): no evaluation"
                : "no classifier evaluation at step \(step + 1)"
            lines.append([(why, t.dim)])
        }
        draw(lines, in: inner, grid: &grid, theme: t)
    }

    // MARK: Attention

    public static func attention(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
        let t = s.theme, g = t.glyphs
        let focused = s.mode == .command && s.focus == .attention
        let it = s.shownIteration
        var title = "Attention"
        var name = ""
        if let it, let graph = s.graph, graph.edges.indices.contains(it.edge) {
            let edge = graph.edges[it.edge]
            let idx = s.token == .subject ? edge.subject : edge.object
            name = graph.objects.indices.contains(idx) ? graph.objects[idx].name : "?"
        }
        let tag = focused ? "←/→ step ↑/↓ token" : ""
        if !name.isEmpty {
            // "Attention · red circle (subject)", else "(subj)", else just the name, else the word alone.
            let forms = [" \(g.sectionDot) \(name) (\(s.token.rawValue))", " \(g.sectionDot) \(name) (\(s.token == .subject ? "subj" : "obj"))",
                         " \(g.sectionDot) \(name)", ""]
            let room = r.width - 6 - (tag.isEmpty ? 0 : TextWidth.columns(of: tag) + 3)
            title = Flex.fit([Flex(["Attention"], t.title), Flex(forms, t.title)], width: room).map(\.0).joined()
        }
        let inner = grid.box(r, title: title, tag: tag, theme: t, focused: focused)
        guard !inner.isEmpty else { return }
        guard let it else {
            draw(Wrap.lines(s.run == nil ? "No run yet." : "No maps yet: maps come from the classifier's evaluations (steered steps).",
                            width: inner.width).map { [($0, t.dim)] }, in: inner, grid: &grid, theme: t)
            return
        }
        let map = it.map(s.token, layer: s.mapLayer, head: s.mapHead)
        let side = Int(Double(map.count).squareRoot())
        let mapRows = inner.height - 2
        guard side > 0, mapRows >= 1, inner.width >= 4 else {
            draw([[("map \(side)×\(side)", t.dim)]], in: inner, grid: &grid, theme: t)
            return
        }
        let halfBlocks = t.tier == .palette256 && !g.ascii
        let boxW = inner.width, boxH = halfBlocks ? mapRows * 2 : mapRows
        // Square pixels: with half-blocks a cell is 1×2 pixels (about square); otherwise 1 cell per 1×2 area.
        let (pw, ph): (Int, Int)
        if halfBlocks {
            (pw, ph) = ImageFitter.fittedSize(width: side, height: side, boxWidth: boxW, boxHeight: boxH)
        } else {
            let (w2, h2) = ImageFitter.fittedSize(width: side, height: side, boxWidth: boxW, boxHeight: boxH * 2)
            (pw, ph) = (w2, max(1, h2 / 2))
        }
        let pixels = Gauge.resample(map, side: side, width: pw, height: ph)
        let lo = map.min() ?? 0, hi = map.max() ?? 0
        let span = hi - lo
        func level(_ v: Float) -> Float { span > 0 ? (v - lo) / span : 0 }
        let lut = t.colormap.lut
        let ox = inner.x + max(0, (inner.width - pw) / 2)
        let rows = halfBlocks ? (ph + 1) / 2 : ph
        for row in 0..<min(rows, mapRows) {
            for x in 0..<pw {
                let y = inner.y + row
                if halfBlocks {
                    let up = level(pixels[(2 * row) * pw + x])
                    let hasLow = 2 * row + 1 < ph
                    let low = hasLow ? level(pixels[(2 * row + 1) * pw + x]) : 0
                    let fg = TermColor(Int(Gauge.lutIndex(up, lut: lut)))
                    let bg = hasLow ? TermColor(Int(Gauge.lutIndex(low, lut: lut))) : .default
                    grid.set(x: ox + x, y: y, Cell(g.upperHalf, style: Style(fg: fg, bg: bg)))
                } else if t.tier == .palette256 {
                    let c = TermColor(Int(Gauge.lutIndex(level(pixels[row * pw + x]), lut: lut)))
                    grid.set(x: ox + x, y: y, Cell(" ", style: Style(bg: c)))
                } else {
                    grid.set(x: ox + x, y: y, Cell(Gauge.density(level(pixels[row * pw + x]), glyphs: g)))
                }
            }
        }
        // Legend: min, a ramp of the colours (or glyphs), max.
        let ly = inner.maxY - 2
        let minText = "min \(Fmt.value(lo)) ", maxText = " max \(Fmt.value(hi))"
        let mapName = t.tier == .palette256 ? " \(t.colormap.rawValue)" : ""
        // The ramp takes what the numbers leave (the colormap's name goes first when room is short).
        let numbers = TextWidth.columns(of: minText) + TextWidth.columns(of: maxText)
        let showName = inner.width - numbers - TextWidth.columns(of: mapName) >= 6
        var x = grid.segments([(minText, t.dim)], x: inner.x, y: ly, clip: inner)
        let rampWidth = max(0, min(16, inner.width - numbers - (showName ? TextWidth.columns(of: mapName) : 0)))
        for i in 0..<rampWidth {
            let v = rampWidth > 1 ? Float(i) / Float(rampWidth - 1) : 0
            if t.tier == .palette256 {
                grid.set(x: x + i, y: ly, Cell(" ", style: Style(bg: TermColor(Int(Gauge.lutIndex(v, lut: lut))))))
            } else {
                grid.set(x: x + i, y: ly, Cell(Gauge.density(v, glyphs: g)))
            }
        }
        x += rampWidth
        grid.segments([(maxText, t.dim), (showName ? mapName : "", t.dim)], x: x, y: ly, clip: inner)
        let total = s.run?.totalSteps ?? 0
        // Which channels: all layers, or layer L (its place and native size), all heads or head h.
        var channels = ""
        if let l = s.mapLayer, let stack = it.subjectStack, stack.layers.indices.contains(l) {
            let layer = stack.layers[l]
            channels = " L\(l + 1)/\(stack.layers.count) \(layer.place.rawValue)\(layer.resolution)"
            channels += s.mapHead.map { " h\($0 + 1)/\(layer.heads)" } ?? " h*"
        }
        // The key hints go first when room is short, then the iteration and relation numbers.
        let info = [Flex(["step \(it.step + 1)/\(total)"], t.text),
                    Flex([" it \(it.iteration + 1) rel \(it.edge + 1)", ""], t.text),
                    Flex([channels], t.pending),
                    Flex([s.viewStep == nil ? "" : " (scrubbed)"], t.pending),
                    Flex(segments: [[("  t", t.keyName), (" token ", t.dim), (",/.", t.keyName), (" step", t.dim)],
                                    [("  t", t.keyName), (" token", t.dim)], []])]
        grid.segments(Flex.fit(info, width: inner.width, shrinkOrder: [4, 4, 1]), x: inner.x, y: inner.maxY - 1, clip: inner)
    }

    // MARK: Preview

    /// The images the preview pane shows, left to right: (picture, caption, source image).
    public static func previewPictures(_ s: ViewState) -> [(FitKey.Picture, String, RGBImage, Int)] {
        guard let run = s.run else { return [] }
        var out: [(FitKey.Picture, String, RGBImage, Int)] = []
        if let step = s.shownStep, run.steps.indices.contains(step) {
            out.append((.step(step), "\(s.theme.glyphs.predicted) step \(step + 1)", run.steps[step].preview, run.id))
        }
        if let f = run.final {
            out.append((.final, "final (\(run.steeringLabel))", f, run.id))
        }
        if let other = s.abCounterpart {
            out.append((.other, "A/B: \(other.steered ? "steered" : "unsteered")", other.image, other.runID))
        }
        return out
    }

    /// The pixel box each preview slot offers in a pane: its columns × 2·rows in every tier (a cell
    /// is about 1×2 pixels; half-blocks draw both, the other tiers one colour or glyph per pair), so
    /// the image keeps its aspect ratio whatever the tier.
    public static func previewBox(inner: Rect, count: Int, theme: Theme) -> PixelBox {
        let n = max(1, count)
        let colW = (inner.width - 2 * (n - 1)) / n
        return PixelBox(width: colW, height: (inner.height - 1) * 2)
    }

    /// Draws the preview pane; returns the fitted images it needed but did not have.
    @discardableResult
    public static func preview(_ s: ViewState, in r: Rect, grid: inout CellGrid) -> [FitRequest] {
        let t = s.theme
        let pictures = previewPictures(s)
        var title = "Preview"
        if let step = s.shownStep, let run = s.run { title += " \(t.glyphs.sectionDot) \(t.glyphs.predicted) at step \(step + 1)/\(run.totalSteps)" }
        let inner = grid.box(r, title: title, tag: "s save", theme: t)
        guard !inner.isEmpty else { return [] }
        guard !pictures.isEmpty else {
            draw([[(s.run == nil ? "No image yet." : "Waiting for the first step…", t.dim)]], in: inner, grid: &grid, theme: t)
            return []
        }
        var wants: [FitRequest] = []
        let n = pictures.count
        let box = previewBox(inner: inner, count: n, theme: t)
        guard box.width >= 2, box.height >= 2 else { return [] }
        for (i, (picture, caption, source, runID)) in pictures.enumerated() {
            let x0 = inner.x + i * (box.width + 2)
            let key = FitKey(run: runID, picture: picture, box: box)
            let capRect = Rect(x: x0, y: inner.maxY - 1, width: box.width, height: 1)
            grid.text(TextWidth.truncate(caption, to: box.width, ellipsis: t.glyphs.ellipsis), x: x0, y: capRect.y, style: t.dim, clip: capRect)
            guard let img = s.fitted[key], s.graphics == .blocks || img.graphics != nil else {
                wants.append(FitRequest(key: key, source: source))
                // True pixels: until this step's image is encoded, the nearest encoded step stays (no flicker).
                if s.graphics != .blocks, case .step(let k) = picture, let g = nearestEncodedStep(to: k, run: runID, box: box, in: s.fitted) {
                    place(g, x0: x0, box: box, inner: inner, grid: &grid)
                } else {
                    grid.text("fitting" + t.glyphs.ellipsis, x: x0, y: inner.y, style: t.dim, clip: inner)
                }
                continue
            }
            if s.graphics != .blocks, let g = img.graphics {
                place(g, x0: x0, box: box, inner: inner, grid: &grid)
                continue
            }
            drawImage(img, x: x0 + max(0, (box.width - img.width) / 2), y: inner.y, maxRows: inner.height - 1,
                      grid: &grid, theme: t)
        }
        return wants
    }

    /// A true-pixel image over its slot's cells, which stay blank for ncurses (centred like half-blocks).
    static func place(_ g: GraphicsImage, x0: Int, box: PixelBox, inner: Rect, grid: inout CellGrid) {
        let rect = Rect(x: x0 + max(0, (box.width - g.columns) / 2), y: inner.y, width: g.columns, height: min(g.rows, inner.height - 1))
        grid.images.append(ImagePlacement(rect: rect, image: g))
    }

    /// The encoded image of the step nearest `k` of a run in a box (the earlier one on ties), if any.
    static func nearestEncodedStep(to k: Int, run: Int, box: PixelBox, in fitted: [FitKey: FittedImage]) -> GraphicsImage? {
        var best: (distance: Int, step: Int, image: GraphicsImage)?
        for (key, img) in fitted where key.run == run && key.box == box {
            guard case .step(let j) = key.picture, let g = img.graphics else { continue }
            let d = abs(j - k)
            if best == nil || d < best!.distance || (d == best!.distance && j < best!.step) { best = (d, j, g) }
        }
        return best?.image
    }

    /// Draws a fitted image, one cell per column × two pixel rows: half-blocks (both pixels), else
    /// the upper pixel's colour, else a density glyph for the pair's mean luminance.
    static func drawImage(_ img: FittedImage, x: Int, y: Int, maxRows: Int, grid: inout CellGrid, theme t: Theme) {
        let g = t.glyphs
        let halfBlocks = t.tier != .none && !g.ascii
        let palette: [UInt8] = t.tier == .palette256 ? img.index256 : img.index8
        for row in 0..<min((img.height + 1) / 2, maxRows) {
            for px in 0..<img.width {
                let up = 2 * row * img.width + px
                let low = 2 * row + 1 < img.height ? up + img.width : -1
                let cell: Cell
                if halfBlocks {
                    let bg = low >= 0 ? TermColor(Int(palette[low])) : .default
                    cell = Cell(g.upperHalf, style: Style(fg: TermColor(Int(palette[up])), bg: bg))
                } else if t.tier != .none {
                    cell = Cell(" ", style: Style(bg: TermColor(Int(palette[up]))))
                } else {
                    let luma = low >= 0 ? (Int(img.luma[up]) + Int(img.luma[low])) / 2 : Int(img.luma[up])
                    cell = Cell(Gauge.density(Float(luma) / 255, glyphs: g))
                }
                grid.set(x: x + px, y: y + row, cell)
            }
        }
    }

    // MARK: Schedule

    public static func schedule(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
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
            let sched = run.settings.schedule
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

    // MARK: Status line and key bar

    public static func status(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
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

    public static func keyBar(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
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

    // MARK: Overlays

    public static func help(_ s: ViewState, size: Size, grid: inout CellGrid) {
        let t = s.theme
        let lines = Keymap.helpLines(ascii: t.glyphs.ascii)
        let w = min(size.width - 2, 76), h = min(size.height - 2, lines.count + 2)
        guard w >= 10, h >= 3 else { return }
        let r = Rect(x: (size.width - w) / 2, y: (size.height - h) / 2, width: w, height: h)
        let inner = grid.box(r, title: "Keys", tag: "? or Esc closes", theme: t, focused: true)
        let maxScroll = max(0, lines.count - inner.height)
        let top = min(s.helpScroll, maxScroll)
        let keyWidth = min(18, inner.width / 3)
        for (i, line) in lines.dropFirst(top).prefix(inner.height).enumerated() {
            let y = inner.y + i
            if line.isHeading {
                grid.text(line.text, x: inner.x + 1, y: y, style: t.title.with(.underline), clip: inner)
            } else {
                grid.text(line.keys, x: inner.x + 2, y: y, style: t.keyName, clip: inner, maxWidth: keyWidth)
                grid.text(line.text, x: inner.x + 3 + keyWidth, y: y, clip: inner)
            }
        }
        if maxScroll > 0 {
            let more = top < maxScroll ? "\(t.glyphs.ellipsis) ↓ more" : "top ↑"
            grid.text(" \(more) ", x: r.maxX - 12, y: r.maxY - 1, style: t.dim, clip: r)
        }
    }

    public static func tooSmall(_ s: ViewState, size: Size, grid: inout CellGrid) {
        let x = s.theme.glyphs.ascii ? "x" : "×"
        let msg = "Terminal too small: need \(Layout.minimum.width)\(x)\(Layout.minimum.height), have \(size.width)\(x)\(size.height). Enlarge the window; q quits."
        let lines = Wrap.lines(msg, width: max(1, size.width))
        let y0 = max(0, (size.height - lines.count) / 2)
        for (i, l) in lines.enumerated() where y0 + i < size.height {
            let x = max(0, (size.width - TextWidth.columns(of: l)) / 2)
            grid.text(l, x: x, y: y0 + i, style: i == 0 ? s.theme.warning : s.theme.text)
        }
    }
}

/// A fitted image the preview pane needs: the key and the source to fit.
public struct FitRequest: Sendable {
    public var key: FitKey
    public var source: RGBImage
}
