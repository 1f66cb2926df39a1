// `s` saves the image as PNG (upscaled, nearest neighbour, so a 32×32 image is at least 256 px) with
// its JSON sidecar (Steering's `Sidecar`: the settings, each live change, the per-step classifier
// record), so a run can be reproduced and plotted. In the A/B view both halves are saved, each with its sidecar.
// Beside each image: its map strip per relation (`MapStrip`) and its recording for `l2s replay`.

import Foundation
import Imaging
import Formats
import Steering
import ToyWorld

/// The workbench's side of the sidecar (the format is Steering's `Sidecar`, shared with `l2s generate`).
extension Sidecar {
    /// The sidecar for the state's run, naming `imageFile`.
    static func make(_ s: ViewState, imageFile: String, upscale: Int? = nil) -> Sidecar? {
        s.run.map { make(run: $0, state: s, imageFile: imageFile, upscale: upscale) }
    }

    /// The sidecar for `run` (the state's or the other half of its A/B pair): its settings are the
    /// ones it last applied.
    static func make(run: RunView, state s: ViewState, imageFile: String, upscale: Int? = nil) -> Sidecar {
        let graph = run.graph ?? s.graph
        // Before the engine's parse arrives, the UI's own graph stands in: its supported edges.
        let steerable = run.graph == nil ? (graph?.order ?? []) : run.steerable
        return Sidecar(settings: run.settings, applied: run.applied, graph: graph, steerable: steerable,
                       steps: run.steps.map { ($0.step, $0.seconds) }, iterations: run.iterations, model: s.engineName,
                       image: imageFile, partial: run.final == nil, imageStep: run.final == nil ? run.latestStep : nil,
                       seconds: run.seconds, liveChanges: run.appliedChanges, upscale: upscale)
    }

    /// The file name (no extension) for a run saved at `date`.
    static func baseName(_ run: RunView, date: Date) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        return "l2s-run\(run.id)-seed\(run.settings.seed)-\(run.settings.steered ? "steered" : "unsteered")-\(f.string(from: date))"
    }

    /// Writes `<base>.png` and `<base>.json` into `directory` for the state's run and, in the A/B
    /// view, for the other half too (its own base name); returns the PNG paths. `upscale` nil: the
    /// default for the image's size.
    static func save(_ s: ViewState, directory: String, date: Date = Date(), upscale: Int? = nil) throws -> [String] {
        guard let run = s.run else { throw CocoaError(.fileWriteUnknown) }
        var out = [try save(run: run, state: s, directory: directory, base: baseName(run, date: date), upscale: upscale)]
        if let other = s.abCounterpart {
            out.append(try save(run: other.run, state: s, directory: directory, base: baseName(other.run, date: date), upscale: upscale))
        }
        return out
    }

    /// Writes one run's `<base>.png`, `<base>.json`, `<base>.trace.json` and a `<base>-maps-relN.png`
    /// strip per relation it evaluated; returns the PNG path.
    static func save(run: RunView, state s: ViewState, directory: String, base: String, upscale: Int? = nil) throws -> String {
        guard let image = run.final ?? run.steps.last?.preview else { throw CocoaError(.fileWriteUnknown) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let png = directory + "/" + base + ".png"
        let k = upscale ?? defaultUpscale(side: max(image.width, image.height))
        let pixels = k > 1 ? upscaleNearest(rgb: image.pixels, width: image.width, height: image.height, factor: k) : image.pixels
        var car = make(run: run, state: s, imageFile: base + ".png", upscale: k)
        var strips: [String] = []
        for e in Set(run.iterations.map(\.edge)).sorted() {
            let name = base + "-maps-rel\(e + 1).png"
            if try MapStrip.write(MapStrip.columns(run, edge: e), to: directory + "/" + name) { strips.append(name) }
        }
        car.mapStrips = strips
        car.trace = base + ".trace.json"
        // PNG, sidecar and trace together or not at all (a failure leaves the previous files as they were).
        try writeFilesAtomically([
            (path: png, data: try encodePNG(rgb: pixels, width: image.width * k, height: image.height * k)),
            (path: directory + "/" + base + ".trace.json", data: try RunTrace.json(run, graph: s.graph)),
            (path: directory + "/" + base + ".json", data: car.json()),
        ])
        return png
    }
}
