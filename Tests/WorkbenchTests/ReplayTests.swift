// Replay and the map strip: a recorded run reads back into the same panes, the replay engine only
// shows the recorded run, and the strip holds each steered step's maps.

import Foundation
import Testing
import Imaging
import Steering
import ToyWorld
@testable import Workbench

@Suite struct ReplayTests {
    /// The run's recording, written and read back as `l2s replay` reads it.
    func roundTrip(_ s: ViewState) throws -> RunTrace.Recording {
        let path = NSTemporaryDirectory() + "l2s-replay-\(getpid())-\(UUID().uuidString).trace.json"
        defer { unlink(path) }
        try RunTrace.json(s.run!, graph: s.graph).write(to: URL(fileURLWithPath: path))
        return try RunTrace.load(path: path)
    }

    /// A workbench state on the replay engine, the recorded run played into it.
    func replayed(_ rec: RunTrace.Recording, size: Size) -> ViewState {
        var s = ViewState(theme: Theme(tier: .palette256, ascii: false), engineName: "replay", defaults: rec.settings, vocabulary: nil)
        let effects = s.startRun(prompt: rec.prompt, steered: rec.settings.steered)
        s.mode = .command   // as the App leaves it after starting the recorded run
        for case .start(let request) in effects {
            for e in ReplayEngine.events(of: rec, for: request) { s.apply(e) }
        }
        Fixture.fit(&s, size: size)
        return s
    }

    @Test func aRecordedRunShowsTheSamePanesAtEveryStep() throws {
        let size = Size(width: 120, height: 40)
        var live = Fixture.running(twoRelations, steps: 50, size: size)
        let rec = try roundTrip(live)
        #expect(rec.steps.count == 50 && rec.iterations.count == live.run!.iterations.count && rec.final == live.run!.final)
        #expect(rec.steps.map(\.preview) == live.run!.steps.map(\.preview), "x̂₀ previews recorded")
        #expect(rec.settings.seed == 1234 && rec.settings.steps == 50 && rec.graph == live.run!.graph)
        var replay = replayed(rec, size: size)
        #expect(replay.run?.phase == .finished)
        for step in [0, 9, 24, 49] {
            live.viewStep = step
            replay.viewStep = step
            Fixture.fit(&live, size: size)
            Fixture.fit(&replay, size: size)
            let a = Fixture.screen(live, size), b = Fixture.screen(replay, size)
            let l = Screen.layout(live, size: size)
            for (name, r) in l.panes where ["relations", "classifier", "attention", "preview"].contains(name) {
                let text = { (g: CellGrid) in (r.y..<r.maxY).map { y in String((r.x..<r.maxX).map { g[$0, y].character }) } }
                #expect(text(a) == text(b), "\(name) at step \(step + 1)")
                #expect(a.styleText(in: r) == b.styleText(in: r), "\(name) colours at step \(step + 1)")
            }
        }
    }

    @Test func onlyTheRecordedRunCanBeShown() throws {
        let rec = try roundTrip(Fixture.running(twoRelations, steps: 50))
        var other = RunRequest(id: 7, settings: rec.settings, version: 1)
        other.settings.seed += 1
        guard case .failed(let id, let message)? = ReplayEngine.events(of: rec, for: other).first else { Issue.record("not refused"); return }
        #expect(id == 7 && message.contains("a replay has no model"))
        let same = RunRequest(id: 8, settings: rec.settings, version: 1)
        #expect(ReplayEngine.events(of: rec, for: same).count == 1 + rec.iterations.count + 50 + 1)
    }

    @Test func unreadableRecordingsSayWhy() throws {
        let dir = NSTemporaryDirectory() + "l2s-replay-bad-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: RunTrace.ReadError.self) { try RunTrace.load(path: dir + "/missing.json") }
        try Data("{\"prompt\": \"a cat\", \"events\": [{\"event\": \"step\", \"step\": 0}]}".utf8).write(to: URL(fileURLWithPath: dir + "/old.json"))
        do { _ = try RunTrace.load(path: dir + "/old.json"); Issue.record("read a trace without previews") } catch {
            #expect("\(error)".contains("no x̂₀ preview"))
        }
    }

    @Test func mapStripHoldsEachSteeredStep() throws {
        let s = Fixture.running(twoRelations, steps: 50)
        let cols = MapStrip.columns(s.run!, edge: 0)
        let steered = Set(s.run!.iterations.filter { $0.edge == 0 }.map(\.step))
        #expect(cols.map(\.step) == steered.sorted() && !cols.isEmpty)
        let img = try #require(MapStrip.render(cols))
        let tile = 16 * MapStrip.scale
        #expect(img.width == cols.count * tile + (cols.count - 1) * MapStrip.gap && img.height == 2 * tile + MapStrip.gap)
        func gray(_ x: Int, _ y: Int) -> UInt8 { img.pixels[3 * (y * img.width + x)] }
        // Each tile's brightest pixel is its map's maximum; the gaps are white.
        for (c, col) in cols.enumerated().prefix(3) {
            for (row, map) in [col.subject, col.object].enumerated() {
                let k = map.firstIndex(of: map.max()!)!
                let x = c * (tile + MapStrip.gap) + (k % 16) * MapStrip.scale, y = row * (tile + MapStrip.gap) + (k / 16) * MapStrip.scale
                #expect(gray(x, y) == 255)
                let kmin = map.firstIndex(of: map.min()!)!
                #expect(gray(c * (tile + MapStrip.gap) + (kmin % 16) * MapStrip.scale, row * (tile + MapStrip.gap) + (kmin / 16) * MapStrip.scale) == 0)
            }
        }
        #expect(gray(tile, 0) == 255 && gray(0, tile) == 255)
        #expect(MapStrip.render([]) == nil)
        // `s` writes the strip per relation beside the image, and the recording.
        let dir = NSTemporaryDirectory() + "l2s-strip-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try Sidecar.save(run: s.run!, state: s, directory: dir, base: "t")
        #expect(try readPNG(path: dir + "/t-maps-rel1.png").width == img.width)
        #expect(FileManager.default.fileExists(atPath: dir + "/t-maps-rel2.png"))
        #expect(try RunTrace.load(path: dir + "/t.json").steps.count == 50, "a saved run's sidecar leads to its recording")
    }
}
