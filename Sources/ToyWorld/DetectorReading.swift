import Foundation
import Relations
import Tensors

/// What the toy detector reads on one image against what a prompt asked for: per named object how
/// many instances it finds (found / missing / duplicated), the objects nobody named, and per asked
/// relation whether it holds under the GenEval rule. Plain data, so a step event, a trace or a
/// widget can carry it; `read(image:asked:)` is the only place that looks at pixels.
public struct DetectorReading: Codable, Sendable, Equatable {
    /// How a named object shows in the image.
    public enum Status: String, Codable, Sendable {
        /// As many instances as the prompt names (usually one).
        case found
        /// Fewer instances than named (none, for an object named once).
        case missing
        /// More instances than named (two blue squares for "a blue square").
        case duplicated
    }

    /// One named object (a catalogue class name) and the instances found of it.
    public struct Object: Codable, Sendable, Equatable {
        public var name: String
        /// Instances the detector finds.
        public var count: Int
        /// How often the prompt names this class (1 but for prompts such as "a red circle left of a red circle").
        public var asked: Int
        public init(name: String, count: Int, asked: Int = 1) { self.name = name; self.count = count; self.asked = asked }
        public var status: Status { count < asked ? .missing : count > asked ? .duplicated : .found }
    }

    /// One asked relation and the detector's verdict on it.
    public struct Relation: Codable, Sendable, Equatable {
        /// The caller's index for it (the Workbench and the trace use the graph's edge index).
        public var edge: Int
        public var subject: String
        public var relation: SpatialRelation
        public var object: String
        /// Whether it holds between the largest instance of each (nil when either object is missing,
        /// or both name the same class so the detector cannot tell which instance is which).
        public var holds: Bool?
        /// What the detector reads of subject relative to object (GenEval rule; empty: no clear
        /// offset, or an object is missing).
        public var read: [SpatialRelation]
        public init(edge: Int, subject: String, relation: SpatialRelation, object: String, holds: Bool?, read: [SpatialRelation]) {
            self.edge = edge; self.subject = subject; self.relation = relation; self.object = object
            self.holds = holds; self.read = read
        }
    }

    /// The named objects in the prompt's order (a class named twice appears once, with `asked` 2).
    public var objects: [Object]
    /// Classes found that the prompt does not name, with their instance counts.
    public var unasked: [Object]
    public var relations: [Relation]

    public init(objects: [Object], unasked: [Object], relations: [Relation]) {
        self.objects = objects; self.unasked = unasked; self.relations = relations
    }

    /// What a prompt asks the detector to check: the named objects (catalogue class names, in order)
    /// and the relations between them (indices into `objects`).
    public struct Request: Sendable, Equatable {
        public struct Edge: Sendable, Equatable {
            public var edge: Int
            public var subject: Int
            public var relation: SpatialRelation
            public var object: Int
            public init(edge: Int, subject: Int, relation: SpatialRelation, object: Int) {
                self.edge = edge; self.subject = subject; self.relation = relation; self.object = object
            }
        }
        public var objects: [String]
        public var edges: [Edge]
        public init(objects: [String], edges: [Edge]) { self.objects = objects; self.edges = edges }
    }

    /// Whether every named object is found exactly as often as named and nothing else is in the image.
    public var exact: Bool { objects.allSatisfy { $0.status == .found } && unasked.isEmpty }

    /// The named object called `name`.
    public func object(_ name: String) -> Object? { objects.first { $0.name == name } }

    /// The verdict on the relation with caller index `edge`.
    public func relation(edge: Int) -> Relation? { relations.first { $0.edge == edge } }

    /// Whether a classifier is fooled on `edge`: it reads the relation as likely (p ≥ `threshold`)
    /// while the detector says it does not hold (or an object of it is missing).
    public func fools(edge: Int, probability p: Float, threshold: Float = 0.5) -> Bool {
        guard p.isFinite, p >= threshold, let r = relation(edge: edge) else { return false }
        return r.holds != true
    }

    /// Reads a CHW image tensor ([3, H, W] or [1, 3, H, W], values in [−1, 1]).
    public static func read(image: Tensor, asked request: Request, detector: Detector = Detector()) -> DetectorReading {
        let h = image.shape[image.rank - 2], w = image.shape[image.rank - 1]
        precondition(image.count == 3 * h * w, "expected one 3-channel image, got \(image.shape)")
        let found = detector.read(pixels: UnsafeBufferPointer(start: image.pointer, count: image.count), width: w, height: h,
                                  instances: true)
        return reading(instances: found.instances, asked: request)
    }

    /// Reads a square CHW image (`3 * size * size` values in [−1, 1]).
    public static func read(image: [Float], size: Int, asked request: Request, detector: Detector = Detector()) -> DetectorReading {
        reading(instances: detector.instances(image: image, size: size), asked: request)
    }

    /// The reading of a set of instances: relations are judged between the largest instance of each
    /// class (the blob `Detector.detect` would report).
    public static func reading(instances: [Detection], asked request: Request) -> DetectorReading {
        var counts: [String: Int] = [:], largest: [String: Detection] = [:]
        for d in instances {
            let name = d.objectClass.name
            counts[name, default: 0] += 1
            if let l = largest[name], l.area >= d.area { continue }
            largest[name] = d
        }
        var asked: [String: Int] = [:], order: [String] = []
        for name in request.objects {
            if asked[name] == nil { order.append(name) }
            asked[name, default: 0] += 1
        }
        let objects = order.map { Object(name: $0, count: counts[$0] ?? 0, asked: asked[$0]!) }
        let unasked = Catalogue.classes.map(\.name).filter { asked[$0] == nil && (counts[$0] ?? 0) > 0 }
            .map { Object(name: $0, count: counts[$0]!, asked: 0) }
        let relations = request.edges.compactMap { e -> Relation? in
            guard request.objects.indices.contains(e.subject), request.objects.indices.contains(e.object) else { return nil }
            let s = request.objects[e.subject], o = request.objects[e.object]
            guard let sd = largest[s], let od = largest[o], s != o else {
                return Relation(edge: e.edge, subject: s, relation: e.relation, object: o, holds: nil, read: [])
            }
            let read = SpatialRelation.captionOrder.filter(ToyWorld.relation(of: sd, to: od).contains)
            return Relation(edge: e.edge, subject: s, relation: e.relation, object: o, holds: read.contains(e.relation), read: read)
        }
        return DetectorReading(objects: objects, unasked: unasked, relations: relations)
    }
}
