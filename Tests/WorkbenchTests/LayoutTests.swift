// layout(size) invariants over every size 1×1 … 300×100, and whole-screen renders over a sample of
// sizes (no crash, exact grid size, nothing drawn outside the screen).

import Testing
@testable import Workbench

@Suite struct LayoutTests {
    @Test func everySizeFrom1x1To300x100() {
        for w in 1...300 {
            for h in 1...100 {
                for zoom in [false, true] {
                    let size = Size(width: w, height: h)
                    let l = Layout.compute(size, relations: (w + h) % 4, zoom: zoom)
                    let screen = Rect(x: 0, y: 0, width: w, height: h)
                    #expect(l.tooSmall == (w < Layout.minimum.width || h < Layout.minimum.height))
                    if l.tooSmall {
                        #expect(l.panes.allSatisfy { $0.1.isEmpty })
                        continue
                    }
                    let panes = l.panes.filter { !$0.1.isEmpty }
                    for (name, r) in panes {
                        if !screen.contains(r) { Issue.record("\(name) \(r) outside \(size)"); return }
                    }
                    for i in panes.indices {
                        for j in panes.indices where j > i {
                            if panes[i].1.intersects(panes[j].1) {
                                Issue.record("\(panes[i].0) overlaps \(panes[j].0) at \(size)"); return
                            }
                        }
                    }
                    // The fixed rows are always there and full width.
                    #expect(l.prompt.height == 3 && l.status.height == 1 && l.keys.height == 1)
                    #expect(l.prompt.width == w && l.schedule.width == w && l.keys.width == w)
                    #expect(!l.preview.isEmpty || !l.classifier.isEmpty)
                    // Every row is used: panes cover the screen.
                    #expect(panes.reduce(0) { $0 + $1.1.area } == w * h)
                }
            }
        }
    }

    @Test func imagePanesAppearOnceThereIsRoom() {
        let small = Layout.compute(Size(width: 80, height: 24))
        #expect(!small.attention.isEmpty && !small.preview.isEmpty)
        let short = Layout.compute(Size(width: 80, height: 21))
        #expect(short.attention.isEmpty && !short.classifier.isEmpty)
        let zoomed = Layout.compute(Size(width: 80, height: 21), zoom: true)
        #expect(!zoomed.preview.isEmpty && zoomed.classifier.isEmpty)
        let big = Layout.compute(Size(width: 200, height: 60), relations: 2)
        #expect(big.preview.height >= 30, "a 200×60 screen shows a 64-pixel-tall preview")
    }

    @Test func renderingNeverCrashesAndFillsTheGrid() {
        let running = Fixture.running("a dog to the right of a teddy bear and a cat above the dog", steps: 12)
        var help = running
        _ = help.apply(.help)
        let ascii = Fixture.running("a 猫 to the left of a 🐶", steps: 5, tier: .none, ascii: true)
        let states = [Fixture.state(), running, help, ascii]
        var sizes: [Size] = []
        for w in stride(from: 1, through: 300, by: 7) { for h in stride(from: 1, through: 100, by: 9) { sizes.append(Size(width: w, height: h)) } }
        sizes += [Size(width: 60, height: 20), Size(width: 59, height: 20), Size(width: 60, height: 19), Size(width: 0, height: 0)]
        for s in states {
            for size in sizes {
                let f = Screen.render(s, size: size)
                #expect(f.grid.width == size.width && f.grid.height == size.height)
                if let c = f.grid.cursor { #expect(c.x >= 0 && c.x < size.width && c.y >= 0 && c.y < size.height) }
                // Every wide grapheme is followed by its continuation cell.
                for y in 0..<f.grid.height {
                    for x in 0..<f.grid.width where f.grid[x, y].width == 2 {
                        #expect(x + 1 < f.grid.width && f.grid[x + 1, y].width == 0)
                    }
                }
            }
        }
    }
}
