// The in-memory screen every widget draws into. Tests snapshot it as text; CursesBackend copies it to
// ncurses. A wide grapheme occupies its cell plus a continuation cell (width 0) to its right.

/// A terminal colour: the user's default (-1), one of the 16 themed colours (0–15) or a 256-palette index.
struct TermColor: Hashable, Sendable, CustomStringConvertible {
    var index: Int16
    init(_ index: Int) { self.index = Int16(min(max(index, -1), 255)) }
    static let `default` = TermColor(-1)
    static let black = TermColor(0), red = TermColor(1), green = TermColor(2), yellow = TermColor(3)
    static let blue = TermColor(4), magenta = TermColor(5), cyan = TermColor(6), white = TermColor(7)
    static let brightBlack = TermColor(8), brightRed = TermColor(9), brightGreen = TermColor(10)
    static let brightYellow = TermColor(11), brightBlue = TermColor(12), brightMagenta = TermColor(13)
    static let brightCyan = TermColor(14), brightWhite = TermColor(15)
    var isDefault: Bool { index < 0 }
    var description: String { index < 0 ? "-" : String(index) }
}

/// Text attributes a cell can carry.
struct CellAttributes: OptionSet, Hashable, Sendable {
    let rawValue: UInt8
    init(rawValue: UInt8) { self.rawValue = rawValue }
    static let bold = CellAttributes(rawValue: 1)
    static let reverse = CellAttributes(rawValue: 2)
    static let underline = CellAttributes(rawValue: 4)
    static let dim = CellAttributes(rawValue: 8)
}

/// Colours and attributes of a run of text.
struct Style: Hashable, Sendable {
    var fg: TermColor
    var bg: TermColor
    var attributes: CellAttributes
    init(fg: TermColor = .default, bg: TermColor = .default, attributes: CellAttributes = []) {
        self.fg = fg
        self.bg = bg
        self.attributes = attributes
    }
    static let plain = Style()
    func with(_ a: CellAttributes) -> Style { var s = self; s.attributes.formUnion(a); return s }
}

/// One screen cell: a grapheme with its width (1 or 2; 0 marks the right half of a wide grapheme).
struct Cell: Hashable, Sendable {
    var character: Character
    var width: UInt8
    var style: Style
    init(_ character: Character = " ", width: UInt8 = 1, style: Style = .plain) {
        self.character = character
        self.width = width
        self.style = style
    }
    static let blank = Cell()
    var isContinuation: Bool { width == 0 }
}

/// A width × height grid of cells plus an optional cursor position.
struct CellGrid: Equatable, Sendable {
    let width: Int
    let height: Int
    private(set) var cells: [Cell]
    /// Where the terminal cursor should be shown (nil: hidden).
    var cursor: (x: Int, y: Int)? {
        get { cursorX >= 0 ? (cursorX, cursorY) : nil }
        set { cursorX = newValue?.x ?? -1; cursorY = newValue?.y ?? -1 }
    }
    private var cursorX = -1, cursorY = -1
    /// ASCII mode: non-ASCII graphemes are drawn as "?".
    var ascii: Bool
    /// True-pixel images drawn over blank cells after the text (kitty, iTerm2, sixel).
    var images: [ImagePlacement] = []

    init(width: Int, height: Int, ascii: Bool = false) {
        self.width = max(0, width)
        self.height = max(0, height)
        self.ascii = ascii
        cells = Array(repeating: .blank, count: self.width * self.height)
    }

    var bounds: Rect { Rect(x: 0, y: 0, width: width, height: height) }

    subscript(x: Int, y: Int) -> Cell {
        get { cells[y * width + x] }
    }

    /// Sets one cell, keeping wide graphemes whole: a grapheme that a write cuts in half is blanked.
    mutating func set(x: Int, y: Int, _ cell: Cell) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let w = Int(cell.width)
        if w == 2 && x + 1 >= width { return }  // would not fit; callers check first
        clearOverlap(x: x, y: y)
        if w == 2 { clearOverlap(x: x + 1, y: y) }
        cells[y * width + x] = cell
        if w == 2 { cells[y * width + x + 1] = Cell(" ", width: 0, style: cell.style) }
    }

    private mutating func clearOverlap(x: Int, y: Int) {
        let i = y * width + x
        let old = cells[i]
        if old.width == 0 && x > 0 {
            cells[i - 1] = Cell(" ", width: 1, style: cells[i - 1].style)
        } else if old.width == 2 && x + 1 < width {
            cells[i + 1] = Cell(" ", width: 1, style: old.style)
        }
    }

    /// Fills a rectangle (clipped to the grid) with one single-width character.
    mutating func fill(_ rect: Rect, _ ch: Character = " ", style: Style = .plain) {
        let r = rect.clipped(to: bounds)
        guard !r.isEmpty else { return }
        for y in r.y..<r.maxY {
            for x in r.x..<r.maxX { set(x: x, y: y, Cell(ch, width: 1, style: style)) }
        }
    }

    /// Draws `text` from (x, y), clipped to `clip` (default: the whole grid) and to `maxWidth` columns.
    /// Returns the columns used. A wide grapheme that would straddle the edge is left out.
    @discardableResult
    mutating func text(_ text: String, x: Int, y: Int, style: Style = .plain, clip: Rect? = nil,
                              maxWidth: Int = Int.max) -> Int {
        let c = (clip ?? bounds).clipped(to: bounds)
        guard y >= c.y, y < c.maxY else { return 0 }
        let limit = min(c.maxX, maxWidth == Int.max ? Int.max : x + maxWidth)
        var cx = x
        for ch in text {
            let (g, w) = TextWidth.printable(ch, ascii: ascii)
            if cx + w > limit { break }
            if cx >= c.x { set(x: cx, y: y, Cell(g, width: UInt8(w), style: style)) }
            cx += w
        }
        return max(0, cx - x)
    }

    /// Sets the style of cells in a rectangle without changing their characters.
    mutating func restyle(_ rect: Rect, _ transform: (Style) -> Style) {
        let r = rect.clipped(to: bounds)
        guard !r.isEmpty else { return }
        for y in r.y..<r.maxY {
            for x in r.x..<r.maxX { cells[y * width + x].style = transform(cells[y * width + x].style) }
        }
    }

    /// The grid as text, one line per row, continuation cells skipped, trailing spaces trimmed.
    func plainText() -> String {
        var lines: [String] = []
        lines.reserveCapacity(height)
        for y in 0..<height {
            var line = ""
            for x in 0..<width {
                let c = cells[y * width + x]
                if c.width == 0 { continue }
                line.append(c.character)
            }
            while line.last == " " { line.removeLast() }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// The text of one row (continuation cells skipped).
    func row(_ y: Int) -> String {
        guard y >= 0, y < height else { return "" }
        var line = ""
        for x in 0..<width where cells[y * width + x].width != 0 { line.append(cells[y * width + x].character) }
        return line
    }

    /// Styles as text for snapshot tests: each row as runs "fg/bg[attrs]×n", so colour regressions show.
    func styleText(in rect: Rect? = nil) -> String {
        let r = (rect ?? bounds).clipped(to: bounds)
        var lines: [String] = []
        guard !r.isEmpty else { return "" }
        for y in r.y..<r.maxY {
            var runs: [String] = []
            var current: Style? = nil
            var count = 0
            func flush() {
                guard let s = current else { return }
                var a = ""
                if s.attributes.contains(.bold) { a += "b" }
                if s.attributes.contains(.reverse) { a += "r" }
                if s.attributes.contains(.underline) { a += "u" }
                if s.attributes.contains(.dim) { a += "d" }
                runs.append("\(s.fg)/\(s.bg)\(a.isEmpty ? "" : ":" + a)×\(count)")
            }
            for x in r.x..<r.maxX {
                let s = cells[y * width + x].style
                if s == current { count += 1 } else { flush(); current = s; count = 1 }
            }
            flush()
            lines.append(runs.joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }

    static func == (a: CellGrid, b: CellGrid) -> Bool {
        a.width == b.width && a.height == b.height && a.cells == b.cells && a.cursorX == b.cursorX && a.cursorY == b.cursorY
            && a.images == b.images
    }
}
