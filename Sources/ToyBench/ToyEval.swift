// The toy world as a benchmark: the evaluation prompt sets (every ordered class pair × relation; the
// three-object chains), the judge that reads an image against a prompt's graph with the toy detector,
// the fingerprint that names an eval run, and rendered scenes as relation-classifier examples.

import Foundation
import Relations
import Formats
import Tensors
import Steering
import Diffusion
import ToyWorld

public enum ToyEval {
    /// "a red circle to the left of a blue square" for every ordered class pair and relation.
    public static func defaultPrompts() -> [String] {
        var out: [String] = []
        for a in Catalogue.classes {
            for b in Catalogue.classes where a.index != b.index {
                for r in SpatialRelation.captionOrder {
                    out.append(Captioner.relationCaption(subject: a, relation: r, object: b))
                }
            }
        }
        return out
    }

    /// 200 chained prompts "A r1 B r2 C" over three distinct classes, relations distinct and never both
    /// horizontal (two "to the … of" phrases would pass the model's 14-word limit). Fixed seed.
    public static func chainPrompts(count: Int = 200) -> [String] {
        let pairs: [(SpatialRelation, SpatialRelation)] = [(.leftOf, .above), (.leftOf, .below), (.rightOf, .above), (.rightOf, .below),
                                                   (.above, .leftOf), (.below, .leftOf), (.above, .rightOf), (.below, .rightOf),
                                                   (.above, .below), (.below, .above)]
        var rng = RNG(seed: 2024)
        var out: [String] = []
        var seen = Set<String>()
        while out.count < count {
            var classes = Catalogue.classes
            rng.shuffle(&classes)
            let (r1, r2) = pairs[rng.int(below: pairs.count)]
            let p = "\(Captioner.phrase(classes[0])) \(r1.phrase) \(Captioner.phrase(classes[1])) \(r2.phrase) \(Captioner.phrase(classes[2]))"
            if seen.insert(p).inserted { out.append(p) }
        }
        return out
    }

    /// Instances per class name.
    public static func instanceCounts(_ instances: [Detection]) -> [String: Int] {
        var counts: [String: Int] = [:]
        for d in instances { counts[d.objectClass.name, default: 0] += 1 }
        return counts
    }

    /// Judges an image against the prompt's graph: each object found (by class), each supported relation
    /// held under the GenEval rule.
    public static func record(case c: EvalCase, mode: String, graph: RelationGraph, detections: [Detection], seconds: Double,
                              probabilities: [Float]?) -> EvalRecord {
        func detection(_ object: SceneObject) -> Detection? {
            let name = object.vocabularyName ?? object.name
            return detections.first { $0.objectClass.name == name }
        }
        let found = graph.objects.map { detection($0) != nil }
        var relations: [String] = [], satisfied: [Bool] = []
        for e in graph.edges {
            guard let rel = e.relation else { continue }
            relations.append("\(graph.objects[e.subject].name) \(rel.displayName) \(graph.objects[e.object].name)")
            if let s = detection(graph.objects[e.subject]), let o = detection(graph.objects[e.object]) {
                satisfied.append(holds(rel, subject: s, object: o))
            } else {
                satisfied.append(false)
            }
        }
        return EvalRecord(index: c.index, prompt: c.prompt, seed: c.seed, mode: mode, objects: graph.objects.map(\.name),
                          found: found, relations: relations, satisfied: satisfied, seconds: seconds,
                          finalTargetProbability: probabilities)
    }

    /// A short fingerprint of everything that decides an eval run's records (prompts, modes, steering,
    /// model weights, steps, guidance), so a resumed or merged shard is known to be the same run.
    public static func runFingerprint(prompts: [String], modes: [String], schedule: SteeringSettings, modelHash: String, steps: Int, guidance: Float,
                                      sampler: SamplerKind = .ddim) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let scheduleJSON = (try? enc.encode(schedule)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        // DDIM adds nothing, so the files of runs from before --sampler existed still resume.
        let samplerPart = sampler == .ddim ? [] : ["sampler \(sampler.rawValue)"]
        let text = ([modelHash, "\(steps)", "\(guidance)", scheduleJSON] + samplerPart + modes + prompts).joined(separator: "\u{1F}")
        var h = FNV1a64()
        h.mix(text.utf8)
        return h.hex
    }

    /// Rendered two-object scenes with a clear relation, as classifier training examples.
    public static func relationExamples(count: Int, seed: UInt64, size: Int, startID: Int = 0) -> [RelationExample] {
        var rng = RNG(seed: seed &+ 0x5EED)
        let sampler = SceneSampler(size: size, objectCountWeights: [0, 0.7, 0.3])
        let captioner = Captioner()
        let renderer = SceneRenderer()
        var out: [RelationExample] = []
        var id = startID
        while out.count < count {
            let scene = sampler.sample(using: &rng)
            let n = scene.objects.count
            let a = rng.int(below: n)
            var b = rng.int(below: n - 1)
            if b >= a { b += 1 }
            guard let pair = captioner.captionPair(scene: scene, subject: a, object: b, using: &rng) else { continue }
            var positive = pair.positive, negative = pair.negative
            if n == 3 {  // name the third object too, as the base model's captions do
                let c = (0..<3).first { $0 != a && $0 != b }!
                let extra = " and " + Captioner.phrase(scene.objects[c].objectClass)
                positive += extra
                negative += extra
            }
            out.append(RelationExample(id: id, latent: renderer.tensor(scene).unsqueezed(0), positivePrompt: positive,
                                       negativePrompt: negative, relation: pair.trueRelation))
            id += 1
        }
        return out
    }
}
