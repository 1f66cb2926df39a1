// The JSON written next to a saved image, one format for `l2s generate` and the workbench's `s`:
// the settings (and each live edit with the step it took effect), the prompt's relations, and per
// step the classifier's last reading of each relation, so a run can be reproduced and plotted.
// Relation indices are the prompt graph's edge indices everywhere in it.

import Foundation
import Relations

/// What a sidecar needs from one recorded refinement iteration.
public protocol RecordedIteration {
    var step: Int { get }
    /// The graph edge of the relation judged.
    var edge: Int { get }
    var probabilities: [Float] { get }
    var targetProbability: Float { get }
    var loss: Float { get }
    var gradientNorm: Float { get }
}

extension SteeringIteration: RecordedIteration {}

public struct Sidecar: Codable, Equatable {
    public struct Relation: Codable, Equatable {
        /// The graph edge index (0-based; the workbench shows it 1-based).
        public var index: Int
        public var subject: String
        public var relation: String
        public var object: String
        public var steerable: Bool
        public var enabled: Bool
    }
    public struct RelationAtStep: Codable, Equatable {
        /// The graph edge index.
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
    public var negativePrompt: String?
    public var seed: UInt64
    public var steps: Int
    public var guidance: Float
    /// The sampler (`SamplerKind` raw value).
    public var sampler: String?
    public var steered: Bool
    public var schedule: SteeringSettings
    /// Round-robin order as graph edge indices, and the ones switched off.
    public var order: [Int]
    public var disabled: [Int]
    public var relations: [Relation]
    public var classNames: [String]
    public var model: String
    public var modelHash: String?
    public var image: String
    /// True when the run had not finished: the image is x̂₀ at `imageStep`.
    public var partial: Bool
    public var imageStep: Int?
    public var seconds: Double?
    /// Live edits the sampler applied, with the step they took effect (one line each, for people).
    public var liveChanges: [String]
    /// The settings in force from each step on (step 0: the run's own; then each live edit).
    public var applied: [AppliedSettings]?
    public var perStep: [Step]
    /// The saved PNG is the image enlarged by this factor (nearest neighbour; nil: 1).
    public var upscale: Int?
    /// The per-relation map strips saved beside the image (subject and object maps over the steered steps).
    public var mapStrips: [String]?
    /// The recording `l2s replay` opens (steps, maps, x̂₀ previews).
    public var trace: String?
    /// Why the image cannot be trusted (non-finite or constant pixels), when it cannot.
    public var defect: String?

    /// A sidecar for a run whose settings ended as `settings` (the last of `applied`), for the prompt
    /// graph `graph` of which the edges `steerable` could be steered.
    public init(settings: GenerationSettings, applied: [AppliedSettings], graph: RelationGraph?, steerable: [Int],
                steps: [(step: Int, seconds: Double)], iterations: [some RecordedIteration], model: String,
                modelHash: String? = nil, image: String, partial: Bool = false, imageStep: Int? = nil, seconds: Double?,
                liveChanges: [String] = [], upscale: Int? = nil) {
        prompt = settings.prompt
        negativePrompt = settings.sampler.negativePrompt
        seed = settings.seed
        self.steps = settings.steps
        guidance = settings.guidance
        sampler = settings.sampler.sampler.rawValue
        steered = settings.steered
        schedule = settings.steering
        order = settings.order ?? graph?.order ?? []
        disabled = settings.disabled.sorted()
        relations = graph.map { g in
            g.edges.enumerated().map { i, e in
                Relation(index: i, subject: g.objects[e.subject].name, relation: e.relation?.rawValue ?? e.phrase,
                         object: g.objects[e.object].name, steerable: steerable.contains(i), enabled: !settings.disabled.contains(i))
            }
        } ?? []
        classNames = SpatialRelation.classNames
        self.model = model
        self.modelHash = modelHash
        self.image = image
        self.partial = partial
        self.imageStep = imageStep
        self.seconds = seconds
        self.liveChanges = liveChanges
        self.applied = applied
        perStep = Sidecar.perStep(steps: steps, iterations: iterations)
        self.upscale = upscale
    }

    /// Per step, each relation's last iteration and how many it had.
    public static func perStep(steps: [(step: Int, seconds: Double)], iterations: [some RecordedIteration]) -> [Step] {
        var byStep: [Int: [any RecordedIteration]] = [:]
        for it in iterations { byStep[it.step, default: []].append(it) }
        return steps.map { rec in
            let its = byStep[rec.step] ?? []
            let rows: [RelationAtStep] = Set(its.map(\.edge)).sorted().map { e in
                let mine = its.filter { $0.edge == e }
                let last = mine[mine.count - 1]
                return RelationAtStep(relation: e, probabilities: last.probabilities, targetProbability: last.targetProbability,
                                      loss: last.loss, gradientNorm: last.gradientNorm, iterations: mine.count)
            }
            return Step(step: rec.step, seconds: rec.seconds, relations: rows)
        }
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
}
