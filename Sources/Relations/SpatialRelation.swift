// SpatialRelation: the four relations the relation classifier can steer toward, with the class
// indices of its 5-logit output (the checkpoint's `rel_name_to_idx`).

/// One of the four spatial relations the learned classifier knows, read "subject <relation> object".
///
/// The raw value is the canonical phrase the authors' parser emits and the classifier checkpoint
/// stores in `rel_name_to_idx`.
public enum SpatialRelation: String, CaseIterable, Codable, Hashable, Sendable {
    case above
    case below
    case leftOf = "to the left of"
    case rightOf = "to the right of"

    /// The classifier's class names in logit order: the alphabetically sorted relation names of the
    /// training split, including the attribute class `is` (the authors'
    /// `gqa_preprocessing.py::create_relation_name_to_index_mapping`).
    public static let classNames = ["above", "below", "is", "to the left of", "to the right of"]

    /// The logit index of the attribute class `is`, which no prompt relation maps to.
    public static let isClassIndex = 2

    /// This relation's logit index in the classifier output: above 0, below 1, left 3, right 4.
    public var classIndex: Int {
        switch self {
        case .above: return 0
        case .below: return 1
        case .leftOf: return 3
        case .rightOf: return 4
        }
    }

    /// The relation whose logit index is `classIndex`, or nil for `is` (2) and out-of-range values.
    public init?(classIndex: Int) {
        switch classIndex {
        case 0: self = .above
        case 1: self = .below
        case 3: self = .leftOf
        case 4: self = .rightOf
        default: return nil
        }
    }

    /// The canonical phrase ("to the left of", "above"), as prompts and the toy world's captions say it.
    public var phrase: String { rawValue }

    /// The relation whose canonical phrase is `phrase` (case and spacing ignored), or nil.
    public init?(phrase: String) {
        let key = phrase.lowercased().split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        self.init(rawValue: key)
    }

    /// The order the toy world draws relations in (captions, wrong-relation negatives, the eval grid).
    /// Fixed: the training data a seed gives and the evaluation prompts' indices depend on it.
    public static let captionOrder: [SpatialRelation] = [.leftOf, .rightOf, .above, .below]

    /// The same fact seen from the other object: "A left of B" ⇔ "B right of A".
    public var inverse: SpatialRelation {
        switch self {
        case .above: return .below
        case .below: return .above
        case .leftOf: return .rightOf
        case .rightOf: return .leftOf
        }
    }

    /// Short label for screens and logs: "above", "below", "left of", "right of".
    public var displayName: String {
        switch self {
        case .above: return "above"
        case .below: return "below"
        case .leftOf: return "left of"
        case .rightOf: return "right of"
        }
    }

    /// The image axis the relation constrains.
    public var axis: Axis {
        switch self {
        case .above, .below: return .vertical
        case .leftOf, .rightOf: return .horizontal
        }
    }

    /// The image axis a relation constrains; relations on different axes never contradict.
    public enum Axis: String, CaseIterable, Codable, Sendable {
        case horizontal, vertical
    }
}

extension SpatialRelation {
    /// Reads the canonical phrase, or the toy world's older case names ("leftOf", "rightOf") that
    /// recordings and datasets written before the one relation type carry.
    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        switch raw {
        case "leftOf": self = .leftOf
        case "rightOf": self = .rightOf
        default:
            guard let r = SpatialRelation(rawValue: raw) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown relation \"\(raw)\""))
            }
            self = r
        }
    }
}
