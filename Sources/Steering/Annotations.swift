import Foundation
import Relations
import Diffusion
import Tensors

/// One GQA-style record of a user's image set: an image file and a spatial relation between two objects
/// in it, one JSON object per line:
///   {"image": "2370799.png", "subject": "dog", "relation": "to the left of", "object": "teddy bear"}
/// `relation` takes any phrasing the prompt parser knows ("left of", "on top of", "under", …).
public struct RelationAnnotation: Codable, Equatable, Sendable {
    public var image: String
    public var subject: String
    public var relation: String
    public var object: String
    public init(image: String, subject: String, relation: String, object: String) {
        self.image = image; self.subject = subject; self.relation = relation; self.object = object
    }
}

public enum AnnotationError: Error, CustomStringConvertible, Equatable {
    case unreadable(String)
    case malformed(file: String, line: Int, String)
    case empty(String)
    public var description: String {
        switch self {
        case .unreadable(let m): return m
        case .malformed(let f, let l, let m): return "\(f):\(l): \(m)"
        case .empty(let f): return "\(f): no annotation records"
        }
    }
}

/// An annotation checked against the parser: its canonical relation and the dual-inversion prompts.
public struct ResolvedAnnotation: Sendable {
    public let record: RelationAnnotation
    public let line: Int
    public let relation: SpatialRelation
    /// "a dog to the left of a teddy bear"
    public let positivePrompt: String
    /// The same objects with a wrong relation word (uniform over the other three, seeded by the line).
    public let negativePrompt: String
}

public enum Annotations {
    /// Reads and checks a JSON-lines file; every bad line is an error naming the file and line.
    public static func read(path: String, seed: UInt64 = 0) throws -> [ResolvedAnnotation] {
        let lines: [String]
        do { lines = try TextLines.read(path: path) } catch let e as TextFileError {
            throw AnnotationError.unreadable("cannot read annotations: \(e.description)")
        }
        var out: [ResolvedAnnotation] = []
        let parser = PromptParser()
        for (i, raw) in lines.enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            let record: RelationAnnotation
            do { record = try JSONDecoder().decode(RelationAnnotation.self, from: Data(line.utf8)) } catch {
                throw AnnotationError.malformed(file: path, line: i + 1, "expected {\"image\", \"subject\", \"relation\", \"object\"}: \(error)")
            }
            for (name, value) in [("image", record.image), ("subject", record.subject), ("object", record.object)]
            where value.trimmingCharacters(in: .whitespaces).isEmpty {
                throw AnnotationError.malformed(file: path, line: i + 1, "empty \(name)")
            }
            let probe = "a \(record.subject) \(record.relation) a \(record.object)"
            guard let graph = try? parser.parse(probe), graph.edges.count == 1, let relation = graph.edges[0].relation else {
                throw AnnotationError.malformed(file: path, line: i + 1,
                                                "relation \"\(record.relation)\" is not one of above / below / left of / right of (or a phrasing of them)")
            }
            var rng = RNG(seed: seed &+ UInt64(i) &* 0x9E37_79B9)
            let wrong = SpatialRelation.allCases.filter { $0 != relation }
            let negative = wrong[rng.int(below: wrong.count)]
            out.append(ResolvedAnnotation(record: record, line: i + 1, relation: relation,
                                          positivePrompt: "a \(record.subject) \(relation.rawValue) a \(record.object)",
                                          negativePrompt: "a \(record.subject) \(negative.rawValue) a \(record.object)"))
        }
        if out.isEmpty { throw AnnotationError.empty(path) }
        return out
    }
}
