/// A one-line text field with a cursor (in graphemes) and a history, for the prompt and typed values.
struct LineEditor: Equatable, Sendable {
    private(set) var characters: [Character] = []
    /// Cursor position: 0…characters.count.
    private(set) var cursor = 0
    private(set) var history: [String] = []
    /// Index into `history` while browsing (nil: editing the draft).
    private var historyIndex: Int?
    private var draft: [Character] = []
    /// The longest text accepted (in graphemes); longer input is cut (the parser reports its own limit).
    var limit: Int

    init(_ text: String = "", limit: Int = 20_000) {
        self.limit = limit
        characters = Array(text.prefix(limit))
        cursor = characters.count
    }

    var text: String { String(characters) }
    var isEmpty: Bool { characters.isEmpty }

    mutating func setText(_ text: String) {
        characters = Array(text.prefix(limit))
        cursor = characters.count
        historyIndex = nil
    }

    mutating func insert(_ s: String) {
        // Newlines and tabs from a paste become spaces; other control characters are dropped.
        var add: [Character] = []
        for ch in s {
            if ch == "\n" || ch == "\r" || ch == "\r\n" || ch == "\t" { add.append(" "); continue }
            if let v = ch.unicodeScalars.first?.value, v < 0x20 || v == 0x7F { continue }
            add.append(ch)
        }
        let room = max(0, limit - characters.count)
        add = Array(add.prefix(room))
        characters.insert(contentsOf: add, at: cursor)
        cursor += add.count
        historyIndex = nil
    }

    mutating func left() { cursor = max(0, cursor - 1) }
    mutating func right() { cursor = min(characters.count, cursor + 1) }
    mutating func home() { cursor = 0 }
    mutating func end() { cursor = characters.count }

    mutating func deleteBackward() {
        guard cursor > 0 else { return }
        characters.remove(at: cursor - 1)
        cursor -= 1
    }

    mutating func deleteForward() {
        guard cursor < characters.count else { return }
        characters.remove(at: cursor)
    }

    /// ^U: clears the whole line (wherever the cursor is).
    mutating func clear() {
        characters = []
        cursor = 0
        historyIndex = nil
    }

    /// ^K: deletes everything from the cursor on.
    mutating func killToEnd() {
        characters.removeLast(characters.count - cursor)
    }

    /// ^W: deletes the word before the cursor (and the spaces after it).
    mutating func deleteWord() {
        var i = cursor
        while i > 0 && characters[i - 1] == " " { i -= 1 }
        while i > 0 && characters[i - 1] != " " { i -= 1 }
        characters.removeSubrange(i..<cursor)
        cursor = i
    }

    /// Adds the text to the history (no empty entries, no consecutive duplicates).
    mutating func commit() {
        let t = text
        historyIndex = nil
        guard !t.trimmingCharacters(in: .whitespaces).isEmpty else { return }
        if history.last != t { history.append(t) }
        if history.count > 200 { history.removeFirst(history.count - 200) }
    }

    /// Adds entries to the history without touching the text (e.g. example prompts).
    mutating func seedHistory(_ entries: [String]) {
        history = entries + history
    }

    /// ↑: the previous history entry (the draft is kept for ↓).
    mutating func historyPrevious() {
        guard !history.isEmpty else { return }
        if historyIndex == nil {
            draft = characters
            historyIndex = history.count - 1
        } else if historyIndex! > 0 {
            historyIndex! -= 1
        } else {
            return
        }
        characters = Array(history[historyIndex!])
        cursor = characters.count
    }

    /// ↓: the next history entry, or back to the draft.
    mutating func historyNext() {
        guard let i = historyIndex else { return }
        if i + 1 < history.count {
            historyIndex = i + 1
            characters = Array(history[i + 1])
        } else {
            historyIndex = nil
            characters = draft
        }
        cursor = characters.count
    }

    /// The visible slice for a field `width` columns wide with the cursor kept in view: the text
    /// from grapheme `start`, and the cursor's column inside the field.
    func viewport(width: Int) -> (start: Int, cursorColumn: Int) {
        guard width > 1 else { return (cursor, 0) }
        // Walk back from the cursor until the field is full (leaving a column for the cursor at the end).
        var start = cursor
        var used = 1
        while start > 0 {
            let w = TextWidth.printable(characters[start - 1]).1
            if used + w > width { break }
            used += w
            start -= 1
        }
        // Prefer showing from the beginning when everything up to the cursor fits.
        var col = 0
        for i in start..<cursor { col += TextWidth.printable(characters[i]).1 }
        return (start, col)
    }
}

import Foundation
