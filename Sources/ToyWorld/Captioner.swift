import Relations
import Tensors

/// The kinds of training caption.
public enum CaptionKind: String, CaseIterable, Codable, Hashable, Sendable {
    /// "a red circle to the left of a blue square" (plus "and a …" for any other object).
    case relation
    /// "a red circle and a blue square", objects in random order.
    case and
    /// "a red circle": the one object of a one-object scene (with `namesEveryObject` off, also one
    /// object of a larger scene — the v1 captions, which taught the model that unnamed objects may appear).
    case single
    /// "": the unconditional caption for classifier-free guidance.
    case empty
}

/// How often each caption kind is drawn (relative weights; the defaults sum to 1).
public struct CaptionRates: Hashable, Codable, Sendable {
    public var relation: Float
    public var and: Float
    public var single: Float
    public var empty: Float

    public init(relation: Float = 0.25, and: Float = 0.50, single: Float = 0.15, empty: Float = 0.10) {
        precondition(min(relation, and, single, empty) >= 0 && relation + and + single + empty > 0,
                     "caption rates must be non-negative and not all zero")
        self.relation = relation
        self.and = and
        self.single = single
        self.empty = empty
    }
}

/// "subject relation object", with subject and object as indices into a scene's objects.
public struct RelationTriplet: Hashable, Codable, Sendable {
    public var subject: Int
    public var relation: SpatialRelation
    public var object: Int

    public init(subject: Int, relation: SpatialRelation, object: Int) {
        self.subject = subject
        self.relation = relation
        self.object = object
    }
}

/// A caption of a scene and what it says.
public struct Caption: Hashable, Sendable {
    public let text: String
    /// The kind actually produced (after any fallback).
    public let kind: CaptionKind
    /// The scene objects named, in the order they are named.
    public let objects: [Int]
    /// The relation stated, for relation captions.
    public let relation: RelationTriplet?
}

/// Writes captions for scenes. Relation captions state only relations that hold clearly under the
/// GenEval rule on the ground-truth boxes (`clearRelation` with `margin`), always with the canonical
/// phrase. Every non-empty caption names every object of the scene (unless `namesEveryObject` is off).
/// Fallbacks: a relation draw with no clear relation gives an "and" caption; an "and" draw on a
/// one-object scene, or a single draw on a larger one, gives the caption that fits the object count.
public struct Captioner: Sendable {
    public var rates: CaptionRates
    /// Margin of the clear-relation test (see `clearRelation(subject:object:margin:)`).
    public var margin: Float
    /// True: a single-object draw on a multi-object scene becomes an "and" caption, so no caption
    /// leaves an object of its image unnamed. False: the v1 captions (one object of several named).
    public var namesEveryObject: Bool

    public init(rates: CaptionRates = CaptionRates(), margin: Float = 0.1, namesEveryObject: Bool = true) {
        self.rates = rates
        self.margin = margin
        self.namesEveryObject = namesEveryObject
    }

    /// "a red circle", "an orange ring".
    public static func phrase(_ cls: ObjectClass) -> String { "\(cls.article) \(cls.name)" }

    /// "a red circle to the left of a blue square".
    public static func relationCaption(subject: ObjectClass, relation: SpatialRelation, object: ObjectClass) -> String {
        "\(phrase(subject)) \(relation.phrase) \(phrase(object))"
    }

    /// The clear relation of object `subject` to object `object` of `scene`, if any.
    public func clearRelation(in scene: Scene, subject: Int, object: Int) -> SpatialRelation? {
        ToyWorld.clearRelation(subject: scene.objects[subject].box, object: scene.objects[object].box, margin: margin)
    }

    /// Every ordered pair of distinct objects with a clear relation (both directions are listed).
    public func clearRelations(in scene: Scene) -> [RelationTriplet] {
        var out: [RelationTriplet] = []
        for s in scene.objects.indices {
            for o in scene.objects.indices where o != s {
                if let r = clearRelation(in: scene, subject: s, object: o) {
                    out.append(RelationTriplet(subject: s, relation: r, object: o))
                }
            }
        }
        return out
    }

    /// A caption for `scene` drawn with a generator seeded by `seed`.
    public func caption(for scene: Scene, seed: UInt64) -> Caption {
        var rng = RNG(seed: seed)
        return caption(for: scene, using: &rng)
    }

    /// A caption for `scene`, its kind drawn according to `rates`.
    public func caption(for scene: Scene, using rng: inout RNG) -> Caption {
        let weights = [rates.relation, rates.and, rates.single, rates.empty]
        var u = rng.uniform() * weights.reduce(0, +)
        var kind = CaptionKind.empty
        for (k, w) in zip(CaptionKind.allCases, weights) {
            if u < w { kind = k; break }
            u -= w
        }
        let objects = scene.objects
        if objects.isEmpty || kind == .empty { return Caption(text: "", kind: .empty, objects: [], relation: nil) }

        if kind == .relation {
            let clear = clearRelations(in: scene)
            if !clear.isEmpty {
                let t = clear[rng.int(below: clear.count)]
                var rest = objects.indices.filter { $0 != t.subject && $0 != t.object }
                rng.shuffle(&rest)
                var text = Captioner.relationCaption(subject: objects[t.subject].objectClass, relation: t.relation,
                                                     object: objects[t.object].objectClass)
                for k in rest { text += " and " + Captioner.phrase(objects[k].objectClass) }
                return Caption(text: text, kind: .relation, objects: [t.subject, t.object] + rest, relation: t)
            }
            kind = .and
        }
        if kind == .single && objects.count >= 2 && namesEveryObject { kind = .and }
        if kind == .and && objects.count >= 2 {
            var order = Array(objects.indices)
            rng.shuffle(&order)
            let text = order.map { Captioner.phrase(objects[$0].objectClass) }.joined(separator: " and ")
            return Caption(text: text, kind: .and, objects: order, relation: nil)
        }
        let k = rng.int(below: objects.count)
        return Caption(text: Captioner.phrase(objects[k].objectClass), kind: .single, objects: [k], relation: nil)
    }

    /// For dual inversion: the caption stating the true (clear) relation of object `subject` to object
    /// `object`, and the same caption with a wrong relation word drawn uniformly from the other three.
    /// Both describe the same image, whose label stays the true relation. Nil when the pair has no
    /// clear relation.
    public func captionPair(scene: Scene, subject: Int, object: Int, using rng: inout RNG)
        -> (positive: String, negative: String, trueRelation: SpatialRelation)? {
        precondition(scene.objects.indices.contains(subject) && scene.objects.indices.contains(object) && subject != object,
                     "subject and object must be two different objects of the scene")
        guard let truth = clearRelation(in: scene, subject: subject, object: object) else { return nil }
        let wrong = SpatialRelation.captionOrder.filter { $0 != truth }
        let negative = wrong[rng.int(below: wrong.count)]
        let s = scene.objects[subject].objectClass, o = scene.objects[object].objectClass
        return (Captioner.relationCaption(subject: s, relation: truth, object: o),
                Captioner.relationCaption(subject: s, relation: negative, object: o),
                truth)
    }
}
