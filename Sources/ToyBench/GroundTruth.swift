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
