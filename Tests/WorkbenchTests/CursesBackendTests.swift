// The ncurses backend, headless (newterm on /dev/null): what we draw is what ncurses holds —
// text, wide graphemes, attributes and colours, including colour pairs above 255 (which
// COLOR_PAIR() would truncate). Serialized: ncurses has one global screen.

import Foundation
import Testing
@testable import Workbench

@Suite(.serialized) struct CursesBackendTests {
    init() {
        if ProcessInfo.processInfo.environment["LANG"]?.contains("UTF-8") != true { setenv("LANG", "C.UTF-8", 1) }
    }

    @Test func gridRoundTripsThroughNcurses() throws {
        let backend = try CursesBackend(headlessWidth: 80, height: 24)
        defer { backend.end() }
        #expect(backend.size == Size(width: 80, height: 24))
        #expect(backend.tier == .palette256, "xterm-256color gives the 256-colour tier (colours \(backend.colors), pairs \(backend.colorPairs))")
        var g = CellGrid(width: 80, height: 24)
        g.text("a 猫 cat 🐶 dog", x: 2, y: 1, style: Style(fg: .red, attributes: .bold))
        // 300 distinct (fg, bg) pairs: pair numbers above 255 must keep their colours.
        for i in 0..<300 {
            let fg = 16 + i % 240, bg = 16 + (i / 240 + i * 7) % 240
            g.set(x: i % 80, y: 3 + i / 80, Cell("▀", style: Style(fg: TermColor(fg), bg: TermColor(bg))))
        }
        g.text("reverse", x: 0, y: 10, style: Style(attributes: .reverse))
        backend.draw(g)
        #expect(backend.readRow(1).hasPrefix("  a 猫 cat 🐶 dog"))
        let cat = backend.readCell(x: 4, y: 1)
        #expect(cat.text == "猫" && cat.fg == 1 && cat.bold)
        var maxPair: Int32 = 0
        for i in 0..<300 {
            let c = backend.readCell(x: i % 80, y: 3 + i / 80)
            maxPair = max(maxPair, c.pair)
            #expect(c.text == "▀" && c.fg == Int32(16 + i % 240) && c.bg == Int32(16 + (i / 240 + i * 7) % 240), "cell \(i): pair \(c.pair) fg \(c.fg) bg \(c.bg)")
        }
        #expect(maxPair > 255, "the test must exercise pairs above 255")
        #expect(backend.readCell(x: 0, y: 10).reverse)
        // A second frame changes only some cells; the rest stay.
        g.text("b", x: 2, y: 1)
        backend.draw(g)
        #expect(backend.readRow(1).hasPrefix("  b 猫 cat"))
    }

    @Test func wholeScreenMatchesTheGrid() throws {
        let backend = try CursesBackend(headlessWidth: 120, height: 40)
        defer { backend.end() }
        var s = Fixture.running(twoRelations, steps: 20, size: Size(width: 120, height: 40))
        s.theme = Theme(tier: backend.tier, ascii: false)
        Fixture.fit(&s, size: backend.size)
        let frame = Screen.render(s, size: backend.size)
        backend.draw(frame.grid)
        for y in 0..<40 {
            #expect(backend.readRow(y) == frame.grid.row(y), "row \(y)")
        }
        // Heatmap and preview cells carry their 256-palette colours.
        var checked = 0
        for y in 0..<40 {
            for x in 0..<120 where frame.grid[x, y].character == "▀" {
                let c = backend.readCell(x: x, y: y)
                let st = frame.grid[x, y].style
                #expect(c.fg == Int32(st.fg.index) && c.bg == Int32(st.bg.index))
                checked += 1
            }
        }
        #expect(checked > 200)
    }

    @Test func noColorAndEightColourTerminals() throws {
        let mono = try CursesBackend(headlessWidth: 40, height: 10, options: CursesBackend.Options(noColor: true))
        #expect(mono.tier == .none)
        mono.end()
        // Defect 6: TERM=dumb cannot move the cursor; a clear refusal, not a blank screen.
        #expect(throws: TerminalError.self) { try CursesBackend(headlessWidth: 40, height: 10, term: "dumb") }
        do { _ = try CursesBackend(headlessWidth: 40, height: 10, term: "dumb") } catch {
            #expect("\(error)".contains("TERM=dumb cannot move the cursor"))
        }
        let vt100 = try CursesBackend(headlessWidth: 40, height: 10, term: "vt100")
        #expect(vt100.tier == .none, "a terminal without colours still works, uncoloured")
        vt100.end()
        let eight = try CursesBackend(headlessWidth: 40, height: 10, term: "xterm")
        defer { eight.end() }
        #expect(eight.tier == .basic && eight.colors == 8)
        var g = CellGrid(width: 40, height: 10)
        g.text("dim", x: 0, y: 0, style: Style(fg: .brightBlack))
        g.text("x", x: 5, y: 0, style: Style(fg: TermColor(200)))
        eight.draw(g)
        #expect(eight.readCell(x: 0, y: 0).fg == 7, "bright colours fold into 0–7 on 8-colour terminals")
        #expect(eight.readCell(x: 5, y: 0).fg == -1, "palette colours beyond the terminal become the default")
    }

    @Test func keyDecoding() {
        #expect(CursesBackend.characterKey(13) == .enter)
        #expect(CursesBackend.characterKey(127) == .backspace)
        #expect(CursesBackend.characterKey(21) == .ctrl("u"))
        #expect(CursesBackend.characterKey(27) == .escape)
        #expect(CursesBackend.characterKey(0x732B) == .char("猫"))
        #expect(CursesBackend.functionKey(0o632) == .resize)  // KEY_RESIZE
        #expect(CursesBackend.functionKey(0o403) == .key(.up))  // KEY_UP
    }
}
