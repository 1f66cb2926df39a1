// `s` saves the image as PNG (upscaled, nearest neighbour, so a 32×32 image is at least 256 px) with
// a JSON sidecar: prompt, seed, schedule, the live changes, and the per-step classifier record, so a
// run can be reproduced and plotted. In the A/B view both halves are saved, each with its sidecar.
// Beside each image: its map strip per relation (`MapStrip`) and its recording for `l2s replay`.

import Foundation
import Steering
import ToyWorld

/// The JSON written next to a saved image.
public struct Sidecar: Codable, Equatable {
    public struct Relation: Codable, Equatable {
        public var index: Int
        public var subject: String
        public var relation: String
        public var object: String
        public var steerable: Bool
        public var enabled: Bool
    }
    public struct RelationAtStep: Codable, Equatable {
        public var relation: Int
        public var probabilities: [Float]
        public var targetProbability: Float
        public var loss: Float
        public var gradientNorm: Float
        public var iterations: Int
    }
    public struct Step: Codable, Equatable {
        public var step: Int
        public var seconds: Double
        public var relations: [RelationAtStep]
    }

    public var prompt: String
    public var seed: UInt64
    public var steps: Int
    public var guidance: Float
    public var steered: Bool
    public var schedule: SteeringSchedule
    /// Round-robin order as 0-based relation indices, and the ones switched off.
    public var order: [Int]
    public var disabled: [Int]
    public var relations: [Relation]
    public var classNames: [String]
    public var model: String
    public var image: String
    /// True when the run had not finished: the image is x̂₀ at `imageStep`.
    public var partial: Bool
    public var imageStep: Int?
    public var seconds: Double?
    /// Live edits the sampler applied, with the step they took effect.
    public var liveChanges: [String]
    public var perStep: [Step]
    /// The saved PNG is the image enlarged by this factor (nearest neighbour; nil: 1).
    public var upscale: Int?
    /// The per-relation map strips saved beside the image (subject and object maps over the steered steps).
    public var mapStrips: [String]?
    /// The recording `l2s replay` opens (steps, maps, x̂₀ previews).
    public var trace: String?

    /// The sidecar for the state's run, naming `imageFile`.
    public static func make(_ s: ViewState, imageFile: String, upscale: Int? = nil) -> Sidecar? {
        s.run.map { make(run: $0, state: s, imageFile: imageFile, upscale: upscale) }
    }

    /// The sidecar for `run` (the state's or the other half of its A/B pair).
    public static func make(run: RunView, state s: ViewState, imageFile: String, upscale: Int? = nil) -> Sidecar {
        let graph = run.graph ?? s.graph
        let rels: [Relation] = graph.map { g in
            g.edges.enumerated().map { i, e in
                Relation(index: i, subject: g.objects[e.subject].name, relation: e.relation?.rawValue ?? e.phrase,
                         object: g.objects[e.object].name, steerable: run.steerable.contains(i) || (run.graph == nil && e.relation != nil),
                         enabled: !run.settings.disabled.contains(i))
            }
        } ?? []
        var perStep: [Step] = []
        for rec in run.steps {
            let its = run.iterations(at: rec.step)
            var byEdge: [RelationAtStep] = []
            for e in Set(its.map(\.edge)).sorted() {
                let mine = its.filter { $0.edge == e }
                let last = mine.last!
                byEdge.append(RelationAtStep(relation: e, probabilities: last.probabilities, targetProbability: last.targetProbability,
                                             loss: last.loss, gradientNorm: last.gradientNorm, iterations: mine.count))
            }
            perStep.append(Step(step: rec.step, seconds: rec.seconds, relations: byEdge))
        }
        return Sidecar(prompt: run.prompt, seed: run.settings.seed, steps: run.settings.steps, guidance: run.settings.guidance,
                       steered: run.settings.steered, schedule: run.settings.effectiveSchedule, order: run.settings.order,
                       disabled: run.settings.disabled.sorted(), relations: rels, classNames: SpatialRelation.classNames,
                       model: s.engineName, image: imageFile, partial: run.final == nil,
                       imageStep: run.final == nil ? run.latestStep : nil, seconds: run.seconds,
                       liveChanges: run.appliedChanges, perStep: perStep, upscale: upscale)
    }

    public func json() -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? enc.encode(self)) ?? Data("{}".utf8)
    }

    /// The factor that makes an image of `side` pixels at least 256 px (1 for large images).
    public static func defaultUpscale(side: Int) -> Int {
        side <= 0 ? 1 : max(1, (256 + side - 1) / side)
    }

    /// The file name (no extension) for a run saved at `date`.
    public static func baseName(_ run: RunView, date: Date) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        return "l2s-run\(run.id)-seed\(run.settings.seed)-\(run.settings.steered ? "steered" : "unsteered")-\(f.string(from: date))"
    }

    /// Writes `<base>.png` and `<base>.json` into `directory` for the state's run and, in the A/B
    /// view, for the other half too (its own base name); returns the PNG paths. `upscale` nil: the
    /// default for the image's size.
    public static func save(_ s: ViewState, directory: String, date: Date = Date(), upscale: Int? = nil) throws -> [String] {
        guard let run = s.run else { throw CocoaError(.fileWriteUnknown) }
        var out = [try save(run: run, state: s, directory: directory, base: baseName(run, date: date), upscale: upscale)]
        if let other = s.abCounterpart {
            out.append(try save(run: other.run, state: s, directory: directory, base: baseName(other.run, date: date), upscale: upscale))
        }
        return out
    }

    /// Writes one run's `<base>.png`, `<base>.json`, `<base>.trace.json` and a `<base>-maps-relN.png`
    /// strip per relation it evaluated; returns the PNG path.
    public static func save(run: RunView, state s: ViewState, directory: String, base: String, upscale: Int? = nil) throws -> String {
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
