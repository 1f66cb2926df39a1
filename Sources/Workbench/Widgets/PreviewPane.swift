// The preview pane: the step's x̂₀ pictures, fitted to the pane by the UI thread (see `FitRequest`).
// A pure function from the view state to cells in its rectangle (see Widgets.swift).

import Foundation
import Imaging
import Steering

extension Widgets {
    // MARK: Preview

    /// The images the preview pane shows, left to right: (picture, caption, source image).
    static func previewPictures(_ s: ViewState) -> [(FitKey.Picture, String, RGBImage, Int)] {
        guard let run = s.run else { return [] }
        var out: [(FitKey.Picture, String, RGBImage, Int)] = []
        if let step = s.shownStep, run.steps.indices.contains(step) {
            out.append((.step(step), "\(s.theme.glyphs.predicted) step \(step + 1)", run.steps[step].preview, run.id))
        }
        if let f = run.final {
            out.append((.final, "final (\(run.steeringLabel))", f, run.id))
        }
        if let other = s.abCounterpart {
            out.append((.other, "A/B: \(other.steered ? "steered" : "unsteered")", other.image, other.runID))
        }
        return out
    }

    /// The pixel box each preview slot offers in a pane: its columns × 2·rows in every tier (a cell
    /// is about 1×2 pixels; half-blocks draw both, the other tiers one colour or glyph per pair), so
    /// the image keeps its aspect ratio whatever the tier.
    static func previewBox(inner: Rect, count: Int, theme: Theme) -> PixelBox {
        let n = max(1, count)
        let colW = (inner.width - 2 * (n - 1)) / n
        return PixelBox(width: colW, height: (inner.height - 1) * 2)
    }

    /// Draws the preview pane; returns the fitted images it needed but did not have.
    @discardableResult
    static func preview(_ s: ViewState, in r: Rect, grid: inout CellGrid) -> [FitRequest] {
        let t = s.theme
        let pictures = previewPictures(s)
        var title = "Preview"
        if let step = s.shownStep, let run = s.run { title += " \(t.glyphs.sectionDot) \(t.glyphs.predicted) at step \(step + 1)/\(run.totalSteps)" }
        let inner = grid.box(r, title: title, tag: "s save", theme: t)
        guard !inner.isEmpty else { return [] }
        guard !pictures.isEmpty else {
            draw([[(s.run == nil ? "No image yet." : "Waiting for the first step…", t.dim)]], in: inner, grid: &grid, theme: t)
            return []
        }
        var wants: [FitRequest] = []
        let n = pictures.count
        let box = previewBox(inner: inner, count: n, theme: t)
        guard box.width >= 2, box.height >= 2 else { return [] }
        for (i, (picture, caption, source, runID)) in pictures.enumerated() {
            let x0 = inner.x + i * (box.width + 2)
            let key = FitKey(run: runID, picture: picture, box: box)
            let capRect = Rect(x: x0, y: inner.maxY - 1, width: box.width, height: 1)
            grid.text(TextWidth.truncate(caption, to: box.width, ellipsis: t.glyphs.ellipsis), x: x0, y: capRect.y, style: t.dim, clip: capRect)
            guard let img = s.fitted[key], s.graphics == .blocks || img.graphics != nil else {
                wants.append(FitRequest(key: key, source: source))
                // True pixels: until this step's image is encoded, the nearest encoded step stays (no flicker).
                if s.graphics != .blocks, case .step(let k) = picture, let g = nearestEncodedStep(to: k, run: runID, box: box, in: s.fitted) {
                    place(g, x0: x0, box: box, inner: inner, grid: &grid)
                } else {
                    grid.text("fitting" + t.glyphs.ellipsis, x: x0, y: inner.y, style: t.dim, clip: inner)
                }
                continue
            }
            if s.graphics != .blocks, let g = img.graphics {
                place(g, x0: x0, box: box, inner: inner, grid: &grid)
                continue
            }
            drawImage(img, x: x0 + max(0, (box.width - img.width) / 2), y: inner.y, maxRows: inner.height - 1,
                      grid: &grid, theme: t)
        }
        return wants
    }

    /// A true-pixel image over its slot's cells, which stay blank for ncurses (centred like half-blocks).
    static func place(_ g: GraphicsImage, x0: Int, box: PixelBox, inner: Rect, grid: inout CellGrid) {
        let rect = Rect(x: x0 + max(0, (box.width - g.columns) / 2), y: inner.y, width: g.columns, height: min(g.rows, inner.height - 1))
        grid.images.append(ImagePlacement(rect: rect, image: g))
    }

    /// The encoded image of the step nearest `k` of a run in a box (the earlier one on ties), if any.
    static func nearestEncodedStep(to k: Int, run: Int, box: PixelBox, in fitted: [FitKey: FittedImage]) -> GraphicsImage? {
        var best: (distance: Int, step: Int, image: GraphicsImage)?
        for (key, img) in fitted where key.run == run && key.box == box {
            guard case .step(let j) = key.picture, let g = img.graphics else { continue }
            let d = abs(j - k)
            if best == nil || d < best!.distance || (d == best!.distance && j < best!.step) { best = (d, j, g) }
        }
        return best?.image
    }

    /// Draws a fitted image, one cell per column × two pixel rows: half-blocks (both pixels), else
    /// the upper pixel's colour, else a density glyph for the pair's mean luminance.
    static func drawImage(_ img: FittedImage, x: Int, y: Int, maxRows: Int, grid: inout CellGrid, theme t: Theme) {
        let g = t.glyphs
        let halfBlocks = t.tier != .none && !g.ascii
        let palette: [UInt8] = t.tier == .palette256 ? img.index256 : img.index8
        for row in 0..<min((img.height + 1) / 2, maxRows) {
            for px in 0..<img.width {
                let up = 2 * row * img.width + px
                let low = 2 * row + 1 < img.height ? up + img.width : -1
                let cell: Cell
                if halfBlocks {
                    let bg = low >= 0 ? TermColor(Int(palette[low])) : .default
                    cell = Cell(g.upperHalf, style: Style(fg: TermColor(Int(palette[up])), bg: bg))
                } else if t.tier != .none {
                    cell = Cell(" ", style: Style(bg: TermColor(Int(palette[up]))))
                } else {
                    let luma = low >= 0 ? (Int(img.luma[up]) + Int(img.luma[low])) / 2 : Int(img.luma[up])
                    cell = Cell(Gauge.density(Float(luma) / 255, glyphs: g))
                }
                grid.set(x: x + px, y: y + row, cell)
            }
        }
    }
}

/// A fitted image the preview pane needs: the key and the source to fit.
struct FitRequest: Sendable {
    var key: FitKey
    var source: RGBImage
}
