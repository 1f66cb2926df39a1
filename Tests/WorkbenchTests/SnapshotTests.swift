// Golden-text snapshots of every pane and of whole screens at several sizes and colour tiers.
// Regenerate with L2S_UPDATE_GOLDENS=1 (then read the diff: these files are the UI's spec).

import Testing
import Steering
@testable import Workbench

let twoRelations = "a dog to the right of a teddy bear and a cat above the dog"
let messy = "a cat to the left of a dog, a dog to the left of a cat and a bird next to the cat"

@Suite struct PaneSnapshotTests {
    @Test func promptPane() {
        var s = Fixture.state()
        assertGolden("pane-prompt-empty", Fixture.pane(Size(width: 60, height: 3)) { Widgets.prompt(s, in: $1, grid: &$0) }.plainText())
        _ = s.apply(.insert("a 猫 cat to the left of a 🐶 dog, on a very long line that needs to scroll sideways"))
        let g = Fixture.pane(Size(width: 40, height: 3)) { Widgets.prompt(s, in: $1, grid: &$0) }
        assertGolden("pane-prompt-cjk-scrolled", g.plainText() + "\ncursor \(g.cursor.map { "\($0.x),\($0.y)" } ?? "none")")
        _ = s.apply(.cursorHome)
        let h = Fixture.pane(Size(width: 40, height: 3)) { Widgets.prompt(s, in: $1, grid: &$0) }
        assertGolden("pane-prompt-cjk-home", h.plainText() + "\ncursor \(h.cursor.map { "\($0.x),\($0.y)" } ?? "none")")
    }

    @Test func relationsPane() {
        let s = Fixture.running(twoRelations, steps: 8)
        assertGolden("pane-relations-running", Fixture.pane(Size(width: 50, height: 9)) { Widgets.relations(s, in: $1, grid: &$0) }.plainText())
        let m = Fixture.running(messy, steps: 0)
        assertGolden("pane-relations-unsupported-contradiction",
                     Fixture.pane(Size(width: 56, height: 14)) { Widgets.relations(m, in: $1, grid: &$0) }.plainText())
        var e = Fixture.state()
        _ = e.apply(.run)
        assertGolden("pane-relations-empty-prompt", Fixture.pane(Size(width: 40, height: 6)) { Widgets.relations(e, in: $1, grid: &$0) }.plainText())
        let u = Fixture.running("a dog to the left of a blue square", steps: 2, vocabulary: Fixture.toyVocabulary)
        assertGolden("pane-relations-unknown-object", Fixture.pane(Size(width: 50, height: 9)) { Widgets.relations(u, in: $1, grid: &$0) }.plainText())
        let n = Fixture.running("a cat and a dog", steps: 2)
        assertGolden("pane-relations-no-relation", Fixture.pane(Size(width: 50, height: 8)) { Widgets.relations(n, in: $1, grid: &$0) }.plainText())
        // Reordered and one switched off.
        var o = Fixture.running(twoRelations, steps: 3)
        _ = o.handle(key: .char("J"))
        _ = o.handle(key: .char("d"))
        assertGolden("pane-relations-reordered-off", Fixture.pane(Size(width: 50, height: 9)) { Widgets.relations(o, in: $1, grid: &$0) }.plainText())
    }

    @Test func classifierPane() {
        let s = Fixture.running(twoRelations, steps: 12)
        assertGolden("pane-classifier-full", Fixture.pane(Size(width: 74, height: 17)) { Widgets.classifier(s, in: $1, grid: &$0) }.plainText())
        assertGolden("pane-classifier-compact", Fixture.pane(Size(width: 60, height: 10)) { Widgets.classifier(s, in: $1, grid: &$0) }.plainText())
        assertGolden("pane-classifier-tiny", Fixture.pane(Size(width: 30, height: 4)) { Widgets.classifier(s, in: $1, grid: &$0) }.plainText())
        let late = Fixture.running(twoRelations, steps: 40)
        assertGolden("pane-classifier-outside-range", Fixture.pane(Size(width: 74, height: 12)) { Widgets.classifier(late, in: $1, grid: &$0) }.plainText())
        let ascii = Fixture.running(twoRelations, steps: 12, tier: .none, ascii: true)
        assertGolden("pane-classifier-ascii", Fixture.pane(Size(width: 60, height: 10), { Widgets.classifier(ascii, in: $1, grid: &$0) }, ascii: true).plainText())
    }

    @Test func attentionPane() {
        var s = Fixture.running(twoRelations, steps: 12)
        let g = Fixture.pane(Size(width: 36, height: 13)) { Widgets.attention(s, in: $1, grid: &$0) }
        assertGolden("pane-attention-256", g.plainText() + "\n--- styles (fg/bg per run) ---\n" + g.styleText())
        _ = s.apply(.switchToken)
        _ = s.apply(.scrub(-4))
        _ = s.apply(.cycleColormap)
        let o = Fixture.pane(Size(width: 36, height: 13)) { Widgets.attention(s, in: $1, grid: &$0) }
        assertGolden("pane-attention-object-scrubbed-inferno", o.plainText() + "\n--- styles ---\n" + o.styleText())
        // One layer, then one head of it (the scripted engine's made-up stack: 2 layers × 2 heads).
        var layered = Fixture.running(twoRelations, steps: 12)
        _ = layered.apply(.cycleLayer(1))
        _ = layered.apply(.cycleLayer(1))
        _ = layered.apply(.cycleHead(-1))
        #expect(layered.mapLayer == 1 && layered.mapHead == 1)
        assertGolden("pane-attention-layer2-head2", Fixture.pane(Size(width: 36, height: 13)) { Widgets.attention(layered, in: $1, grid: &$0) }.plainText())
        let mono = Fixture.running(twoRelations, steps: 12, tier: .none)
        assertGolden("pane-attention-nocolor", Fixture.pane(Size(width: 36, height: 13)) { Widgets.attention(mono, in: $1, grid: &$0) }.plainText())
        let ascii = Fixture.running(twoRelations, steps: 12, tier: .none, ascii: true)
        assertGolden("pane-attention-ascii", Fixture.pane(Size(width: 36, height: 13), { Widgets.attention(ascii, in: $1, grid: &$0) }, ascii: true).plainText())
    }

    @Test func previewPane() {
        let size = Size(width: 60, height: 12)
        var s = Fixture.running(twoRelations, steps: 50, size: Size(width: 200, height: 60))
        // Fit for this pane's size.
        for _ in 0..<2 {
            var g = CellGrid(width: size.width, height: size.height)
            for w in Widgets.preview(s, in: g.bounds, grid: &g) {
                s.apply(.fitted(w.key, ImageFitter.fit(w.source, boxWidth: w.key.box.width, boxHeight: w.key.box.height)))
            }
        }
        var g = CellGrid(width: size.width, height: size.height)
        #expect(Widgets.preview(s, in: g.bounds, grid: &g).isEmpty)
        assertGolden("pane-preview-final", g.plainText() + "\n--- styles ---\n" + g.styleText(in: Rect(x: 0, y: 0, width: 30, height: 6)))
        // Missing fits are requested, not computed on the UI thread.
        let fresh = Fixture.state()
        var f = Fixture.running(twoRelations, steps: 3)
        f.fitted = [:]
        var h = CellGrid(width: 40, height: 10)
        let wants = Widgets.preview(f, in: h.bounds, grid: &h)
        #expect(wants.count == 1 && h.plainText().contains("fitting"))
        var e = CellGrid(width: 40, height: 5)
        Widgets.preview(fresh, in: e.bounds, grid: &e)
        assertGolden("pane-preview-empty", e.plainText())
    }

    @Test func schedulePane() {
        var s = Fixture.running(twoRelations, steps: 20)
        _ = s.apply(.adjustGuidance(1))
        s.field = .steps
        _ = s.apply(.adjustField(1))
        assertGolden("pane-schedule-pending", Fixture.pane(Size(width: 100, height: 5)) { Widgets.schedule(s, in: $1, grid: &$0) }.plainText())
        s.focus = .schedule
        s.field = .stepSize
        _ = s.apply(.editField)
        _ = s.apply(.insert("5"))
        let g = Fixture.pane(Size(width: 70, height: 5)) { Widgets.schedule(s, in: $1, grid: &$0) }
        assertGolden("pane-schedule-typing", g.plainText() + "\ncursor \(g.cursor.map { "\($0.x),\($0.y)" } ?? "none")")
    }

    @Test func statusAndKeyBar() {
        var s = Fixture.running(twoRelations, steps: 20)
        let status = Fixture.pane(Size(width: 90, height: 1)) { Widgets.status(s, in: $1, grid: &$0) }
        _ = s.apply(.pauseResume)
        s.apply(.paused(run: 1, step: 20))
        let paused = Fixture.pane(Size(width: 90, height: 1)) { Widgets.status(s, in: $1, grid: &$0) }
        var idle = Fixture.state()
        idle.apply(.status(.unavailable("the embedded model's weights were not found")))
        let unavailable = Fixture.pane(Size(width: 90, height: 1)) { Widgets.status(idle, in: $1, grid: &$0) }
        var bars: [String] = []
        for (mode, focus) in [(InputMode.prompt, Focus.relations), (.command, .relations), (.command, .schedule), (.field(.seed), .schedule), (.help, .relations)] {
            var k = Fixture.state()
            k.mode = mode
            k.focus = focus
            bars.append(Fixture.pane(Size(width: 120, height: 1)) { Widgets.keyBar(k, in: $1, grid: &$0) }.plainText())
        }
        assertGolden("status-and-keybar", ([status.plainText(), paused.plainText(), unavailable.plainText()] + bars).joined(separator: "\n"))
    }
}

@Suite struct ScreenSnapshotTests {
    @Test func screensAtSeveralSizes() {
        let running = Fixture.running(twoRelations, steps: 14, size: Size(width: 80, height: 24))
        assertGolden("screen-80x24-running", Fixture.screen(running, Size(width: 80, height: 24)).plainText())
        let finished = Fixture.running(twoRelations, steps: 50, size: Size(width: 120, height: 40))
        assertGolden("screen-120x40-finished", Fixture.screen(finished, Size(width: 120, height: 40)).plainText())
        let big = Fixture.running(twoRelations, steps: 30, size: Size(width: 200, height: 60))
        assertGolden("screen-200x60-running", Fixture.screen(big, Size(width: 200, height: 60)).plainText())
        assertGolden("screen-60x20-minimum", Fixture.screen(running, Size(width: 60, height: 20)).plainText())
        var zoom = running
        _ = zoom.apply(.toggleZoom)
        Fixture.fit(&zoom, size: Size(width: 60, height: 20))
        assertGolden("screen-60x20-zoomed", Fixture.screen(zoom, Size(width: 60, height: 20)).plainText())
    }

    @Test func tooSmallScreens() {
        let s = Fixture.state()
        var out: [String] = []
        for size in [Size(width: 59, height: 30), Size(width: 30, height: 8), Size(width: 12, height: 3), Size(width: 1, height: 1)] {
            out.append("[\(size)]")
            out.append(Fixture.screen(s, size).plainText())
        }
        assertGolden("screen-too-small", out.joined(separator: "\n"))
    }

    @Test func fallbackTiers() {
        let size = Size(width: 80, height: 24)
        let ascii = Fixture.running(twoRelations, steps: 14, size: size, tier: .none, ascii: true)
        let g = Fixture.screen(ascii, size)
        assertGolden("screen-80x24-ascii-nocolor", g.plainText())
        #expect(g.plainText().unicodeScalars.allSatisfy { $0.value < 0x80 }, "ASCII mode draws only ASCII")
        #expect(g.cells.allSatisfy { $0.style.fg.isDefault && $0.style.bg.isDefault }, "no colour at all")
        let basic = Fixture.running(twoRelations, steps: 14, size: size, tier: .basic)
        let b = Fixture.screen(basic, size)
        #expect(b.cells.allSatisfy { $0.style.fg.index < 16 && $0.style.bg.index < 16 }, "8/16-colour tier uses only 0–15")
        assertGolden("screen-80x24-basic-styles", b.plainText() + "\n--- styles ---\n" + b.styleText())
    }

    @Test func helpOverlay() {
        var s = Fixture.running(twoRelations, steps: 5)
        _ = s.apply(.help)
        assertGolden("screen-80x24-help", Fixture.screen(s, Size(width: 80, height: 24)).plainText())
        _ = s.apply(.helpScroll(200))
        assertGolden("screen-80x24-help-scrolled", Fixture.screen(s, Size(width: 80, height: 24)).plainText())
    }

    @Test func badPromptScreen() {
        var s = Fixture.state(vocabulary: Fixture.toyVocabulary)
        _ = s.apply(.insert(String(repeating: "x", count: 10_000)))
        _ = s.apply(.run)
        assertGolden("screen-80x24-10kB-prompt", Fixture.screen(s, Size(width: 80, height: 24)).plainText())
    }
}
