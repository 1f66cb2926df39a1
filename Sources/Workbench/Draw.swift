// Drawing helpers shared by the widgets: boxes, wrapped text, bars, sparklines, heatmap cells.

extension CellGrid {
    /// Draws a box border with a title (and an optional right-hand tag); returns the inner rectangle.
    @discardableResult
    mutating func box(_ r: Rect, title: String, tag: String = "", theme: Theme, focused: Bool = false) -> Rect {
        guard r.width >= 2, r.height >= 2 else { fill(r); return .zero }
        let g = theme.glyphs
        let style = focused ? theme.focusedBorder : theme.border
        fill(r)
        for x in (r.x + 1)..<(r.maxX - 1) {
            set(x: x, y: r.y, Cell(g.horizontal, style: style))
            set(x: x, y: r.maxY - 1, Cell(g.horizontal, style: style))
        }
        for y in (r.y + 1)..<(r.maxY - 1) {
            set(x: r.x, y: y, Cell(g.vertical, style: style))
            set(x: r.maxX - 1, y: y, Cell(g.vertical, style: style))
        }
        set(x: r.x, y: r.y, Cell(g.topLeft, style: style))
        set(x: r.maxX - 1, y: r.y, Cell(g.topRight, style: style))
        set(x: r.x, y: r.maxY - 1, Cell(g.bottomLeft, style: style))
        set(x: r.maxX - 1, y: r.maxY - 1, Cell(g.bottomRight, style: style))
        let room = r.width - 4
        let titleWidth = TextWidth.columns(of: title) + 2
        var tagWidth = 0
        if !tag.isEmpty {
            let t = " " + tag + " "
            let w = TextWidth.columns(of: t, ascii: ascii)
            // The tag only shows when the whole title fits beside it.
            if titleWidth + 1 + w <= room {
                tagWidth = w
                text(t, x: r.maxX - 2 - tagWidth, y: r.y, style: focused ? theme.focusedBorder : theme.dim)
            }
        }
        if room > 2 {
            let avail = room - (tagWidth > 0 ? tagWidth + 1 : 0)
            let t = " " + TextWidth.truncate(title, to: avail - 2, ellipsis: g.ellipsis) + " "
            text(t, x: r.x + 2, y: r.y, style: focused ? theme.focusedBorder : theme.title, maxWidth: avail)
        }
        return r.inset(1)
    }

    /// Draws segments left to right on one line, clipped to `clip`; returns the x after the last one.
    @discardableResult
    mutating func segments(_ parts: [(String, Style)], x: Int, y: Int, clip: Rect) -> Int {
        var cx = x
        for (t, s) in parts {
            guard cx < clip.maxX else { break }
            cx += text(t, x: cx, y: y, style: s, clip: clip)
        }
        return cx
    }
}

/// Word wrapping by columns.
enum Wrap {
    /// Splits `text` into lines of at most `width` columns, breaking at spaces (long words are cut).
    static func lines(_ text: String, width: Int) -> [String] {
        guard width > 0 else { return [] }
        var out: [String] = []
        var line = ""
        var used = 0
        for word in text.split(separator: " ", omittingEmptySubsequences: true).map(String.init) {
            var w = word
            var ww = TextWidth.columns(of: w)
            if used > 0 && used + 1 + ww <= width {
                line += " " + w
                used += 1 + ww
                continue
            }
            if used > 0 { out.append(line); line = ""; used = 0 }
            while ww > width {
                let head = TextWidth.truncate(w, to: width, ellipsis: "")
                out.append(head)
                w = String(w.dropFirst(head.count))
                ww = TextWidth.columns(of: w)
            }
            line = w
            used = ww
        }
        if used > 0 || out.isEmpty { out.append(line) }
        return out
    }
}

/// Bars, sparklines and heatmap helpers.
enum Gauge {
    /// A horizontal bar of `width` cells for a value in 0…1, with eighth-block resolution.
    static func bar(_ value: Float, width: Int, glyphs: Glyphs) -> String {
        guard width > 0 else { return "" }
        let v = value.isFinite ? min(max(value, 0), 1) : 0
        let eighths = Int((v * Float(width * 8)).rounded())
        let full = eighths / 8, part = eighths % 8
        var s = String(repeating: glyphs.barEighths[7], count: full)
        if part > 0 && full < width { s.append(glyphs.barEighths[part - 1]) }
        return s + String(repeating: " ", count: max(0, width - TextWidth.columns(of: s)))
    }

    /// A sparkline of values in 0…1 (nil: a gap), one column per value.
    static func sparkline(_ values: [Float?], glyphs: Glyphs) -> String {
        var s = ""
        for v in values {
            guard let v, v.isFinite else { s.append(" "); continue }
            let level = Int((min(max(v, 0), 1) * 7).rounded())
            s.append(glyphs.sparkLevels[level])
        }
        return s
    }

    /// A density glyph for a level in 0…1.
    static func density(_ level: Float, glyphs: Glyphs) -> Character {
        let n = glyphs.density.count
        let i = Int((min(max(level.isFinite ? level : 0, 0), 1) * Float(n - 1)).rounded())
        return glyphs.density[i]
    }

    /// The LUT entry for a level in 0…1.
    static func lutIndex(_ level: Float, lut: [UInt8]) -> UInt8 {
        let i = Int((min(max(level.isFinite ? level : 0, 0), 1) * Float(lut.count - 1)).rounded())
        return lut[i]
    }

    /// Resamples a square float map (row-major, side×side) to `w`×`h` by area averaging (exact for
    /// whole-factor enlargements).
    static func resample(_ map: [Float], side: Int, width w: Int, height h: Int) -> [Float] {
        guard side > 0, w > 0, h > 0, map.count >= side * side else { return [] }
        let xw = ImageFitter.weights(source: side, output: w), yw = ImageFitter.weights(source: side, output: h)
        var out = [Float](repeating: 0, count: w * h)
        for oy in 0..<h {
            for ox in 0..<w {
                var acc = 0.0
                for (sy, a) in yw[oy] { for (sx, b) in xw[ox] { acc += Double(map[sy * side + sx]) * a * b } }
                out[oy * w + ox] = Float(acc)
            }
        }
        return out
    }
}

/// A piece of a one-line label with shorter forms, longest first (an empty form drops it), so a
/// label is fitted to its width deliberately ("● steering" → "●") instead of being cut mid-word.
struct Flex {
    var forms: [[(String, Style)]]
    init(_ forms: [String], _ style: Style) { self.forms = forms.map { [($0, style)] } }
    init(segments forms: [[(String, Style)]]) { self.forms = forms }

    /// Chooses a form per piece so the line fits `width` columns. `shrinkOrder` lists piece indices,
    /// one entry per step down to the next shorter form (default: the last piece first, all the way,
    /// then the one before). Pieces without shorter forms stay as they are; the result may still be
    /// too wide, and the caller clips.
    static func fit(_ parts: [Flex], width: Int, shrinkOrder: [Int]? = nil) -> [(String, Style)] {
        var choice = [Int](repeating: 0, count: parts.count)
        func columns() -> Int {
            zip(parts, choice).reduce(0) { acc, pc in acc + pc.0.forms[pc.1].reduce(0) { $0 + TextWidth.columns(of: $1.0) } }
        }
        let order = shrinkOrder ?? parts.indices.reversed().flatMap { i in Array(repeating: i, count: max(0, parts[i].forms.count - 1)) }
        for i in order where columns() > width {
            if parts.indices.contains(i) && choice[i] + 1 < parts[i].forms.count { choice[i] += 1 }
        }
        return zip(parts, choice).flatMap { $0.0.forms[$0.1] }
    }
}
