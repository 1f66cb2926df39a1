// True-pixel images: the escape output of each protocol (goldens, and decoded back: kitty's base64
// chunks, iTerm2's PNG through libpng, sixel through libsixel's sixel2png when installed), the
// choice of protocol from scripted terminal replies, the preview's placements, and what the backend
// writes after ncurses' frame.

import Foundation
import Imaging
import Testing
import ToyWorld
@testable import Workbench

/// Escape sequences made readable for goldens.
func visible(_ s: String) -> String {
    s.replacingOccurrences(of: "\u{1B}", with: "\\e").replacingOccurrences(of: "\u{07}", with: "\\a")
}

/// A deterministic test image with `colours` distinct xterm-palette colours.
func testImage(width: Int, height: Int, seed: UInt64 = 1, paletteOnly: Bool = true) -> [UInt8] {
    var state = seed
    var out: [UInt8] = []
    for _ in 0..<(width * height) {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        if paletteOnly {
            let (r, g, b) = Palette.rgb(16 + Int(state >> 33) % 240)
            out += [UInt8(r), UInt8(g), UInt8(b)]
        } else {
            out += [UInt8(truncatingIfNeeded: state >> 40), UInt8(truncatingIfNeeded: state >> 48), UInt8(truncatingIfNeeded: state >> 56)]
        }
    }
    return out
}

let haveSixel2png = FileManager.default.isExecutableFile(atPath: "/usr/bin/sixel2png")

@Suite struct GraphicsEncoderTests {
    let tiny: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]   // red green / blue white

    @Test func escapeOutputGoldens() {
        let kitty = GraphicsEncoder.kitty(pixels: tiny, width: 2, height: 2, columns: 4, rows: 2, id: 1)
        let iterm = GraphicsEncoder.iterm(pixels: tiny, width: 2, height: 2, columns: 4, rows: 2)
        // 3×7: two sixel bands, a run long enough to be run-length encoded.
        var px: [UInt8] = []
        for y in 0..<7 { for x in 0..<5 { px += (x + y) % 3 == 0 ? [0, 0, 0] : (y < 3 ? [255, 0, 0] : [0, 0, 255]) } }
        let sixel = GraphicsEncoder.sixel(pixels: px, width: 5, height: 7)
        assertGolden("graphics-escapes", ["kitty:", visible(kitty), "kitty delete:", visible(GraphicsEncoder.kittyDelete(id: 1)),
                                          "iterm:", visible(iterm), "sixel:", visible(sixel)].joined(separator: "\n"))
    }

    @Test func kittyChunksCarryThePixels() throws {
        let px = testImage(width: 64, height: 64, paletteOnly: false)
        let seq = GraphicsEncoder.kitty(pixels: px, width: 64, height: 64, columns: 20, rows: 10, id: 2)
        let chunks = seq.components(separatedBy: "\u{1B}\\").filter { !$0.isEmpty }
        #expect(chunks.count == 4, "12 288 bytes are 16 384 base64 characters: four chunks of 4096")
        #expect(chunks.first!.hasPrefix("\u{1B}_Ga=T,f=24,s=64,v=64,c=20,r=10,i=2,q=2,C=1,m=1;"))
        #expect(chunks.dropFirst().dropLast().allSatisfy { $0.hasPrefix("\u{1B}_Gm=1;") } && chunks.last!.hasPrefix("\u{1B}_Gm=0;"))
        let payload = chunks.map { String($0[$0.index(after: $0.firstIndex(of: ";")!)...]) }
        #expect(payload.dropLast().allSatisfy { $0.count == 4096 })
        #expect(Data(base64Encoded: payload.joined()).map { [UInt8]($0) } == px)
    }

    @Test func itermCarriesAPNGThatLibpngReads() throws {
        // 200×120: more raw bytes than one stored deflate block holds.
        for (w, h) in [(2, 2), (37, 23), (200, 120)] {
            let px = testImage(width: w, height: h, paletteOnly: false)
            let seq = GraphicsEncoder.iterm(pixels: px, width: w, height: h, columns: 10, rows: 5)
            #expect(seq.hasPrefix("\u{1B}]1337;File=inline=1;size=") && seq.hasSuffix("\u{07}") && seq.contains(";width=10;height=5;"))
            let b64 = String(seq[seq.index(after: seq.firstIndex(of: ":")!)..<seq.index(before: seq.endIndex)])
            let png = try #require(Data(base64Encoded: b64))
            let path = NSTemporaryDirectory() + "l2s-iterm-\(getpid())-\(w).png"
            defer { unlink(path) }
            try png.write(to: URL(fileURLWithPath: path))
            let back = try readPNG(path: path)
            #expect(back.width == w && back.height == h && back.rgb == px, "\(w)×\(h)")
        }
    }

    @Test(.enabled(if: haveSixel2png, "libsixel-bin (sixel2png) is not installed")) func sixelDecodesBackToThePixels() throws {
        let (w, h) = (41, 29)
        let px = testImage(width: w, height: h)
        let path = NSTemporaryDirectory() + "l2s-sixel-\(getpid())"
        defer { unlink(path + ".six"); unlink(path + ".png") }
        try Data(GraphicsEncoder.sixel(pixels: px, width: w, height: h).utf8).write(to: URL(fileURLWithPath: path + ".six"))
        let (status, out) = shell("/usr/bin/sixel2png", ["-i", path + ".six", "-o", path + ".png"])
        try #require(status == 0, "sixel2png: \(out)")
        let back = try readPNG(path: path + ".png")
        #expect(back.width == w && back.height == h)
        // Sixel colours are percentages: each channel comes back within 3 of the original.
        let worst = zip(back.rgb, px).map { abs(Int($0) - Int($1)) }.max() ?? 99
        #expect(back.rgb.count == px.count && worst <= 3, "largest channel error \(worst)")
    }

    @Test func graphicsImageFitsTheCells() throws {
        let src = RGBImage(width: 32, height: 32, pixels: testImage(width: 32, height: 32))
        // A 40-column × 10-row slot (box 40 × 20 half-block pixels) with 10×20-pixel cells.
        let box = PixelBox(width: 40, height: 20), cell = PixelBox(width: 10, height: 20)
        let six = try #require(GraphicsImage.make(src, box: box, cell: cell, protocol: .sixel, id: 1))
        #expect(six.columns == 20 && six.rows == 10, "a square image: 200×200 px = 20×10 cells")
        #expect(six.payload.hasPrefix("\u{1B}Pq\"1;1;200;200") && six.erase.isEmpty)
        let kit = try #require(GraphicsImage.make(src, box: box, cell: cell, protocol: .kitty, id: 2))
        #expect(kit.payload.hasPrefix("\u{1B}_Ga=T,f=24,s=32,v=32,c=20,r=10,i=2") && kit.erase == GraphicsEncoder.kittyDelete(id: 2))
        #expect(GraphicsImage.make(src, box: box, cell: cell, protocol: .blocks, id: 1) == nil)
    }
}

@Suite struct GraphicsDetectionTests {
    let plain = ["TERM": "xterm-256color"]

    @Test func scriptedReplies() {
        let da = "\u{1B}[?62;22c", daSixel = "\u{1B}[?62;4;22c", kittyOK = "\u{1B}_Gi=31;OK\u{1B}\\"
        #expect(GraphicsDetection.parse(kittyOK + da) == GraphicsDetection.Reply(kitty: true, attributes: [62, 22], complete: true))
        #expect(GraphicsDetection.parse(kittyOK).complete == false, "the DA reply ends the answer")
        #expect(GraphicsDetection.decide(.auto, env: plain, reply: kittyOK + da).0 == .kitty)
        #expect(GraphicsDetection.decide(.auto, env: plain, reply: daSixel).0 == .sixel)
        #expect(GraphicsDetection.decide(.auto, env: plain, reply: da).0 == .blocks)
        #expect(GraphicsDetection.decide(.auto, env: plain, reply: nil) == (.blocks, "no answer to the graphics query: half-blocks"))
        #expect(GraphicsDetection.decide(.auto, env: plain, reply: "garbage").0 == .blocks)
    }

    @Test func environmentAndMultiplexers() {
        #expect(GraphicsDetection.decide(.auto, env: ["TERM": "xterm-kitty"], reply: nil).0 == .kitty)
        #expect(GraphicsDetection.decide(.auto, env: ["TERM": "xterm-256color", "KITTY_WINDOW_ID": "3"], reply: nil).0 == .kitty)
        #expect(GraphicsDetection.decide(.auto, env: ["TERM": "xterm-256color", "TERM_PROGRAM": "iTerm.app"], reply: nil).0 == .iterm)
        // Inside tmux or screen: half-blocks, whatever the outer terminal says, and no query at all.
        let tmux = ["TERM": "tmux-256color", "TMUX": "/tmp/tmux-0/default,1,0", "KITTY_WINDOW_ID": "3"]
        #expect(GraphicsDetection.decide(.auto, env: tmux, reply: "\u{1B}_Gi=31;OK\u{1B}\\\u{1B}[?62;4c").0 == .blocks)
        #expect(!GraphicsDetection.shouldQuery(.auto, env: tmux) && GraphicsDetection.shouldQuery(.auto, env: plain))
        #expect(GraphicsDetection.decide(.auto, env: ["TERM": "screen-256color"], reply: nil).0 == .blocks)
        // An explicit choice wins, inside tmux too, and is not queried.
        #expect(GraphicsDetection.decide(.sixel, env: tmux, reply: nil).0 == .sixel)
        #expect(!GraphicsDetection.shouldQuery(.kitty, env: plain))
    }
}

@Suite struct GraphicsScreenTests {
    /// The demo state fitted for true pixels, as the App's fitter queue does.
    func state(_ p: GraphicsProtocol, size: Size) -> ViewState {
        var s = Fixture.running(twoRelations, steps: 50, size: size)
        s.graphics = p
        s.fitted = [:]
        for _ in 0..<2 {
            for w in Screen.render(s, size: size).wants {
                var img = ImageFitter.fit(w.source, boxWidth: w.key.box.width, boxHeight: w.key.box.height)
                img.graphics = GraphicsImage.make(w.source, box: w.key.box, cell: s.cellSize, protocol: p, id: w.key.picture.imageID)
                s.apply(.fitted(w.key, img))
            }
        }
        return s
    }

    @Test func previewPlacesImagesOverBlankCells() {
        let size = Size(width: 120, height: 40)
        let s = state(.kitty, size: size)
        let frame = Screen.render(s, size: size)
        #expect(frame.wants.count == 0)
        let inPreview = frame.grid.images.filter { frame.layout.preview.contains($0.rect) }
        #expect(inPreview.count == 2 && frame.grid.images.count == 3, "x̂₀ and the final image, and the attention map")
        for p in inPreview {
            #expect(frame.layout.preview.inset(1).contains(p.rect), "\(p.rect) inside the preview")
            let blank = (p.rect.y..<p.rect.maxY).allSatisfy { y in (p.rect.x..<p.rect.maxX).allSatisfy { frame.grid[$0, y].character == " " } }
            #expect(blank, "the cells under \(p.rect) are blank")
        }
        let ids = inPreview.map { p in (1...3).filter { p.image.payload.contains("i=\($0),") } }
        #expect(ids == [[1], [2]], "one kitty id per slot: \(ids)")
        let r = frame.layout.preview
        let halfBlocks = (r.y..<r.maxY).flatMap { y in (r.x..<r.maxX).filter { frame.grid[$0, y].character == "▀" } }.count
        #expect(halfBlocks == 0, "no half-blocks in the preview")
        var help = s
        _ = help.apply(.help)
        let underHelp = Screen.render(help, size: size).grid.images.count
        #expect(underHelp == 0, "the help overlay covers the images")
        // Half-blocks as before.
        let blocks = Fixture.running(twoRelations, steps: 50, size: size)
        #expect(Screen.render(blocks, size: size).grid.images.count == 0)
    }

    @Test func aPendingStepKeepsTheNearestEncodedOne() {
        let size = Size(width: 120, height: 40)
        var s = state(.sixel, size: size)
        let before = Screen.render(s, size: size).grid.images
        _ = s.apply(.scrub(-1))   // step 49: not encoded yet
        let frame = Screen.render(s, size: size)
        #expect(frame.wants.count == 1)
        let preview = { (f: [ImagePlacement]) in f.filter { frame.layout.preview.contains($0.rect) } }
        #expect(preview(frame.grid.images).count == 2 && preview(frame.grid.images).first == preview(before).first,
                "step 50's image stays until step 49's is ready")
    }

    @Test func backendWritesImagesAfterTheFrameAndErasesThemWhenTheyGo() throws {
        let backend = try CursesBackend(headlessWidth: 60, height: 20)
        defer { backend.end() }
        var written: [String] = []
        backend.imageOutput = { written.append($0) }
        let img = GraphicsImage(columns: 4, rows: 2, payload: "<PIXELS>", erase: "<ERASE>")
        var g = CellGrid(width: 60, height: 20)
        g.images = [ImagePlacement(rect: Rect(x: 3, y: 5, width: 4, height: 2), image: img)]
        backend.draw(g)
        #expect(written == ["\u{1B}7\u{1B}[6;4H<PIXELS>\u{1B}8"])
        backend.draw(g)
        #expect(written.count == 1, "an unchanged image is not sent again")
        var moved = g
        moved.images[0].image.payload = "<NEXT>"
        backend.draw(moved)
        #expect(written.last == "\u{1B}7\u{1B}[6;4H<NEXT>\u{1B}8", "a new image in the same place replaces it")
        var none = g
        none.images = []
        backend.draw(none)
        #expect(written.last == "<ERASE>")
        backend.draw(g)
        backend.invalidate()
        backend.draw(g)
        #expect(written.suffix(2) == ["\u{1B}7\u{1B}[6;4H<PIXELS>\u{1B}8", "<ERASE>\u{1B}7\u{1B}[6;4H<PIXELS>\u{1B}8"], "a full repaint sends every image again")
    }
}

/// Kitty's transmissions in `seq` (or a pty's bytes) decoded: the first chunk's keys, and the RGB the chunks carry.
func kittyImages(_ seq: String) -> [(keys: [String: Int], bytes: [UInt8])] {
    var out: [(keys: [String: Int], bytes: [UInt8])] = []
    var keys: [String: Int] = [:], b64 = ""
    for chunk in seq.components(separatedBy: "\u{1B}_G").dropFirst() {
        guard let semi = chunk.firstIndex(of: ";"), let end = chunk.range(of: "\u{1B}\\") else { continue }
        let kv = Dictionary(chunk[..<semi].split(separator: ",").compactMap { kv -> (String, Int)? in
            let p = kv.split(separator: "="); return p.count == 2 ? (String(p[0]), Int(p[1]) ?? -1) : nil }, uniquingKeysWith: { $1 })
        if kv["a"] == nil && kv["m"] == nil { continue }
        if chunk.hasPrefix("a=T") { keys = kv; b64 = "" } else if keys.isEmpty { continue }
        b64 += chunk[chunk.index(after: semi)..<end.lowerBound]
        if kv["m"] == 0 {
            out.append((keys, Data(base64Encoded: b64).map { [UInt8]($0) } ?? []))
            keys = [:]; b64 = ""
        }
    }
    return out
}

/// The attention pane's true-pixel image: the map rendered to RGB in a pure function, encoded, and
/// placed over blank cells; erased and sent again as the pane changes.
@Suite struct AttentionGraphicsTests {
    let map: [Float] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15.5]

    @Test func pixelsAreTheColormapOfTheNormalisedMap() {
        let img = Widgets.attentionPixels(map, colormap: .magma, scale: 2)
        #expect(img.width == 8 && img.height == 8)
        func rgb(_ x: Int, _ y: Int) -> [UInt8] { Array(img.pixels[(3 * (y * 8 + x))..<(3 * (y * 8 + x) + 3)]) }
        let (r0, g0, b0) = Palette.rgb(Int(Colormap.magma.lut.first!)), (r1, g1, b1) = Palette.rgb(Int(Colormap.magma.lut.last!))
        #expect(rgb(0, 0) == [UInt8(r0), UInt8(g0), UInt8(b0)] && rgb(1, 1) == rgb(0, 0), "the minimum is the darkest, 2×2 pixels a cell")
        #expect(rgb(7, 7) == [UInt8(r1), UInt8(g1), UInt8(b1)], "the maximum is the lightest")
        #expect(Widgets.attentionPixels(map, colormap: .gray).pixels != Widgets.attentionPixels(map, colormap: .magma).pixels)
        #expect(Widgets.attentionPixels([1, 2, 3], colormap: .gray).width == 0, "not square: nothing")
    }

    @Test func escapeOutputGoldenAndKittyDecodesToThePureRender() throws {
        let box = PixelBox(width: 20, height: 20), cell = PixelBox(width: 10, height: 20)
        let kitty = try #require(Widgets.attentionImage(map, colormap: .magma, box: box, cell: cell, protocol: .kitty))
        let decoded = try #require(kittyImages(kitty.payload).first)
        let expected = Widgets.attentionPixels(map, colormap: .magma, scale: 32)
        #expect(decoded.keys["s"] == 128 && decoded.keys["v"] == 128 && decoded.keys["i"] == Widgets.attentionImageID)
        #expect(decoded.bytes == expected.pixels, "the chunks carry the pure RGB render")
        #expect(kitty.erase == GraphicsEncoder.kittyDelete(id: Widgets.attentionImageID))
        // The framing of kitty's chunks (the base64 is checked above), and sixel in full: a 4×4 map
        // in 4 cells × 2 rows of 4×6 px is 12×12 px.
        let framing = kitty.payload.components(separatedBy: "\u{1B}\\").filter { !$0.isEmpty }.map { c -> String in
            let semi = c.firstIndex(of: ";")!
            return visible(String(c[...semi])) + "<\(c.distance(from: semi, to: c.endIndex) - 1) base64>\\e\\"
        }
        let sixel = try #require(Widgets.attentionImage(map, colormap: .magma, box: PixelBox(width: 4, height: 4),
                                                        cell: PixelBox(width: 4, height: 6), protocol: .sixel))
        let iterm = try #require(Widgets.attentionImage(map, colormap: .gray, box: box, cell: cell, protocol: .iterm))
        #expect(iterm.payload.hasPrefix("\u{1B}]1337;File=inline=1;") && iterm.payload.contains(";width=20;height=10;"))
        assertGolden("graphics-attention", (["kitty (\(kitty.columns)×\(kitty.rows) cells):"] + framing
            + ["sixel (\(sixel.columns)×\(sixel.rows) cells):", visible(sixel.payload), "sixel erase: \"\(sixel.erase)\""]).joined(separator: "\n"))
        #expect(Widgets.attentionImage(map, colormap: .magma, box: box, cell: cell, protocol: .blocks) == nil)
    }

    func state(_ p: GraphicsProtocol, size: Size) -> ViewState {
        var s = Fixture.running(twoRelations, steps: 50, size: size)
        s.graphics = p
        return s
    }

    func attentionImage(_ frame: Frame) -> ImagePlacement? {
        frame.grid.images.first { frame.layout.attention.contains($0.rect) }
    }

    @Test func thePanePlacesTheShownMapOverBlankCells() throws {
        let size = Size(width: 120, height: 40)
        for p in [GraphicsProtocol.kitty, .sixel, .iterm] {
            let s = state(p, size: size)
            let frame = Screen.render(s, size: size)
            let placed = try #require(attentionImage(frame), "\(p): an attention image")
            let inner = frame.layout.attention.inset(1)
            #expect(inner.contains(placed.rect) && placed.rect.maxY <= inner.maxY - 2, "\(p): above the legend")
            let cells = (inner.y..<(inner.maxY - 2)).flatMap { y in (inner.x..<inner.maxX).map { frame.grid[$0, y].character } }
            #expect(cells.allSatisfy { $0 == " " }, "\(p): no half-blocks under or beside the image")
            #expect(frame.grid[inner.x, inner.maxY - 2].character == "m", "\(p): the legend stays text (min …)")
            let it = try #require(s.shownIteration)
            let want = Widgets.attentionImage(it.map(s.token, layer: s.mapLayer, head: s.mapHead), colormap: s.theme.colormap,
                                              box: PixelBox(width: inner.width, height: (inner.height - 2) * 2), cell: s.cellSize, protocol: p)
            #expect(placed.image == want)
        }
        let kitty = try #require(attentionImage(Screen.render(state(.kitty, size: size), size: size)))
        let decoded = try #require(kittyImages(kitty.image.payload).first)
        let s = state(.kitty, size: size), it = try #require(s.shownIteration)
        let side = Int(Double(it.subjectMap.count).squareRoot())
        #expect(decoded.bytes == Widgets.attentionPixels(it.subjectMap, colormap: s.theme.colormap, scale: 128 / side).pixels)
        // Half-blocks stay the fallback.
        let blocks = Screen.render(state(.blocks, size: size), size: size)
        #expect(attentionImage(blocks) == nil)
        let r = blocks.layout.attention
        #expect((r.y..<r.maxY).contains { y in (r.x..<r.maxX).contains { blocks.grid[$0, y].character == "▀" } })
    }

    @Test func theBackendReplacesItWhenTheTokenChangesAndErasesItOnResizeAndUnderHelp() throws {
        let size = Size(width: 120, height: 40)
        let backend = try CursesBackend(headlessWidth: size.width, height: size.height)
        defer { backend.end() }
        var written: [String] = []
        backend.imageOutput = { written.append($0) }
        var s = state(.kitty, size: size)
        let delete = GraphicsEncoder.kittyDelete(id: Widgets.attentionImageID)
        func attentionSent(_ out: String) -> [[UInt8]] {
            kittyImages(out).filter { $0.keys["i"] == Widgets.attentionImageID }.map(\.bytes)
        }
        backend.draw(Screen.render(s, size: size).grid)
        let subject = try #require(attentionSent(written.joined()).first)
        written.removeAll()
        backend.draw(Screen.render(s, size: size).grid)
        #expect(written.isEmpty, "an unchanged frame sends nothing")
        // The other token: the same place, a new image under the same id (kitty replaces it; no erase).
        _ = s.apply(.switchToken)
        backend.draw(Screen.render(s, size: size).grid)
        let object = try #require(attentionSent(written.joined()).first)
        #expect(object != subject && written.count == 1 && !written[0].contains(delete))
        // A narrower screen: a full repaint erases every image and sends it again.
        written.removeAll()
        let small = Size(width: 100, height: 34)
        backend.draw(Screen.render(s, size: small).grid)
        let out = written.joined()
        #expect(out.contains(delete), "the old attention image is deleted")
        #expect(attentionSent(out).count == 1)
        let moved = try #require(attentionImage(Screen.render(s, size: small)))
        #expect(out.contains("\u{1B}[\(moved.rect.y + 1);\(moved.rect.x + 1)H" + moved.image.payload))
        // Help covers the panes: the image goes (deleted, its rows repainted).
        written.removeAll()
        _ = s.apply(.help)
        backend.draw(Screen.render(s, size: small).grid)
        #expect(written.joined().contains(delete) && attentionSent(written.joined()).isEmpty)
        // Back: sent again.
        written.removeAll()
        _ = s.apply(.closeHelp)
        backend.draw(Screen.render(s, size: small).grid)
        #expect(attentionSent(written.joined()).count == 1)
    }
}
