import Foundation
import Relations
import Tensors

/// One catalogue object found in an image.
public struct Detection: Hashable, Sendable {
    public let objectClass: ObjectClass
    /// Bounding box with sub-pixel edges (estimated from anti-aliased edge coverage).
    public let box: Box
    /// Box centre, the point the GenEval rule compares.
    public let centre: SIMD2<Float>
    /// Area in pixels (sum of the estimated per-pixel coverage).
    public let area: Float
    /// Coverage-weighted centre of mass.
    public let centroid: SIMD2<Float>
    /// How well the blob matches its class's shape: soft IoU with that shape drawn into the box, in [0, 1].
    public let shapeScore: Float
    /// The catalogue shape that, drawn into the box, overlaps the blob best.
    public let nearestShape: Shape
    /// Colour fit times shape fit, in [0, 1].
    public let confidence: Float
}

/// Finds catalogue objects in RGB images by colour, then checks their shape.
///
/// Each pixel is matched to the class colour whose line from the background colour passes nearest
/// (allowing some brightness change); each class keeps its largest 8-connected blob. Edges are
/// refined to sub-pixel precision from the anti-aliased coverage just outside the blob, and the
/// blob's coverage is compared (soft IoU) with every catalogue shape drawn into the same box: the
/// class's own shape gives the shape score, the best one `nearestShape`. At most one detection per class.
public struct Detector: Sendable {
    /// Largest RGB distance ([0, 1] components) between a pixel and its class colour line.
    public var colourTolerance: Float
    /// Blob pixels lie on a class colour's line from the background at a scale in this range (the
    /// lower bound is the coverage a pixel needs to join a blob; above 1 allows brighter outputs).
    public var brightnessRange: ClosedRange<Float>
    /// Smallest blob, as a fraction of the image area (8 pixels at 32 px; the smallest rendered object has about 16).
    public var minAreaFraction: Float
    /// Blobs whose shape score is below this are not reported.
    public var minShapeScore: Float
    /// Edge pixels with less coverage than this are ignored when refining the box.
    public var edgeCoverageFloor: Float

    public init(colourTolerance: Float = 0.3, brightnessRange: ClosedRange<Float> = 0.45...1.3,
                minAreaFraction: Float = 0.008, minShapeScore: Float = 0.25, edgeCoverageFloor: Float = 0.08) {
        self.colourTolerance = colourTolerance
        self.brightnessRange = brightnessRange
        self.minAreaFraction = minAreaFraction
        self.minShapeScore = minShapeScore
        self.edgeCoverageFloor = edgeCoverageFloor
    }

    /// Detections in a [3, H, W] tensor with values in [-1, 1].
    public func detect(image: Tensor) -> [Detection] {
        precondition(image.rank == 3 && image.shape[0] == 3, "expected an image of shape [3, H, W]")
        let buffer = UnsafeBufferPointer(start: image.pointer, count: image.count)
        return detect(pixels: buffer, width: image.shape[2], height: image.shape[1])
    }

    /// Detections in a square CHW image (`3 * size * size` values in [-1, 1]).
    public func detect(image: [Float], size: Int) -> [Detection] {
        precondition(image.count == 3 * size * size, "expected 3×\(size)×\(size) values, got \(image.count)")
        return image.withUnsafeBufferPointer { detect(pixels: $0, width: size, height: size) }
    }

    /// Detections in a CHW image of `width`×`height` pixels with values in [-1, 1].
    public func detect(pixels: UnsafeBufferPointer<Float>, width: Int, height: Int) -> [Detection] {
        read(pixels: pixels, width: width, height: height, instances: false).detections
    }

    /// Every object instance in a square CHW image: each colour blob of at least the minimum area
    /// that passes the shape check, measured like a detection (so two blue squares are two instances).
    public func instances(image: [Float], size: Int) -> [Detection] {
        precondition(image.count == 3 * size * size, "expected 3×\(size)×\(size) values, got \(image.count)")
        return image.withUnsafeBufferPointer { read(pixels: $0, width: size, height: size, instances: true).instances }
    }

    /// Every object instance in a CHW image tensor [3, H, W] (or [1, 3, H, W]) with values in [-1, 1].
    public func instances(image: Tensor) -> [Detection] {
        let h = image.shape[image.rank - 2], w = image.shape[image.rank - 1]
        precondition(image.count == 3 * h * w, "expected one 3-channel image, got \(image.shape)")
        return read(pixels: UnsafeBufferPointer(start: image.pointer, count: image.count), width: w, height: h,
                    instances: true).instances
    }

    /// The largest blob per class (`detections`) and, when `instances` is set, every blob that passes.
    func read(pixels: UnsafeBufferPointer<Float>, width: Int, height: Int, instances wantInstances: Bool)
        -> (detections: [Detection], instances: [Detection]) {
        let n = width * height
        precondition(pixels.count == 3 * n && width >= 3 && height >= 3, "bad image size")
        // [0, 1] colours, planar.
        var rgb = [Float](repeating: 0, count: 3 * n)
        for k in 0..<(3 * n) { rgb[k] = min(max((pixels[k] + 1) / 2, 0), 1) }
        let bg = Detector.borderMedian(rgb, width: width, height: height)

        // Class colour lines from the background.
        let classes = Catalogue.classes
        var dirs = [Float](repeating: 0, count: 3 * classes.count), invNorm2 = [Float](repeating: 0, count: classes.count)
        for (c, cls) in classes.enumerated() {
            let d = cls.rgb - bg
            dirs[3 * c] = d.x; dirs[3 * c + 1] = d.y; dirs[3 * c + 2] = d.z
            invNorm2[c] = 1 / max((d * d).sum(), 1e-6)
        }

        // 1. Label pixels: the class whose colour line from the background passes nearest (the
        //    brightness scale `a` along the line is the pixel's coverage); blob pixels need
        //    `a >= blobCoverage`, so faint edges and background mixtures stay out of blobs.
        let tol = colourTolerance, tol2 = tol * tol
        let aHi = brightnessRange.upperBound, aBlob = brightnessRange.lowerBound
        let minForeground2 = edgeCoverageFloor * edgeCoverageFloor * 0.25
        var label = [Int](repeating: -1, count: n)       // blob class
        var nearest = [Int](repeating: -1, count: n)     // best-fitting class, any coverage
        var coverage = [Float](repeating: 0, count: n)   // scale along that class's line, ≤ 1
        var residual = [Float](repeating: .infinity, count: n)
        for k in 0..<n {
            let pr = rgb[k] - bg.x, pg = rgb[n + k] - bg.y, pb = rgb[2 * n + k] - bg.z
            if pr * pr + pg * pg + pb * pb < minForeground2 { continue }
            var best = -1, bestD2 = tol2, bestA: Float = 0
            for c in 0..<classes.count {
                let dr = dirs[3 * c], dg = dirs[3 * c + 1], db = dirs[3 * c + 2]
                let a = min(max((pr * dr + pg * dg + pb * db) * invNorm2[c], 0), aHi)
                let er = pr - a * dr, eg = pg - a * dg, eb = pb - a * db
                let d2 = er * er + eg * eg + eb * eb
                if d2 < bestD2 { bestD2 = d2; best = c; bestA = a }
            }
            guard best >= 0 else { continue }
            nearest[k] = best
            coverage[k] = min(bestA, 1)
            residual[k] = bestD2.squareRoot()
            if bestA >= aBlob { label[k] = best }
        }

        // 2. Largest 8-connected blob per class.
        var component = [Int](repeating: -1, count: n)
        var bestComponent = [Int](repeating: -1, count: classes.count)
        var bestSize = [Int](repeating: 0, count: classes.count)
        var stack: [Int] = []
        var componentSizes: [(cls: Int, size: Int)] = []
        var nextID = 0
        for start in 0..<n where label[start] >= 0 && component[start] < 0 {
            let c = label[start], id = nextID
            nextID += 1
            component[start] = id
            stack.append(start)
            var count = 0
            while let k = stack.popLast() {
                count += 1
                let i = k % width, j = k / width
                for dj in -1...1 {
                    let y = j + dj
                    if y < 0 || y >= height { continue }
                    for di in -1...1 {
                        let x = i + di
                        if x < 0 || x >= width { continue }
                        let q = y * width + x
                        if label[q] == c && component[q] < 0 { component[q] = id; stack.append(q) }
                    }
                }
            }
            if count > bestSize[c] { bestSize[c] = count; bestComponent[c] = id }
            componentSizes.append((c, count))
        }

        // 3. Measure each kept blob.
        let minArea = max(3, Int((minAreaFraction * Float(n)).rounded()))
        func measure(class c: Int, component id: Int, size: Int) -> Detection? {
            let cls = classes[c]
            var i0 = width, i1 = -1, j0 = height, j1 = -1
            var residualSum: Float = 0
            for k in 0..<n where component[k] == id {
                let i = k % width, j = k / width
                i0 = min(i0, i); i1 = max(i1, i); j0 = min(j0, j); j1 = max(j1, j)
                residualSum += residual[k]
            }
            // Soft coverage of this class in the blob's box grown by two pixels: pixels whose colour
            // fits this class best, at their coverage (anti-aliased edges and thin tips included).
            let wi0 = max(i0 - 2, 0), wi1 = min(i1 + 2, width - 1)
            let wj0 = max(j0 - 2, 0), wj1 = min(j1 + 2, height - 1)
            let ww = wi1 - wi0 + 1, wh = wj1 - wj0 + 1
            var cov = [Float](repeating: 0, count: ww * wh)
            for j in wj0...wj1 {
                for i in wi0...wi1 {
                    let k = j * width + i
                    if nearest[k] == c && coverage[k] > edgeCoverageFloor { cov[(j - wj0) * ww + (i - wi0)] = coverage[k] }
                }
            }
            // Sub-pixel edges: an edge pixel with coverage a puts the edge a pixels into it.
            // Along one axis: line k's coverage is its maximum across the other axis.
            let floor = edgeCoverageFloor
            func extent(lines: Int, across: Int, origin: Int, _ coverage: (Int, Int) -> Float) -> (Float, Float) {
                var lo = Float.infinity, hi = -Float.infinity
                for k in 0..<lines {
                    var m: Float = 0
                    for t in 0..<across { m = max(m, coverage(k, t)) }
                    if m > floor {
                        lo = min(lo, Float(origin + k) + 1 - m)
                        hi = max(hi, Float(origin + k) + m)
                    }
                }
                return (lo, hi)
            }
            let (x0, x1) = extent(lines: ww, across: wh, origin: wi0) { i, j in cov[j * ww + i] }
            let (y0, y1) = extent(lines: wh, across: ww, origin: wj0) { j, i in cov[j * ww + i] }
            let box = Box(x0: x0, y0: y0, x1: x1, y1: y1)
            guard box.width > 0, box.height > 0 else { return nil }
            var mass: Float = 0, mx: Float = 0, my: Float = 0
            for j in 0..<wh {
                for i in 0..<ww {
                    let m = cov[j * ww + i]
                    mass += m; mx += m * (Float(wi0 + i) + 0.5); my += m * (Float(wj0 + j) + 0.5)
                }
            }
            // Shape check: overlap (soft IoU) with each catalogue shape drawn into the same box, after
            // scaling coverage so the blob's brightest pixel counts as full (dim outputs still fit).
            let peak = max(cov.max() ?? 1, aBlob)
            let shapeCoverage = peak < 1 ? cov.map { min($0 / peak, 1) } : cov
            var own: Float = 0, nearest = cls.shape, nearestFit: Float = -1
            for shape in Shape.allCases {
                let fit = Detector.templateFit(shape, box: box, coverage: shapeCoverage, originX: wi0, originY: wj0, width: ww, height: wh)
                if shape == cls.shape { own = fit }
                if fit > nearestFit { nearestFit = fit; nearest = shape }
            }
            guard own >= minShapeScore else { return nil }
            let colourFit = max(0, 1 - residualSum / Float(size) / tol)
            return Detection(objectClass: cls, box: box, centre: box.centre, area: mass,
                             centroid: SIMD2(mx / mass, my / mass), shapeScore: own, nearestShape: nearest,
                             confidence: colourFit * own)
        }
        let detections = classes.indices.compactMap { c in
            bestSize[c] >= minArea ? measure(class: c, component: bestComponent[c], size: bestSize[c]) : nil
        }
        guard wantInstances else { return (detections, []) }
        let instances = componentSizes.enumerated().compactMap { id, blob in
            blob.size >= minArea ? measure(class: blob.cls, component: id, size: blob.size) : nil
        }
        return (detections, instances)
    }

    /// Soft IoU, Σ min / Σ max, between measured coverage and `shape` drawn to fill `box` (its
    /// nominal size fitted to the box's width and height).
    static func templateFit(_ shape: Shape, box: Box, coverage: [Float], originX: Int, originY: Int,
                            width: Int, height: Int) -> Float {
        let unit = shape.halfExtents(size: 1)
        let size = (box.width / (2 * unit.x) + box.height / (2 * unit.y)) / 2
        let template = ShapeOutline(shape: shape, centre: box.centre, size: size)
            .coverageGrid(originX: originX, originY: originY, width: width, height: height)
        var inter: Float = 0, union: Float = 0
        for k in 0..<(width * height) {
            inter += min(coverage[k], template[k])
            union += max(coverage[k], template[k])
        }
        return union > 0 ? inter / union : 0
    }

    /// Per-channel median of the border pixels: the background colour estimate.
    static func borderMedian(_ rgb: [Float], width: Int, height: Int) -> SIMD3<Float> {
        let n = width * height
        var border: [Int] = []
        for i in 0..<width { border.append(i); border.append((height - 1) * width + i) }
        for j in 1..<(height - 1) { border.append(j * width); border.append(j * width + width - 1) }
        var out = SIMD3<Float>.zero
        for ch in 0..<3 {
            let values = border.map { rgb[ch * n + $0] }.sorted()
            out[ch] = values[values.count / 2]
        }
        return out
    }
}

/// Detections in a square CHW image (`3 * size * size` values in [-1, 1]) with default settings.
public func detect(image: [Float], size: Int) -> [Detection] {
    Detector().detect(image: image, size: size)
}

/// Detections in a [3, H, W] tensor with values in [-1, 1], with default settings.
public func detect(image: Tensor) -> [Detection] {
    Detector().detect(image: image)
}

// MARK: - GenEval position rule

/// GenEval's POSITION_THRESHOLD: the part of the summed box sizes an offset must exceed.
public let genevalPositionThreshold: Float = 0.1

/// The GenEval direction of `subject` relative to `object`: the revised offset (each axis shrunk
/// towards 0 by 0.1·(dim_subject + dim_object)) divided by the raw offset's length; nil when every
/// revised component is below 1e-3 (no relation).
public func genevalDirection(subject: Box, object: Box) -> SIMD2<Float>? {
    let offset = subject.centre - object.centre
    let shrink = genevalPositionThreshold * SIMD2(subject.width + object.width, subject.height + object.height)
    var revised = SIMD2<Float>.zero
    for a in 0..<2 {
        let m = max(abs(offset[a]) - shrink[a], 0)
        revised[a] = offset[a] < 0 ? -m : (offset[a] > 0 ? m : 0)
    }
    guard abs(revised.x) >= 1e-3 || abs(revised.y) >= 1e-3 else { return nil }
    let norm = (offset * offset).sum().squareRoot()
    return revised / norm
}

/// The relations of `subject` to `object` under the GenEval rule: at most one of left/right and one
/// of above/below (image y points down).
public func relations(subject: Box, object: Box) -> Set<SpatialRelation> {
    guard let d = genevalDirection(subject: subject, object: object) else { return [] }
    var out: Set<SpatialRelation> = []
    if d.x < -0.5 { out.insert(.leftOf) }
    if d.x > 0.5 { out.insert(.rightOf) }
    if d.y < -0.5 { out.insert(.above) }
    if d.y > 0.5 { out.insert(.below) }
    return out
}

/// The single relation of `subject` to `object` that holds with a clear margin, or nil: the GenEval
/// component on the dominant axis must pass 0.5 by `margin` and the other must stay `margin` short
/// of 0.5, so the relation is unambiguous and survives small box errors.
public func clearRelation(subject: Box, object: Box, margin: Float = 0.1) -> SpatialRelation? {
    guard let d = genevalDirection(subject: subject, object: object) else { return nil }
    let lo = 0.5 - margin, hi = 0.5 + margin
    if abs(d.x) >= hi && abs(d.y) <= lo { return d.x < 0 ? .leftOf : .rightOf }
    if abs(d.y) >= hi && abs(d.x) <= lo { return d.y < 0 ? .above : .below }
    return nil
}

/// The GenEval relations of detection `a` to detection `b`.
public func relation(of a: Detection, to b: Detection) -> Set<SpatialRelation> {
    relations(subject: a.box, object: b.box)
}

/// Whether `rel` holds for `subject` relative to `object` under the GenEval rule.
public func holds(_ rel: SpatialRelation, subject: Detection, object: Detection) -> Bool {
    relation(of: subject, to: object).contains(rel)
}
