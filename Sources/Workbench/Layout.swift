// layout(size) → rectangles. Pure and fuzz-tested over 1×1 … 300×100: every rectangle
// lies inside the screen, none overlap, and below the minimum size only the "too small" screen shows.

/// Where each pane goes on a screen of `size`.
struct ScreenLayout: Equatable, Sendable {
    var size: Size
    /// True below `Layout.minimum`: draw the "terminal too small" screen instead.
    var tooSmall: Bool
    var prompt = Rect.zero
    var relations = Rect.zero
    var classifier = Rect.zero
    var attention = Rect.zero
    var preview = Rect.zero
    var schedule = Rect.zero
    var status = Rect.zero
    var keys = Rect.zero

    /// All pane rectangles with names (for tests and the help overlay's placement).
    var panes: [(String, Rect)] {
        [("prompt", prompt), ("relations", relations), ("classifier", classifier), ("attention", attention),
         ("preview", preview), ("schedule", schedule), ("status", status), ("keys", keys)]
    }
}

/// The layout function.
enum Layout {
    /// The smallest screen the workbench draws (smaller: a "terminal too small" message).
    static let minimum = Size(width: 60, height: 20)

    /// Rows the relation/classifier band would like for `relations` relations: every relation with
    /// its class bars when `roomy`, else one line per relation and the bars of the selected one.
    static func topBandNeed(relations n: Int, roomy: Bool) -> Int {
        let k = max(n, 1)
        let classifier = roomy ? 3 + k * 7 : 3 + k + 6
        let graph = 2 + k + 5
        return max(classifier, graph)
    }

    /// Lays out a screen for a prompt with `relations` steerable relations; `zoom` gives the whole
    /// middle to the image panes.
    static func compute(_ size: Size, relations: Int = 1, zoom: Bool = false) -> ScreenLayout {
        var l = ScreenLayout(size: size, tooSmall: size.width < minimum.width || size.height < minimum.height)
        guard !l.tooSmall else { return l }
        let w = size.width
        var rest = Rect(x: 0, y: 0, width: w, height: size.height)
        (l.prompt, rest) = rest.splitTop(3)
        (rest, l.keys) = rest.splitBottom(1)
        (rest, l.status) = rest.splitBottom(1)
        (rest, l.schedule) = rest.splitBottom(w >= 130 ? 4 : 5)  // one line of setting chips needs ~125 columns
        let middle = rest
        var top = Rect.zero, images = Rect.zero
        if zoom {
            images = middle
        } else if middle.height >= 14 {
            let need = topBandNeed(relations: relations, roomy: middle.height >= 40)
            let t = min(max(need, 6), middle.height - 8)
            (top, images) = middle.splitTop(t)
        } else {
            top = middle
        }
        if !top.isEmpty {
            let left = min(max(w * 2 / 5, 26), 64)
            (l.relations, l.classifier) = top.splitLeft(left)
        }
        if !images.isEmpty {
            // The attention pane is about square in pixels: (rows − 4 for legend and border) × 2 columns.
            let want = 2 * max(images.height - 4, 4) + 2
            let att = min(max(want, 26), w / 2)
            (l.attention, l.preview) = images.splitLeft(att)
        }
        return l
    }
}
