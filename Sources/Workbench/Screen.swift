// The whole screen: layout + every pane + overlays, as one pure function of the state and the size.

/// One rendered frame.
struct Frame: Sendable {
    var grid: CellGrid
    var layout: ScreenLayout
    /// Fitted images the preview pane lacked (the App asks the fitter queue for them).
    var wants: [FitRequest]
    /// The pixel box of the preview's first slot (the engine fits new steps to it).
    var previewBox: PixelBox?
}

/// Renders the state into a grid.
enum Screen {
    static func layout(_ s: ViewState, size: Size) -> ScreenLayout {
        let n = s.graph?.edges.filter { $0.relation != nil }.count ?? 1
        return Layout.compute(size, relations: n, zoom: s.zoomImages)
    }

    static func render(_ s: ViewState, size: Size) -> Frame {
        var grid = CellGrid(width: size.width, height: size.height, ascii: s.theme.glyphs.ascii)
        let l = layout(s, size: size)
        if l.tooSmall {
            Widgets.tooSmall(s, size: size, grid: &grid)
            return Frame(grid: grid, layout: l, wants: [], previewBox: nil)
        }
        Widgets.prompt(s, in: l.prompt, grid: &grid)
        if !l.relations.isEmpty { Widgets.relations(s, in: l.relations, grid: &grid) }
        if !l.classifier.isEmpty { Widgets.classifier(s, in: l.classifier, grid: &grid) }
        if !l.attention.isEmpty { Widgets.attention(s, in: l.attention, grid: &grid) }
        var wants: [FitRequest] = []
        var box: PixelBox? = nil
        if !l.preview.isEmpty {
            wants = Widgets.preview(s, in: l.preview, grid: &grid)
            let inner = l.preview.inset(1)
            // New steps arrive while the first slot shows x̂₀; fit them to that slot's box.
            let count = max(1, Widgets.previewPictures(s).count)
            box = Widgets.previewBox(inner: inner, count: count, theme: s.theme)
        }
        Widgets.schedule(s, in: l.schedule, grid: &grid)
        Widgets.status(s, in: l.status, grid: &grid)
        Widgets.keyBar(s, in: l.keys, grid: &grid)
        if s.mode == .help {
            grid.cursor = nil
            grid.images = []   // the overlay covers the panes
            Widgets.help(s, size: size, grid: &grid)
        }
        return Frame(grid: grid, layout: l, wants: wants, previewBox: box)
    }
}
