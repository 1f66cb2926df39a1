// The attention pane: the subject and object cross-attention maps of the shown iteration.
// A pure function from the view state to cells in its rectangle (see Widgets.swift).

import Foundation
import Imaging
import Steering

extension Widgets {
    // MARK: Attention

    static func attention(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
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
        let lo = map.min() ?? 0, hi = map.max() ?? 0
        let lut = t.colormap.lut
        // True pixels: the map as an image over blank cells (the backend writes it after the frame).
        if s.graphics != .blocks,
           let img = attentionImage(map, colormap: t.colormap, box: PixelBox(width: inner.width, height: mapRows * 2),
                                    cell: s.cellSize, protocol: s.graphics) {
            let rect = Rect(x: inner.x + max(0, (inner.width - img.columns) / 2), y: inner.y, width: img.columns, height: min(img.rows, mapRows))
            grid.images.append(ImagePlacement(rect: rect, image: img))
        } else {
            attentionCells(map, side: side, lut: lut, inner: inner, mapRows: mapRows, theme: t, grid: &grid)
        }
        attentionLegend(s, it, lo: lo, hi: hi, inner: inner, grid: &grid)
    }

    /// The map in cells: half-blocks (two map pixels a cell) with the 256 palette, else one coloured
    /// cell per 1×2 area, else density glyphs.
    static func attentionCells(_ map: [Float], side: Int, lut: [UInt8], inner: Rect, mapRows: Int, theme t: Theme, grid: inout CellGrid) {
        let g = t.glyphs
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
    }

    /// The legend (min, a ramp of the colours or glyphs, max) and the info line under the map.
    static func attentionLegend(_ s: ViewState, _ it: IterationRecord, lo: Float, hi: Float, inner: Rect, grid: inout CellGrid) {
        let t = s.theme, g = t.glyphs, lut = t.colormap.lut
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

    /// The map as RGB pixels: each value normalised to the map's range and coloured with `colormap`
    /// (the RGB of its palette entries, the colours the half-blocks show), `scale`×`scale` pixels per
    /// map cell (nearest neighbour, so a terminal's own scaling keeps the cells crisp). Row-major,
    /// side×side for a side² map.
    static func attentionPixels(_ map: [Float], colormap: Colormap, scale: Int = 1) -> RGBImage {
        let side = Int(Double(map.count).squareRoot()), k = max(1, scale)
        guard side > 0, map.count == side * side else { return RGBImage(width: 0, height: 0, pixels: []) }
        let lo = map.min() ?? 0, hi = map.max() ?? 0, span = hi - lo
        let lut = colormap.lut
        let colours: [[UInt8]] = map.map { v in
            let (r, g, b) = Palette.rgb(Int(Gauge.lutIndex(span > 0 ? (v - lo) / span : 0, lut: lut)))
            return [UInt8(r), UInt8(g), UInt8(b)]
        }
        let n = side * k
        var px = [UInt8](repeating: 0, count: n * n * 3)
        for y in 0..<n {
            for x in 0..<n {
                let c = colours[(y / k) * side + x / k]
                let i = 3 * (y * n + x)
                px[i] = c[0]; px[i + 1] = c[1]; px[i + 2] = c[2]
            }
        }
        return RGBImage(width: n, height: n, pixels: px)
    }

    /// The kitty image id of the attention map (the preview's are 1–3).
    static let attentionImageID = 4

    /// The attention map encoded for a true-pixel protocol, fitted square into `box` (columns ×
    /// half-rows, as for the preview): kitty and iTerm2 get the map enlarged by a whole factor to at
    /// most 128 px and scale it to the cells; sixel gets it at the cells' resolution. Deterministic in
    /// its arguments; the last few encodings are remembered, since the pane redraws every frame.
    static func attentionImage(_ map: [Float], colormap: Colormap, box: PixelBox, cell: PixelBox, protocol p: GraphicsProtocol) -> GraphicsImage? {
        let side = Int(Double(map.count).squareRoot())
        guard p != .blocks, side > 0, map.count == side * side else { return nil }
        let key = AttentionImageKey(map: map, colormap: colormap, box: box, cell: cell, protocol: p)
        if let hit = attentionImages.get(key) { return hit }
        let source = attentionPixels(map, colormap: colormap, scale: p == .sixel ? 1 : max(1, 128 / side))
        let img = GraphicsImage.make(source, box: box, cell: cell, protocol: p, id: attentionImageID)
        if let img { attentionImages.put(key, img) }
        return img
    }

    static let attentionImages = EncodedImages()
}

struct AttentionImageKey: Hashable {
    var map: [Float]
    var colormap: Colormap
    var box: PixelBox
    var cell: PixelBox
    var `protocol`: GraphicsProtocol
}

/// A few recent encodings (a memo: the same arguments always give the same image).
final class EncodedImages: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [AttentionImageKey: GraphicsImage] = [:]
    func get(_ k: AttentionImageKey) -> GraphicsImage? { lock.lock(); defer { lock.unlock() }; return entries[k] }
    func put(_ k: AttentionImageKey, _ v: GraphicsImage) {
        lock.lock(); defer { lock.unlock() }
        if entries.count >= 8 { entries.removeAll() }
        entries[k] = v
    }
}
