// `s` saves the image as PNG with a JSON sidecar: prompt, seed, schedule, the live changes, and the
// per-step classifier record, so a run can be reproduced and plotted.

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

    /// The sidecar for the state's run, naming `imageFile`.
    public static func make(_ s: ViewState, imageFile: String) -> Sidecar? {
        guard let run = s.run else { return nil }
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
        return Sidecar(prompt: run.prompt, seed: run.settings.seed, steps: run.settings.steps, guidance: s.settings.guidance,
                       steered: run.settings.steered, schedule: run.settings.effectiveSchedule, order: s.settings.order,
                       disabled: s.settings.disabled.sorted(), relations: rels, classNames: SpatialRelation.classNames,
                       model: s.engineName, image: imageFile, partial: run.final == nil,
                       imageStep: run.final == nil ? run.latestStep : nil, seconds: run.seconds,
                       liveChanges: run.appliedChanges, perStep: perStep)
    }

    public func json() -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? enc.encode(self)) ?? Data("{}".utf8)
    }

    /// Writes `<base>.png` and `<base>.json` into `directory`; returns the PNG path.
    public static func save(_ s: ViewState, directory: String, base: String) throws -> String {
        guard let run = s.run, let image = run.final ?? run.steps.last?.preview else {
            throw CocoaError(.fileWriteUnknown)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let png = directory + "/" + base + ".png"
        // PNG and sidecar together or not at all (a failure leaves the previous pair as it was).
        var files = [(path: png, data: try encodePNG(rgb: image.pixels, width: image.width, height: image.height))]
        if let car = make(s, imageFile: base + ".png") { files.append((directory + "/" + base + ".json", car.json())) }
        try writeFilesAtomically(files)
        return png
    }
}
