// Column widths, the cell grid and the drawing helpers.

import Testing
@testable import Workbench

@Suite struct TextWidthTests {
    @Test func asciiCJKAndEmojiWidths() {
        #expect(TextWidth.columns(of: "dog") == 3)
        #expect(TextWidth.columns(of: "猫") == 2)
        #expect(TextWidth.columns(of: "テディベア") == 10)
        #expect(TextWidth.columns(of: "🐶") == 2)
        #expect(TextWidth.columns(of: "한국어") == 6)
        // A combining accent adds nothing; "⚠️" (narrow base + VS16) is one column, as wcwidth says.
        #expect(TextWidth.columns(of: "e\u{301}") == 1)
        #expect(TextWidth.columns(of: "\u{26A0}\u{FE0F}") == 1)
        // Control characters are drawn as U+FFFD, one column.
        #expect(TextWidth.printable("\u{7}").0 == "\u{FFFD}")
        #expect(TextWidth.columns(of: "a\u{7}b") == 3)
    }

    @Test func truncateByColumnsNotCharacters() {
        #expect(TextWidth.truncate("猫猫猫", to: 5) == "猫猫…")
        #expect(TextWidth.truncate("猫猫猫", to: 4) == "猫…")
        #expect(TextWidth.truncate("abc", to: 3) == "abc")
        #expect(TextWidth.truncate("abcdef", to: 4, ellipsis: "~") == "abc~")
        #expect(TextWidth.truncate("abc", to: 0) == "")
        #expect(TextWidth.pad("猫", to: 4) == "猫  ")
    }

    @Test func wrapBreaksAtSpacesAndCutsLongWords() {
        #expect(Wrap.lines("a cat to the left of a dog", width: 10) == ["a cat to", "the left", "of a dog"])
        #expect(Wrap.lines("abcdefghij", width: 4) == ["abcd", "efgh", "ij"])
        #expect(Wrap.lines("", width: 4) == [""])
        #expect(Wrap.lines("猫猫猫 dog", width: 4) == ["猫猫", "猫", "dog"])
    }
}

@Suite struct CellGridTests {
    @Test func wideGraphemesTakeTwoCellsAndStayWhole() {
        var g = CellGrid(width: 6, height: 1)
        #expect(g.text("a猫b", x: 0, y: 0) == 4)
        #expect(g[1, 0].character == "猫" && g[1, 0].width == 2 && g[2, 0].width == 0)
        #expect(g.plainText() == "a猫b")
        // Overwriting the right half blanks the left half.
        g.set(x: 2, y: 0, Cell("x"))
        #expect(g.plainText() == "a xb")
        #expect(g[1, 0].character == " ")
    }

    @Test func wideGraphemeAtTheEdgeIsLeftOut() {
        var g = CellGrid(width: 3, height: 1)
        #expect(g.text("ab猫", x: 0, y: 0) == 2)
        #expect(g.plainText() == "ab")
    }

    @Test func textIsClipped() {
        var g = CellGrid(width: 5, height: 2)
        g.text("hello world", x: 2, y: 1, clip: Rect(x: 0, y: 1, width: 4, height: 1))
        #expect(g.plainText() == "\n  he")
        g.text("zzz", x: 0, y: 5)   // off the grid: nothing
        g.text("zzz", x: -2, y: 0)  // starts left of the grid: only the visible part
        #expect(g.row(0) == "z    ")
    }

    @Test func asciiGridReplacesNonASCII() {
        var g = CellGrid(width: 6, height: 1, ascii: true)
        g.text("a猫─b", x: 0, y: 0)
        #expect(g.plainText() == "a??b")
    }

    @Test func boxDrawsTitleAndReturnsInner() {
        var g = CellGrid(width: 20, height: 4)
        let inner = g.box(g.bounds, title: "Prompt", tag: "edit", theme: Theme(tier: .none, ascii: false))
        #expect(inner == Rect(x: 1, y: 1, width: 18, height: 2))
        #expect(g.row(0) == "┌─ Prompt ── edit ─┐")
        var a = CellGrid(width: 12, height: 3, ascii: true)
        a.box(a.bounds, title: "Keys", theme: Theme(tier: .none, ascii: true))
        #expect(a.plainText() == "+- Keys ---+\n|          |\n+----------+")
        // Too small for a box: nothing breaks.
        var tiny = CellGrid(width: 1, height: 1)
        #expect(tiny.box(tiny.bounds, title: "X", theme: Theme(tier: .none, ascii: false)) == .zero)
    }
}

@Suite struct GaugeTests {
    @Test func barsHaveEighthResolution() {
        let g = Glyphs.unicode
        #expect(Gauge.bar(0, width: 4, glyphs: g) == "    ")
        #expect(Gauge.bar(1, width: 4, glyphs: g) == "████")
        #expect(Gauge.bar(0.5, width: 4, glyphs: g) == "██  ")
        #expect(Gauge.bar(1.0 / 32, width: 4, glyphs: g) == "▏   ")
        #expect(Gauge.bar(.nan, width: 3, glyphs: g) == "   ")
        #expect(Gauge.bar(0.5, width: 4, glyphs: .asciiOnly) == "##  ")
    }

    @Test func sparklineShowsGaps() {
        #expect(Gauge.sparkline([0, nil, 0.5, 1], glyphs: .unicode) == "▁ ▅█")
        #expect(Gauge.sparkline([0, 1], glyphs: .asciiOnly) == "_#")
    }

    @Test func colormapsAreMonotoneInLightness() {
        for map in Colormap.allCases {
            let l = map.lut.map { i -> Double in let c = Palette.rgb(Int(i)); return Palette.lab(c.0, c.1, c.2).0 }
            for k in 1..<l.count { #expect(l[k] >= l[k - 1] - 0.5, "\(map) not monotone at \(k)") }
            #expect(map.lut.allSatisfy { $0 >= 16 }, "data colours must avoid the themed 0–15")
        }
    }

    @Test func resampleKeepsMassAndEnlargesExactly() {
        let map: [Float] = [1, 2, 3, 4]
        #expect(Gauge.resample(map, side: 2, width: 4, height: 4) == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        #expect(Gauge.resample(map, side: 2, width: 1, height: 1) == [2.5])
    }
}
