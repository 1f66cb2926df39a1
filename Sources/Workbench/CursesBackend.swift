// The only file that calls ncurses. Copies a CellGrid to the screen (changed cells
// only, wide graphemes whole, colours through extended pairs passed in setcchar's `opts` — never
// COLOR_PAIR(n), which truncates pairs above 255), reads keys with get_wch, and restores the terminal.
// Call it from one thread only: the UI thread.

import Foundation
import CNcurses
#if canImport(Glibc)
import Glibc
#endif

/// What the backend reads from the terminal.
enum InputEvent: Equatable, Sendable {
    case key(Key)
    /// The terminal was resized (ncurses has already updated its size).
    case resize
}

/// Why the terminal could not be set up.
enum TerminalError: Error, CustomStringConvertible {
    case cannotInitialize(String)
    /// The terminal type cannot move the cursor (TERM=dumb, a printing terminal).
    case cannotAddressCursor(String)
    var description: String {
        switch self {
        case .cannotInitialize(let term): return "cannot start the terminal UI: ncurses does not know TERM=\(term)"
        case .cannotAddressCursor(let term):
            return "cannot start the terminal UI: TERM=\(term) cannot move the cursor; use a terminal type such as xterm-256color (`l2s generate` works anywhere)"
        }
    }
}

/// Whether curses owns the terminal right now (read by signal handlers and atexit).
nonisolated(unsafe) private var cursesActive = false

final class CursesBackend {
    struct Options: Sendable {
        /// No colours at all (--no-color, or a non-empty NO_COLOR: the launcher decides).
        var noColor = false
        var ascii = false
        init(noColor: Bool = false, ascii: Bool = false) { self.noColor = noColor; self.ascii = ascii }
    }

    /// The colour tier chosen at start-up.
    private(set) var tier: ColorTier = .none
    /// Whether the locale's codeset is UTF-8 (else ASCII glyphs).
    private(set) var utf8 = false
    /// Colours and pairs the terminal reports.
    private(set) var colors: Int32 = 0
    private(set) var colorPairs: Int32 = 0
    private var screen: OpaquePointer?
    private var files: [UnsafeMutablePointer<FILE>] = []
    private var pairs: [Int32: Int32] = [:]
    private var nextPair: Int32 = 1
    private var last: CellGrid?
    private var cursorVisible: Int32 = -1
    private var decoder = KeyDecoder()
    private var lastImages: [ImagePlacement] = []
    /// Where image sequences go (the terminal; tests capture them).
    var imageOutput: (String) -> Void = { text in
        fflush(stdout)
        text.withCString { p in
            var left = strlen(p), at = p
            while left > 0 {
                let n = write(1, at, left)
                if n <= 0 { if errno == EINTR { continue }; break }
                left -= n; at += n
            }
        }
    }
    private let headless: Bool

    /// Opens the terminal on stdin/stdout (TERM from the environment).
    init(options: Options) throws {
        headless = false
        setlocale(LC_ALL, "")
        utf8 = String(cString: tui_codeset()) == "UTF-8"
        guard let s = newterm(nil, stdout, stdin) else {
            throw TerminalError.cannotInitialize(ProcessInfo.processInfo.environment["TERM"] ?? "(unset)")
        }
        screen = s
        set_term(s)
        try refuseWithoutCursorAddressing(ProcessInfo.processInfo.environment["TERM"] ?? "(unset)")
        setUp(options: options, term: ProcessInfo.processInfo.environment["TERM"] ?? "")
    }

    /// A screen UI needs cursor addressing: without it (TERM=dumb) the screen would be one border
    /// line, so end ncurses and refuse with one clear line instead.
    private func refuseWithoutCursorAddressing(_ term: String) throws {
        guard tui_can_address_cursor() == 0 else { return }
        endwin()
        if let s = screen { delscreen(s); screen = nil }
        for f in files { fclose(f) }
        files = []
        throw TerminalError.cannotAddressCursor(term)
    }

    /// A terminal that draws into /dev/null (for tests): `width`×`height`, `term` type.
    init(headlessWidth width: Int, height: Int, term: String = "xterm-256color", options: Options = Options()) throws {
        headless = true
        setlocale(LC_ALL, "")
        utf8 = String(cString: tui_codeset()) == "UTF-8"
        setenv("LINES", "\(height)", 1)
        setenv("COLUMNS", "\(width)", 1)
        guard let out = fopen("/dev/null", "w"), let inp = fopen("/dev/null", "r") else {
            throw TerminalError.cannotInitialize("/dev/null")
        }
        files = [out, inp]
        guard let s = newterm(term, out, inp) else { throw TerminalError.cannotInitialize(term) }
        screen = s
        set_term(s)
        unsetenv("LINES")
        unsetenv("COLUMNS")
        try refuseWithoutCursorAddressing(term)
        setUp(options: options, term: term)
    }

    private func setUp(options: Options, term: String) {
        cursesActive = true
        cbreak()
        noecho()
        nonl()
        keypad(tui_stdscr(), false)
        nodelay(tui_stdscr(), true)
        set_escdelay(25)
        leaveok(tui_stdscr(), false)
        // NO_COLOR is the caller's business (it sets options.noColor).
        if !options.noColor && has_colors() {
            start_color()
            use_default_colors()
            colors = tui_colors()
            colorPairs = tui_color_pairs()
            tier = colors >= 256 && colorPairs >= 256 ? .palette256 : (colors >= 8 && colorPairs >= 16 ? .basic : .none)
        }
        if options.ascii { utf8 = false }
        setCursor(visible: false)
    }

    /// The terminal size in cells.
    var size: Size {
        Size(width: Int(getmaxx(tui_stdscr())), height: Int(getmaxy(tui_stdscr())))
    }

    /// Reads every pending key without blocking; escape sequences are parsed whole (`KeyDecoder`).
    /// Keypad mode is off, so ncurses passes every sequence through and the decoder alone maps them.
    func readInput(now: Double) -> [InputEvent] {
        var units: [InputUnit] = []
        while true {
            var ch: wint_t = 0
            let r = wget_wch(tui_stdscr(), &ch)
            if r == ERR { break }
            if r == KEY_CODE_YES {
                if let e = Self.functionKey(Int32(ch)) { units.append(.event(e)) }
            } else {
                units.append(.code(UInt32(ch)))
            }
            if units.count > 4096 { break }
        }
        if units.isEmpty { return decoder.flush(now: now) }
        return decoder.feed(units, now: now)
    }

    /// When a lone ESC read so far becomes the Esc key if nothing follows (nil: nothing waits).
    var inputDeadline: Double? { decoder.deadline }

    static func functionKey(_ code: Int32) -> InputEvent? {
        switch code {
        case KEY_RESIZE: return .resize
        case KEY_UP: return .key(.up)
        case KEY_DOWN: return .key(.down)
        case KEY_LEFT: return .key(.left)
        case KEY_RIGHT: return .key(.right)
        case KEY_HOME: return .key(.home)
        case KEY_END: return .key(.end)
        case KEY_BACKSPACE: return .key(.backspace)
        case KEY_DC: return .key(.delete)
        case KEY_PPAGE: return .key(.pageUp)
        case KEY_NPAGE: return .key(.pageDown)
        case KEY_BTAB: return .key(.backTab)
        case KEY_ENTER: return .key(.enter)
        default:
            for n in 1...12 where code == tui_key_f(Int32(n)) { return .key(.function(n)) }
            return nil
        }
    }

    static func characterKey(_ c: UInt32) -> Key? {
        switch c {
        case 10, 13: return .enter
        case 9: return .tab
        case 27: return .escape
        case 8, 127: return .backspace
        case 1...26: return .ctrl(Character(UnicodeScalar(c + 96)!))
        case 0, 28...31: return nil
        default:
            guard let s = UnicodeScalar(c) else { return nil }
            return .char(Character(s))
        }
    }

    private func setCursor(visible: Bool) {
        let v: Int32 = visible ? 1 : 0
        if v != cursorVisible { curs_set(v); cursorVisible = v }
    }

    private func pair(for style: Style) -> Int32 {
        guard tier != .none else { return 0 }
        var fg = Int32(style.fg.index), bg = Int32(style.bg.index)
        if colors < 16 {
            if fg >= 8 { fg = fg == 8 ? 7 : fg - 8 }
            if bg >= 8 { bg = bg == 8 ? 0 : bg - 8 }
        }
        if fg >= colors { fg = -1 }
        if bg >= colors { bg = -1 }
        if fg < 0 && bg < 0 { return 0 }
        let key = (fg + 1) << 16 | (bg + 1)
        if let p = pairs[key] { return p }
        guard nextPair < colorPairs else { return -1 }
        let p = nextPair
        nextPair += 1
        init_extended_pair(p, fg, bg)
        pairs[key] = p
        return p
    }

    private func attributes(_ a: CellAttributes) -> attr_t {
        var out: attr_t = 0
        if a.contains(.bold) { out |= tui_a_bold() }
        if a.contains(.reverse) { out |= tui_a_reverse() }
        if a.contains(.underline) { out |= tui_a_underline() }
        if a.contains(.dim) { out |= tui_a_dim() }
        return out
    }

    /// Copies the grid to the screen (cells that changed since the last frame) and shows it.
    /// Returns whether every cell was repainted (first frame, resize, pair table reset).
    @discardableResult
    func draw(_ grid: CellGrid) -> Bool {
        var full = last == nil || last!.width != grid.width || last!.height != grid.height
        if drawCells(grid, full: full) == false {
            // The pair table overflowed: start it afresh and draw every cell with the new pairs.
            pairs.removeAll()
            nextPair = 1
            full = true
            _ = drawCells(grid, full: true)
        }
        // Images that go (none takes their place): ncurses repaints their rows, which overwrites sixel
        // pixels; kitty's are deleted. A full repaint clears the screen: every image is sent again.
        let gone = full ? lastImages : lastImages.filter { old in !grid.images.contains { $0.rect == old.rect } }
        for p in gone where !full { wredrawln(tui_stdscr(), Int32(p.rect.y), Int32(p.rect.height)) }
        if let c = grid.cursor {
            setCursor(visible: true)
            wmove(tui_stdscr(), Int32(c.y), Int32(c.x))
        } else {
            setCursor(visible: false)
        }
        wnoutrefresh(tui_stdscr())
        doupdate()
        last = grid
        emitImages(grid.images, gone: gone, full: full)
        return full
    }

    /// Writes the image sequences after ncurses' frame: new or changed images (all after a full
    /// repaint), each at its cell with the cursor saved and restored around it, and the erase
    /// sequences of images that went.
    func emitImages(_ images: [ImagePlacement], gone: [ImagePlacement], full: Bool) {
        var out = gone.map(\.image.erase).joined()
        for p in images where full || !lastImages.contains(p) {
            out += "\u{1B}7\u{1B}[\(p.rect.y + 1);\(p.rect.x + 1)H" + p.image.payload + "\u{1B}8"
        }
        lastImages = images
        if !out.isEmpty { imageOutput(out) }
    }

    /// A cell's size in pixels as the terminal reports it (TIOCGWINSZ), nil when it does not.
    static func cellPixelSize() -> PixelBox? {
        var ws = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0, ws.ws_row > 0, ws.ws_xpixel > 0, ws.ws_ypixel > 0 else { return nil }
        return PixelBox(width: Int(ws.ws_xpixel) / Int(ws.ws_col), height: Int(ws.ws_ypixel) / Int(ws.ws_row))
    }

    /// Sends `query` to the terminal and collects its answer until `done` says it is complete or
    /// `timeout` seconds pass (before ncurses starts: the tty is put in raw mode for the wait).
    /// Nil when nothing came back.
    static func queryTerminal(_ query: String, timeout: Double, done: (String) -> Bool) -> String? {
        guard isatty(0) == 1, isatty(1) == 1 else { return nil }
        var saved = termios()
        guard tcgetattr(0, &saved) == 0 else { return nil }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        tcsetattr(0, TCSANOW, &raw)
        defer { tcsetattr(0, TCSANOW, &saved) }
        _ = query.withCString { write(1, $0, strlen($0)) }
        var bytes: [UInt8] = []
        let deadline = App.now() + timeout
        var buf = [UInt8](repeating: 0, count: 512)
        while App.now() < deadline {
            var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0)]
            let ms = Int32(max(1, (deadline - App.now()) * 1000))
            guard poll(&fds, 1, ms) > 0 else { break }
            let n = read(0, &buf, buf.count)
            if n <= 0 { break }
            bytes += buf[0..<n]
            if done(String(decoding: bytes, as: UTF8.self)) { break }
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }

    /// Returns false when a cell needed a colour pair the table could not hold.
    private func drawCells(_ grid: CellGrid, full: Bool) -> Bool {
        let win = tui_stdscr()
        var ok = true
        var cc = cchar_t()
        var wide: [wchar_t] = [0, 0, 0, 0, 0, 0]
        for y in 0..<grid.height {
            for x in 0..<grid.width {
                let cell = grid[x, y]
                if cell.width == 0 { continue }
                if !full, let l = last, l[x, y] == cell, x + 1 >= grid.width || l[x + 1, y] == grid[x + 1, y] { continue }
                var n = 0
                for s in cell.character.unicodeScalars where n < 5 { wide[n] = wchar_t(bitPattern: s.value); n += 1 }
                wide[n] = 0
                var p = pair(for: cell.style)
                if p < 0 { ok = false; p = 0 }
                var opts = p
                setcchar(&cc, wide, attributes(cell.style.attributes), 0, &opts)
                mvwadd_wch(win, Int32(y), Int32(x), &cc)
            }
        }
        return ok
    }

    /// Forces the next `draw` to repaint every cell (after a resize or SIGCONT).
    func invalidate() {
        last = nil
        clearok(curscr, true)
    }

    /// Restores the terminal (cursor, modes, main screen).
    func end() {
        guard cursesActive else { return }
        curs_set(1)
        endwin()
        cursesActive = false
        if headless, let s = screen {
            delscreen(s)
            screen = nil
            for f in files { fclose(f) }
            files = []
        }
    }

    /// Best-effort restore from a signal handler or atexit: endwin if curses is up.
    static func emergencyEnd() {
        if cursesActive {
            cursesActive = false
            curs_set(1)
            endwin()
            fflush(stdout)
        }
    }

    // MARK: Reading back (tests)

    /// One cell as ncurses holds it: text, attributes and the colours of its pair.
    struct ScreenCell: Equatable {
        var text: String
        var pair: Int32
        var fg: Int32
        var bg: Int32
        var bold: Bool
        var reverse: Bool
    }

    /// The cell at (x, y) of ncurses' virtual screen (stdscr).
    func readCell(x: Int, y: Int) -> ScreenCell {
        var cc = cchar_t()
        mvwin_wch(tui_stdscr(), Int32(y), Int32(x), &cc)
        var wide: [wchar_t] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        var attrs: attr_t = 0
        var shortPair: Int16 = 0
        var pairInt: Int32 = 0
        getcchar(&cc, &wide, &attrs, &shortPair, &pairInt)
        var text = ""
        for w in wide where w != 0 { if let s = UnicodeScalar(UInt32(bitPattern: w)) { text.unicodeScalars.append(s) } }
        var fg: Int32 = -1, bg: Int32 = -1
        if pairInt > 0 { extended_pair_content(pairInt, &fg, &bg) }
        return ScreenCell(text: text, pair: pairInt, fg: fg, bg: bg,
                          bold: attrs & tui_a_bold() != 0, reverse: attrs & tui_a_reverse() != 0)
    }

    /// A row of the virtual screen as text (wide graphemes once).
    func readRow(_ y: Int) -> String {
        var out = ""
        var x = 0
        let w = size.width
        while x < w {
            let c = readCell(x: x, y: y)
            out += c.text.isEmpty ? " " : c.text
            let cw = c.text.unicodeScalars.first.map { Int(tui_wcwidth(wchar_t(bitPattern: $0.value))) } ?? 1
            x += max(1, cw)
        }
        return out
    }
}
