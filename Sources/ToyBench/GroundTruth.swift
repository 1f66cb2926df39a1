// Ground truth in the loop: what the toy world's detector reads on a step's x̂₀, against the prompt's
// graph. The workbench's engine (worker thread) and `l2s generate --trace` compute a `DetectorReading`
// per step for the embedded toy model only; step records and traces carry it as plain data.

import Foundation
import Relations
import Tensors
import Steering
import ToyWorld

extension DetectorReading.Request {
    /// What a parsed prompt asks the detector to check: its objects by catalogue name and its
    /// supported relations by edge index. Nil when an object is not a catalogue class (the toy
    /// detector cannot look for it).
    public init?(graph: RelationGraph) {
        let names = graph.objects.map { $0.vocabularyName ?? $0.name }
        guard !names.isEmpty, names.allSatisfy({ Catalogue.named($0) != nil }) else { return nil }
        let edges = graph.edges.enumerated().compactMap { i, e -> Edge? in
            e.relation.map { Edge(edge: i, subject: e.subject, relation: $0, object: e.object) }
        }
        self.init(objects: names, edges: edges)
    }
}

extension DetectorReading {
    /// The reading as trace JSON (a dictionary for JSONSerialization).
    public var json: Any {
        guard let data = try? JSONEncoder().encode(self), let obj = try? JSONSerialization.jsonObject(with: data) else { return [:] }
        return obj
    }

    /// The reading from trace JSON (nil when absent or unreadable).
    public init?(json: Any?) {
        guard let json, JSONSerialization.isValidJSONObject(json), let data = try? JSONSerialization.data(withJSONObject: json),
              let r = try? JSONDecoder().decode(DetectorReading.self, from: data) else { return nil }
        self = r
    }
}

extension DetectorReading {
    /// The relation the detector reads of a prompt's first relation's subject to its object on an
    /// image ([1, 3, H, W] or [3, H, W], values in [−1, 1]) — the label of a sampled trajectory
    /// (`DatasetSource.sampling`). Nil unless both objects are found exactly once and the GenEval
    /// rule reads exactly one relation between them (a diagonal offset reads two; a tiny one none).
    public static func relationLabel(image: Tensor, prompt: String, parser: PromptParser) -> SpatialRelation? {
        guard let graph = try? parser.parse(prompt), let request = Request(graph: graph), let edge = request.edges.first else { return nil }
        let reading = read(image: image, asked: request)
        guard let r = reading.relation(edge: edge.edge), r.read.count == 1,
              reading.object(r.subject)?.status == .found, reading.object(r.object)?.status == .found else { return nil }
        return r.read[0]
    }
}
