import Foundation
import Tensors

/// An axis-aligned box in pixel coordinates (x right, y down; pixel (i, j) covers [i, i+1) × [j, j+1)).
public struct Box: Hashable, Codable, Sendable, CustomStringConvertible {
    public var x0: Float, y0: Float, x1: Float, y1: Float

    /// The box from its left, top, right and bottom edges.
    public init(x0: Float, y0: Float, x1: Float, y1: Float) {
        self.x0 = x0; self.y0 = y0; self.x1 = x1; self.y1 = y1
    }

    public var width: Float { x1 - x0 }
    public var height: Float { y1 - y0 }
    public var area: Float { max(width, 0) * max(height, 0) }
    /// The box centre (the point the GenEval rule compares).
    public var centre: SIMD2<Float> { SIMD2((x0 + x1) / 2, (y0 + y1) / 2) }

    /// Intersection over union with another box (0 when disjoint).
    public func iou(_ other: Box) -> Float {
        let iw = min(x1, other.x1) - max(x0, other.x0), ih = min(y1, other.y1) - max(y0, other.y0)
        guard iw > 0, ih > 0 else { return 0 }
        let inter = iw * ih
        return inter / (area + other.area - inter)
    }

    public var description: String {
        String(format: "(%.2f, %.2f)–(%.2f, %.2f)", x0, y0, x1, y1)
    }
}

/// One object in a scene: which class, where its box centre is, and how big it is.
public struct SceneObjectPlacement: Hashable, Codable, Sendable {
    public var objectClass: ObjectClass
    /// Centre of the object's bounding box, in pixels.
    public var centre: SIMD2<Float>
    /// Nominal size in pixels: the longer side of the bounding box (a bar is `size` wide, `size/3` tall).
    public var size: Float

    /// An object of class `objectClass` whose box is centred on `centre`, `size` pixels across.
    public init(objectClass: ObjectClass, centre: SIMD2<Float>, size: Float) {
        self.objectClass = objectClass
        self.centre = centre
        self.size = size
    }

    /// The exact (ground-truth) bounding box of the drawn shape.
    public var box: Box {
        let h = objectClass.shape.halfExtents(size: size)
        return Box(x0: centre.x - h.x, y0: centre.y - h.y, x1: centre.x + h.x, y1: centre.y + h.y)
    }
}

/// A scene: a square image of `size` pixels, its objects (drawn in order, later ones on top) and the
/// tint added to the dark base background.
public struct Scene: Hashable, Codable, Sendable {
    /// Image side in pixels (32 by default; 48 and 64 also used).
    public var size: Int
    public var objects: [SceneObjectPlacement]
    /// Added to `SceneRenderer.baseBackground` (each component small and non-negative).
    public var backgroundTint: SIMD3<Float>

    /// A scene of `size` pixels a side with `objects` drawn in order over the tinted background.
    public init(size: Int, objects: [SceneObjectPlacement], backgroundTint: SIMD3<Float> = .zero) {
        self.size = size
        self.objects = objects
        self.backgroundTint = backgroundTint
    }

    /// The background colour, sRGB in [0, 1].
    public var background: SIMD3<Float> { SceneRenderer.baseBackground + backgroundTint }
}

/// Samples random scenes: 1–3 objects of distinct classes, random sizes and positions with little
/// overlap, a slightly tinted dark background. The same seed always gives the same scene.
public struct SceneSampler: Sendable {
    /// Image side in pixels.
    public var size: Int
    /// Relative weights of scenes with 1, 2, 3, … objects (index 0 is one object).
    public var objectCountWeights: [Float]
    /// Object size as a fraction of the image side (sizes scale with the image).
    public var sizeRange: ClosedRange<Float>
    /// Largest allowed IoU between the bounding boxes of two objects.
    public var maxIoU: Float
    /// Largest per-channel background tint.
    public var maxTint: Float
    /// Minimum distance in pixels between an object's box and the image border.
    public var borderMargin: Float

    /// A sampler for `size`-pixel scenes; the defaults are the training distribution.
    public init(size: Int = 32, objectCountWeights: [Float] = [0.2, 0.4, 0.4],
                sizeRange: ClosedRange<Float> = 0.22...0.40, maxIoU: Float = 0.02,
                maxTint: Float = 0.08, borderMargin: Float = 1) {
        precondition(size >= 16, "scenes need at least 16 pixels a side")
        precondition(!objectCountWeights.isEmpty && objectCountWeights.count <= Catalogue.count,
                     "between 1 and \(Catalogue.count) object counts")
        precondition(objectCountWeights.allSatisfy { $0 >= 0 } && objectCountWeights.reduce(0, +) > 0,
                     "object count weights must be non-negative and not all zero")
        precondition(sizeRange.lowerBound > 0 && sizeRange.upperBound <= 0.6, "object sizes are fractions of the side")
        self.size = size
        self.objectCountWeights = objectCountWeights
        self.sizeRange = sizeRange
        self.maxIoU = maxIoU
        self.maxTint = maxTint
        self.borderMargin = borderMargin
    }

    /// The scene for `seed` (independent seeds give independent scenes).
    public func sample(seed: UInt64) -> Scene {
        var rng = RNG(seed: seed)
        return sample(using: &rng)
    }

    /// The scenes for `seeds`, in order.
    public func scenes<S: Sequence>(seeds: S) -> [Scene] where S.Element == UInt64 {
        seeds.map { sample(seed: $0) }
    }

    /// Draws a scene from `rng`.
    public func sample(using rng: inout RNG) -> Scene {
        let total = objectCountWeights.reduce(0, +)
        var u = rng.uniform() * total, count = objectCountWeights.count
        for (i, w) in objectCountWeights.enumerated() {
            if u < w { count = i + 1; break }
            u -= w
        }
        var classes = Array(0..<Catalogue.count)
        rng.shuffle(&classes)
        let side = Float(size)
        let tint = SIMD3(rng.uniform(), rng.uniform(), rng.uniform()) * maxTint

        for _ in 0..<1000 {  // restarts are rare: three objects of at most 40% of the side fit easily
            var objects: [SceneObjectPlacement] = []
            for k in 0..<count {
                let cls = Catalogue.classes[classes[k]]
                var placed = false
                for _ in 0..<64 {
                    let s = (sizeRange.lowerBound + rng.uniform() * (sizeRange.upperBound - sizeRange.lowerBound)) * side
                    let h = cls.shape.halfExtents(size: s)
                    let loX = h.x + borderMargin, hiX = side - h.x - borderMargin
                    let loY = h.y + borderMargin, hiY = side - h.y - borderMargin
                    let centre = SIMD2(loX + rng.uniform() * max(hiX - loX, 0), loY + rng.uniform() * max(hiY - loY, 0))
                    let candidate = SceneObjectPlacement(objectClass: cls, centre: centre, size: s)
                    let box = candidate.box
                    if objects.allSatisfy({ $0.box.iou(box) <= maxIoU }) {
                        objects.append(candidate)
                        placed = true
                        break
                    }
                }
                if !placed { break }
            }
            if objects.count == count { return Scene(size: size, objects: objects, backgroundTint: tint) }
        }
        preconditionFailure("cannot place \(count) objects of sizes \(sizeRange) with IoU ≤ \(maxIoU) in \(size) px")
    }
}

// MARK: - Shape geometry

extension Shape {
    /// Half the width and height of the shape's bounding box when drawn at nominal `size`.
    public func halfExtents(size: Float) -> SIMD2<Float> {
        let h = size / 2
        switch self {
        case .bar: return SIMD2(h, h / 3)
        case .star:
            let r = size / Shape.starWidthPerRadius
            return SIMD2(h, r * (1 + Shape.cos36) / 2)
        default: return SIMD2(h, h)
        }
    }

    static let cos36 = Float(Foundation.cos(Double.pi / 5))
    /// A star of outer radius R is 2·R·sin 72° wide (its widest extent) and R·(1 + cos 36°) tall.
    static let starWidthPerRadius = Float(2 * Foundation.sin(2 * Double.pi / 5))
    static let starInnerRatio: Float = 0.5
    static let ringInnerRatio: Float = 0.5
    static let armRatio: Float = 1.0 / 3.0
}

/// The signed distance (pixels; negative inside) to one shape drawn at a given centre and size.
/// Pixel coverage is `clamp(0.5 - distance at the pixel centre, 0, 1)`: exact for straight edges,
/// within a few percent elsewhere, and one evaluation per pixel.
struct ShapeOutline {
    let shape: Shape
    let cx: Float, cy: Float
    let h: Float                 // half the nominal size
    let polygon: [Float]         // x, y pairs relative to the centre (triangle, star, diamond)

    init(shape: Shape, centre: SIMD2<Float>, size: Float) {
        self.shape = shape
        cx = centre.x; cy = centre.y
        h = size / 2
        switch shape {
        case .triangle:
            polygon = [0, -h, h, h, -h, h]
        case .diamond:
            polygon = [0, -h, h, 0, 0, h, -h, 0]
        case .star:
            let r = size / Shape.starWidthPerRadius
            let shift = r * (1 - Shape.cos36) / 2   // moves the box centre onto the anchor
            var p: [Float] = []
            for k in 0..<10 {
                let radius = k % 2 == 0 ? r : r * Shape.starInnerRatio
                let a = -Double.pi / 2 + Double(k) * Double.pi / 5
                p.append(radius * Float(Foundation.cos(a)))
                p.append(radius * Float(Foundation.sin(a)) + shift)
            }
            polygon = p
        default:
            polygon = []
        }
    }

    @inline(__always)
    static func boxDistance(_ x: Float, _ y: Float, _ hx: Float, _ hy: Float) -> Float {
        let qx = abs(x) - hx, qy = abs(y) - hy
        let ox = max(qx, 0), oy = max(qy, 0)
        return (ox * ox + oy * oy).squareRoot() + min(max(qx, qy), 0)
    }

    /// Signed distance to a closed polygon (Inigo Quilez's formulation: nearest edge, even–odd sign).
    @inline(__always)
    static func polygonDistance(_ x: Float, _ y: Float, _ v: UnsafeBufferPointer<Float>) -> Float {
        let n = v.count / 2
        var d = (x - v[0]) * (x - v[0]) + (y - v[1]) * (y - v[1])
        var s: Float = 1
        var j = n - 1
        for i in 0..<n {
            let vix = v[2 * i], viy = v[2 * i + 1], vjx = v[2 * j], vjy = v[2 * j + 1]
            let ex = vjx - vix, ey = vjy - viy, wx = x - vix, wy = y - viy
            let t = min(max((wx * ex + wy * ey) / (ex * ex + ey * ey), 0), 1)
            let bx = wx - ex * t, by = wy - ey * t
            d = min(d, bx * bx + by * by)
            let c1 = y >= viy, c2 = y < vjy, c3 = ex * wy > ey * wx
            if (c1 && c2 && c3) || (!c1 && !c2 && !c3) { s = -s }
            j = i
        }
        return s * d.squareRoot()
    }

    /// Signed distance from the point (x, y) in image pixels.
    @inline(__always)
    func distance(_ px: Float, _ py: Float, _ poly: UnsafeBufferPointer<Float>) -> Float {
        let x = px - cx, y = py - cy
        switch shape {
        case .circle: return (x * x + y * y).squareRoot() - h
        case .square: return ShapeOutline.boxDistance(x, y, h, h)
        case .bar: return ShapeOutline.boxDistance(x, y, h, h * Shape.armRatio)
        case .ring:
            let r = (x * x + y * y).squareRoot()
            return max(r - h, h * Shape.ringInnerRatio - r)
        case .cross:
            let a = h * Shape.armRatio
            return min(ShapeOutline.boxDistance(x, y, h, a), ShapeOutline.boxDistance(x, y, a, h))
        case .triangle, .star, .diamond:
            return ShapeOutline.polygonDistance(x, y, poly)
        }
    }

    /// Coverage of the pixels of a window at (originX, originY), row-major.
    func coverageGrid(originX: Int, originY: Int, width: Int, height: Int) -> [Float] {
        var out = [Float](repeating: 0, count: width * height)
        polygon.withUnsafeBufferPointer { poly in
            for j in 0..<height {
                let py = Float(originY + j) + 0.5
                for i in 0..<width {
                    out[j * width + i] = min(max(0.5 - distance(Float(originX + i) + 0.5, py, poly), 0), 1)
                }
            }
        }
        return out
    }

    /// Calls `body(i, j, coverage)` for every pixel of a `width`×`height` grid the shape touches.
    @inline(__always)
    func forEachCoveredPixel(width: Int, height: Int, _ body: (Int, Int, Float) -> Void) {
        let e = shape.halfExtents(size: 2 * h)
        let i0 = max(Int((cx - e.x - 1).rounded(.down)), 0), i1 = min(Int((cx + e.x + 1).rounded(.up)), width - 1)
        let j0 = max(Int((cy - e.y - 1).rounded(.down)), 0), j1 = min(Int((cy + e.y + 1).rounded(.up)), height - 1)
        guard i0 <= i1, j0 <= j1 else { return }
        polygon.withUnsafeBufferPointer { poly in
            for j in j0...j1 {
                let py = Float(j) + 0.5
                for i in i0...i1 {
                    let c = min(max(0.5 - distance(Float(i) + 0.5, py, poly), 0), 1)
                    if c > 0 { body(i, j, c) }
                }
            }
        }
    }
}

// MARK: - Renderer

/// Draws scenes as RGB images, CHW floats in [-1, 1] (the diffusion model's pixel range), with
/// anti-aliased edges. Pure and deterministic: the same scene always gives the same pixels.
public struct SceneRenderer: Sendable {
    /// The dark base background (sRGB in [0, 1]) that each scene's tint is added to.
    public static let baseBackground = SIMD3<Float>(0.05, 0.05, 0.07)

    /// A renderer (it holds no state).
    public init() {}

    /// The scene as CHW floats in [-1, 1], `3 * size * size` values.
    public func render(_ scene: Scene) -> [Float] {
        let n = 3 * scene.size * scene.size
        return [Float](unsafeUninitializedCapacity: n) { buffer, count in
            render(scene, into: buffer.baseAddress!)
            count = n
        }
    }

    /// Writes the scene as CHW floats in [-1, 1] to `out` (`3 * size * size` values).
    public func render(_ scene: Scene, into out: UnsafeMutablePointer<Float>) {
        let w = scene.size, plane = w * w
        let bg = scene.background * 2 - 1
        out.update(repeating: bg.x, count: plane)
        (out + plane).update(repeating: bg.y, count: plane)
        (out + 2 * plane).update(repeating: bg.z, count: plane)
        for object in scene.objects {
            let colour = object.objectClass.rgb * 2 - 1
            let r = colour.x, g = colour.y, b = colour.z
            ShapeOutline(shape: object.objectClass.shape, centre: object.centre, size: object.size)
                .forEachCoveredPixel(width: w, height: w) { i, j, c in
                    let k = j * w + i
                    out[k] += c * (r - out[k])
                    out[plane + k] += c * (g - out[plane + k])
                    out[2 * plane + k] += c * (b - out[2 * plane + k])
                }
        }
    }

    /// The scene as a tensor of shape [3, size, size].
    public func tensor(_ scene: Scene) -> Tensor {
        let t = Tensor(uninitialized: [3, scene.size, scene.size])
        render(scene, into: t.pointer)
        return t
    }

    /// The scenes as one tensor of shape [N, 3, size, size]; all scenes must share a size.
    public func batch(_ scenes: [Scene]) -> Tensor {
        precondition(!scenes.isEmpty, "empty batch")
        let s = scenes[0].size
        precondition(scenes.allSatisfy { $0.size == s }, "scenes in a batch must share a size")
        let t = Tensor(uninitialized: [scenes.count, 3, s, s])
        let stride = 3 * s * s
        for (n, scene) in scenes.enumerated() { render(scene, into: t.pointer + n * stride) }
        return t
    }
}
