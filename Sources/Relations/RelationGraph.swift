// RelationGraph: what a prompt asks for — its objects, the relations between them, and the editable
// round-robin order in which the steerer visits the supported relations. Produced by PromptParser,
// consumed by the steerer, the TUI and `l2s parse`.
//
// Offsets: every span here is a half-open range of UTF-8 code-unit offsets into `prompt` (equal to
// character offsets for ASCII prompts). `text(in:)` turns a span back into text.

import Foundation

/// One object the prompt names: a noun phrase without its determiner.
public struct SceneObject: Codable, Equatable, Sendable {
    /// The noun phrase as written, lower-cased, determiner dropped, single-spaced: "red teddy bear".
    public var name: String
    /// The head noun (or known multi-word noun) of the phrase: "teddy bear"; "circle" in "red circle".
    public var head: String
    /// The leading adjectives of the phrase, in order: ["red"].
    public var attributes: [String]
    /// UTF-8 span of the whole noun phrase (first mention) in the original prompt.
    public var span: Range<Int>
    /// UTF-8 span of the head words (first mention); the words whose attention maps stand for the object.
    public var headSpan: Range<Int>
    /// The vocabulary entry this object matched, when the parser was given a vocabulary.
    public var vocabularyName: String?

    public init(name: String, head: String, attributes: [String], span: Range<Int>, headSpan: Range<Int>,
                vocabularyName: String? = nil) {
        self.name = name
        self.head = head
        self.attributes = attributes
        self.span = span
        self.headSpan = headSpan
        self.vocabularyName = vocabularyName
    }
}

/// A relation between two objects, "subject <phrase> object". Unsupported phrases ("next to",
/// "near") are kept so they can be shown, but have no `relation` and are never steered.
public struct RelationEdge: Codable, Equatable, Sendable {
    /// Index into `RelationGraph.objects` of the object being placed.
    public var subject: Int
    /// Index into `RelationGraph.objects` of the reference object.
    public var object: Int
    /// The steerable relation, or nil when the phrase is not one of the four classes.
    public var relation: SpatialRelation?
    /// The relation phrase exactly as written in the prompt: "on the left of", "Next to".
    public var phrase: String
    /// UTF-8 span of `phrase` in the original prompt.
    public var phraseSpan: Range<Int>

    /// Whether the classifier can steer this edge.
    public var isSupported: Bool { relation != nil }

    public init(subject: Int, object: Int, relation: SpatialRelation?, phrase: String, phraseSpan: Range<Int>) {
        self.subject = subject
        self.object = object
        self.relation = relation
        self.phrase = phrase
        self.phraseSpan = phraseSpan
    }

    private enum CodingKeys: String, CodingKey {
        case subject, object, relation, phrase, phraseSpan, isSupported
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        subject = try c.decode(Int.self, forKey: .subject)
        object = try c.decode(Int.self, forKey: .object)
        relation = try c.decodeIfPresent(SpatialRelation.self, forKey: .relation)
        phrase = try c.decode(String.self, forKey: .phrase)
        phraseSpan = try c.decode(Range<Int>.self, forKey: .phraseSpan)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(subject, forKey: .subject)
        try c.encode(object, forKey: .object)
        try c.encodeIfPresent(relation, forKey: .relation)
        try c.encode(phrase, forKey: .phrase)
        try c.encode(phraseSpan, forKey: .phraseSpan)
        try c.encode(isSupported, forKey: .isSupported)
    }
}

/// A set of supported edges that cannot all hold in one image, such as "A left of B" with
/// "B left of A", "A above B" with "A below B", a longer cycle on one axis, or "A left of A".
public struct Contradiction: Codable, Equatable, Sendable {
    /// What makes the edges impossible together.
    public enum Kind: String, Codable, Sendable {
        /// An edge relating an object to itself.
        case selfRelation
        /// Edges whose order constraints on one axis form a cycle (length 2 or more).
        case cycle
    }

    public var kind: Kind
    /// The axis on which the edges conflict.
    public var axis: SpatialRelation.Axis
    /// Indices into `RelationGraph.edges`, ascending.
    public var edges: [Int]
    /// One line for the user: "cat left of dog" and "dog left of cat" cannot both hold.
    public var message: String

    public init(kind: Kind, axis: SpatialRelation.Axis, edges: [Int], message: String) {
        self.kind = kind
        self.axis = axis
        self.edges = edges
        self.message = message
    }
}

/// A parsed prompt: objects, relation edges, the steering order, and what could not be understood.
public struct RelationGraph: Codable, Equatable, Sendable {
    /// The prompt exactly as given; every span indexes its UTF-8 view.
    public var prompt: String
    /// Distinct objects in order of first mention (the same name mentioned twice is one object).
    public var objects: [SceneObject]
    /// All relations in order of appearance, supported or not.
    public var edges: [RelationEdge]
    /// The default round-robin order over the indices of supported edges (appearance order). A run's
    /// own order and switched-off edges are its settings' (`GenerationSettings.order`/`disabled`).
    public var order: [Int]
    /// Supported edges that cannot all hold; flagged, not removed.
    public var contradictions: [Contradiction]
    /// Problems that do not stop sampling: no relation, unsupported phrases, unknown objects.
    public var warnings: [PromptError]

    /// Builds a graph with the default order (supported edges in appearance order)
    /// and its contradictions computed.
    public init(prompt: String, objects: [SceneObject], edges: [RelationEdge], warnings: [PromptError] = []) {
        self.prompt = prompt
        self.objects = objects
        self.edges = edges
        self.order = edges.indices.filter { edges[$0].isSupported }
        self.warnings = warnings
        self.contradictions = []
        self.contradictions = findContradictions()
    }

    /// Whether at least one edge can be steered.
    public var isSteerable: Bool { !order.isEmpty }

    // MARK: Reading the graph

    /// Supported relations as (subject name, relation, object name), in order of appearance.
    public func triplets() -> [(String, SpatialRelation, String)] {
        edges.compactMap { edge in
            edge.relation.map { (objects[edge.subject].name, $0, objects[edge.object].name) }
        }
    }

    /// The prompt text covered by a UTF-8 span (clamped to the prompt).
    public func text(in span: Range<Int>) -> String {
        let utf8 = prompt.utf8
        let lower = min(max(span.lowerBound, 0), utf8.count)
        let upper = min(max(span.upperBound, lower), utf8.count)
        let start = utf8.index(utf8.startIndex, offsetBy: lower)
        let end = utf8.index(start, offsetBy: upper - lower)
        return String(decoding: utf8[start..<end], as: UTF8.self)
    }

    /// Returns the graph unchanged, or throws its first warning (for callers that must steer).
    public func strict() throws -> RelationGraph {
        if let first = warnings.first { throw first }
        return self
    }

    /// Recomputes `contradictions` after `edges` were edited by hand.
    public mutating func refreshContradictions() {
        contradictions = findContradictions()
    }

    // MARK: Contradictions

    /// Self-relations, then cycles per axis (horizontal first), found as strongly connected components
    /// of the "comes before" graph (left before right, top before bottom).
    func findContradictions() -> [Contradiction] {
        var found: [Contradiction] = []
        for (index, edge) in edges.enumerated() where edge.relation != nil && edge.subject == edge.object {
            let relation = edge.relation!
            found.append(Contradiction(
                kind: .selfRelation, axis: relation.axis, edges: [index],
                message: "\"\(describe(index))\" relates an object to itself"))
        }
        for axis in SpatialRelation.Axis.allCases
        where edges.lazy.filter({ $0.relation?.axis == axis && $0.subject != $0.object }).count >= 2 {
            // after[a] = objects that must come after a on this axis, with the edge that says so.
            var after = [[(to: Int, edge: Int)]](repeating: [], count: objects.count)
            for (index, edge) in edges.enumerated() {
                guard let relation = edge.relation, relation.axis == axis, edge.subject != edge.object,
                      objects.indices.contains(edge.subject), objects.indices.contains(edge.object) else { continue }
                let (first, second) = (relation == .leftOf || relation == .above)
                    ? (edge.subject, edge.object) : (edge.object, edge.subject)
                after[first].append((second, index))
            }
            for component in stronglyConnectedComponents(after) where component.count > 1 {
                let members = Set(component)
                var cycleEdges: [Int] = []
                for node in component {
                    for link in after[node] where members.contains(link.to) { cycleEdges.append(link.edge) }
                }
                cycleEdges.sort()
                let quoted = cycleEdges.map { "\"\(describe($0))\"" }
                let message = quoted.count == 2
                    ? "\(quoted[0]) and \(quoted[1]) cannot both hold"
                    : quoted.joined(separator: ", ") + " cannot all hold"
                found.append(Contradiction(kind: .cycle, axis: axis, edges: cycleEdges, message: message))
            }
        }
        return found
    }

    private func describe(_ edgeIndex: Int) -> String {
        let edge = edges[edgeIndex]
        let subject = objects.indices.contains(edge.subject) ? objects[edge.subject].name : "?"
        let object = objects.indices.contains(edge.object) ? objects[edge.object].name : "?"
        return "\(subject) \(edge.relation?.displayName ?? edge.phrase) \(object)"
    }

    // MARK: JSON

    private enum CodingKeys: String, CodingKey {
        case prompt, objects, edges, order, contradictions, warnings, triplets
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode(String.self, forKey: .prompt)
        objects = try c.decode([SceneObject].self, forKey: .objects)
        edges = try c.decode([RelationEdge].self, forKey: .edges)
        order = try c.decode([Int].self, forKey: .order)
        contradictions = try c.decodeIfPresent([Contradiction].self, forKey: .contradictions) ?? []
        warnings = try c.decodeIfPresent([PromptError].self, forKey: .warnings) ?? []
    }

    /// Encodes the stored fields plus a read-only `triplets` list of
    /// [subject, relation, object] for people reading `l2s parse` output.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(prompt, forKey: .prompt)
        try c.encode(objects, forKey: .objects)
        try c.encode(edges, forKey: .edges)
        try c.encode(order, forKey: .order)
        try c.encode(contradictions, forKey: .contradictions)
        try c.encode(warnings, forKey: .warnings)
        try c.encode(triplets().map { [$0.0, $0.1.rawValue, $0.2] }, forKey: .triplets)
    }

    /// The graph as pretty-printed JSON with sorted keys (the `l2s parse` output format).
    public func jsonString() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Tarjan's algorithm, iterative so that long chains cannot overflow the stack.
/// `graph[v]` lists v's successors; returns the components, each in discovery order.
private func stronglyConnectedComponents(_ graph: [[(to: Int, edge: Int)]]) -> [[Int]] {
    let count = graph.count
    var index = [Int](repeating: -1, count: count)
    var lowLink = [Int](repeating: 0, count: count)
    var onStack = [Bool](repeating: false, count: count)
    var stack: [Int] = []
    var components: [[Int]] = []
    var nextIndex = 0
    for root in 0..<count where index[root] < 0 && !graph[root].isEmpty {
        var work: [(node: Int, next: Int)] = [(root, 0)]
        index[root] = nextIndex; lowLink[root] = nextIndex; nextIndex += 1
        stack.append(root); onStack[root] = true
        while let (node, next) = work.last {
            if next < graph[node].count {
                work[work.count - 1].next += 1
                let to = graph[node][next].to
                if index[to] < 0 {
                    index[to] = nextIndex; lowLink[to] = nextIndex; nextIndex += 1
                    stack.append(to); onStack[to] = true
                    work.append((to, 0))
                } else if onStack[to] {
                    lowLink[node] = min(lowLink[node], index[to])
                }
            } else {
                work.removeLast()
                if let parent = work.last?.node { lowLink[parent] = min(lowLink[parent], lowLink[node]) }
                if lowLink[node] == index[node] {
                    var component: [Int] = []
                    while let top = stack.popLast() {
                        onStack[top] = false
                        component.append(top)
                        if top == node { break }
                    }
                    components.append(component.reversed())
                }
            }
        }
    }
    return components
}
