/// The outline of a catalogue object. Each shape differs from the others in fill ratio, aspect or
/// layout (hole, arms, points), so a detector can check a blob's shape as well as its colour.
public enum Shape: String, CaseIterable, Codable, Hashable, Sendable {
    /// A filled disc.
    case circle
    /// A filled axis-aligned square.
    case square
    /// An isosceles triangle, apex up, base as wide as it is tall.
    case triangle
    /// A five-pointed star, one point up (inner radius half the outer).
    case star
    /// A square turned 45° (a rhombus touching the box's edge midpoints).
    case diamond
    /// An annulus, inner radius half the outer.
    case ring
    /// A plus sign whose arms are a third of its width.
    case cross
    /// A horizontal rectangle, three times as wide as it is tall.
    case bar
}

/// One object class of the toy world: a distinct (colour, shape) pair with a plain name.
public struct ObjectClass: Hashable, Codable, Sendable, CustomStringConvertible {
    /// Position in `Catalogue.classes` (stable; used as a class label).
    public let index: Int
    /// The colour word used in captions ("red").
    public let colourName: String
    /// The outline drawn.
    public let shape: Shape
    /// The caption name, "<colour> <shape>" ("red circle").
    public let name: String
    /// Fill colour, sRGB components in [0, 1].
    public let rgb: SIMD3<Float>

    /// A class named "<colourName> <shape>".
    public init(index: Int, colourName: String, shape: Shape, rgb: SIMD3<Float>) {
        self.index = index
        self.colourName = colourName
        self.shape = shape
        self.name = "\(colourName) \(shape.rawValue)"
        self.rgb = rgb
    }

    /// The shape word used in captions ("circle").
    public var shapeName: String { shape.rawValue }

    /// The indefinite article before the name: "an" before a vowel ("an orange ring"), else "a".
    public var article: String { "aeiou".contains(colourName.prefix(1)) ? "an" : "a" }

    public var description: String { name }
}

/// The fixed set of object classes. Colours are far apart in RGB (every pair at least 0.4 apart in
/// Euclidean distance on [0, 1] components) and far from the dark background; shapes are all
/// different, so colour alone identifies a class and shape confirms it.
public enum Catalogue {
    /// The eight classes, in index order. The order (and so every index) never changes.
    public static let classes: [ObjectClass] = [
        ObjectClass(index: 0, colourName: "red", shape: .circle, rgb: SIMD3(0.92, 0.12, 0.12)),
        ObjectClass(index: 1, colourName: "blue", shape: .square, rgb: SIMD3(0.15, 0.30, 1.00)),
        ObjectClass(index: 2, colourName: "green", shape: .triangle, rgb: SIMD3(0.10, 0.75, 0.15)),
        ObjectClass(index: 3, colourName: "yellow", shape: .star, rgb: SIMD3(0.98, 0.92, 0.10)),
        ObjectClass(index: 4, colourName: "purple", shape: .diamond, rgb: SIMD3(0.62, 0.18, 0.88)),
        ObjectClass(index: 5, colourName: "orange", shape: .ring, rgb: SIMD3(1.00, 0.52, 0.00)),
        ObjectClass(index: 6, colourName: "white", shape: .cross, rgb: SIMD3(0.96, 0.96, 0.96)),
        ObjectClass(index: 7, colourName: "cyan", shape: .bar, rgb: SIMD3(0.05, 0.88, 0.92)),
    ]

    /// Number of classes.
    public static var count: Int { classes.count }

    /// The class called `name` ("red circle"; case and surrounding/extra spaces ignored), or nil.
    public static func named(_ name: String) -> ObjectClass? {
        let key = name.lowercased().split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        return classes.first { $0.name == key }
    }

    /// The class with this colour word and shape word, or nil.
    public static func find(colour: String, shape: String) -> ObjectClass? {
        named("\(colour) \(shape)")
    }

    /// The colour words, in class order.
    public static var colourWords: [String] { classes.map(\.colourName) }

    /// The shape words, in class order.
    public static var shapeWords: [String] { classes.map(\.shapeName) }
}
