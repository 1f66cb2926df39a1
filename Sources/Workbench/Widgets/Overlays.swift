// Overlays over the whole screen: the help (drawn from the keymap table) and the too-small notice.
// A pure function from the view state to cells in its rectangle (see Widgets.swift).

import Foundation
import Steering

extension Widgets {
    // MARK: Overlays

    static func help(_ s: ViewState, size: Size, grid: inout CellGrid) {
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

    static func tooSmall(_ s: ViewState, size: Size, grid: inout CellGrid) {
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
