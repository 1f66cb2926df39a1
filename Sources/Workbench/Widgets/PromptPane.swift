// The prompt pane: the prompt line, scrolled to keep the cursor in view while editing.
// A pure function from the view state to cells in its rectangle (see Widgets.swift).

import Foundation
import Steering

extension Widgets {
    // MARK: Prompt

    static func prompt(_ s: ViewState, in r: Rect, grid: inout CellGrid) {
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
}
