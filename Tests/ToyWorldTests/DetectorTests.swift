import Foundation
import Testing
import Tensors
import ToyWorld

/// A rendered image made softer, dimmer and noisier, like a small diffusion model's output.
func degraded(_ image: [Float], size: Int, noise: Float, dim: Float, rng: inout RNG) -> [Float] {
    let plane = size * size
    var out = image
    for c in 0..<3 {
        for y in 0..<size {
            for x in 0..<size {
                var sum: Float = 0, weight: Float = 0
                for dy in -1...1 {
                    for dx in -1...1 {
                        let yy = min(max(y + dy, 0), size - 1), xx = min(max(x + dx, 0), size - 1)
                        let w: Float = (dx == 0 ? 2 : 1) * (dy == 0 ? 2 : 1)
                        sum += w * image[c * plane + yy * size + xx]
                        weight += w
                    }
                }
                out[c * plane + y * size + x] = (sum / weight + 1) * dim - 1 + noise * rng.normal()
            }
        }
    }
    return out
}

@Suite("Detector and the GenEval position rule")
struct DetectorTests {
    @Test("GenEval rule on hand-made boxes")
    func genevalRule() {
        let b = Box(x0: 10, y0: 10, x1: 20, y1: 20)
        // Far left, same height.
        #expect(relations(subject: Box(x0: 0, y0: 10, x1: 6, y1: 20), object: b) == [.leftOf])
        #expect(relations(subject: b, object: Box(x0: 0, y0: 10, x1: 6, y1: 20)) == [.rightOf])
        // Above and below (y points down).
        #expect(relations(subject: Box(x0: 10, y0: 0, x1: 20, y1: 5), object: b) == [.above])
        #expect(relations(subject: Box(x0: 10, y0: 25, x1: 20, y1: 30), object: b) == [.below])
        // Offset smaller than 0.1·(dim_a + dim_b) on both axes: no relation.
        #expect(relations(subject: Box(x0: 11, y0: 11, x1: 21, y1: 21), object: b).isEmpty)
        #expect(genevalDirection(subject: Box(x0: 11, y0: 11, x1: 21, y1: 21), object: b) == nil)
        // A 45° diagonal far away: both axes pass 0.5 (0.1·20 = 2 off each 20 px component).
        #expect(relations(subject: Box(x0: 30, y0: 30, x1: 40, y1: 40), object: b) == [.rightOf, .below])
        #expect(clearRelation(subject: Box(x0: 30, y0: 30, x1: 40, y1: 40), object: b) == nil)
        // Revised offset: dx = (12 - 2) / |(12, 8)| = 0.69 > 0.5, dy = (8 - 2) / 14.4 = 0.42.
        #expect(relations(subject: Box(x0: 22, y0: 18, x1: 32, y1: 28), object: b) == [.rightOf])
        #expect(clearRelation(subject: Box(x0: 22, y0: 18, x1: 32, y1: 28), object: b) == nil)  // 0.42 is within the margin
        #expect(clearRelation(subject: Box(x0: 22, y0: 13, x1: 32, y1: 23), object: b) == .rightOf)
    }

    @Test("finds every object of 2,000 rendered scenes; relations agree with ground truth")
    func validationOnRenders() {
        let sampler = SceneSampler(size: 32)
        let renderer = SceneRenderer()
        let detector = Detector()
        var objects = 0, found = 0, extra = 0, shapeNearest = 0
        var pairs = 0, agree = 0, clearPairs = 0, clearAgree = 0
        var minScore: Float = 1, maxCentreError: Float = 0, minConfidence: Float = 1
        var misses: [String] = []
        for seed in 0..<2000 {
            let scene = sampler.sample(seed: UInt64(seed))
            let detections = detector.detect(image: renderer.render(scene), size: 32)
            var byIndex: [Int: Detection] = [:]
            for d in detections { byIndex[d.objectClass.index] = d }
            extra += detections.filter { d in !scene.objects.contains { $0.objectClass == d.objectClass } }.count
            objects += scene.objects.count
            for o in scene.objects {
                if let d = byIndex[o.objectClass.index] {
                    found += 1
                    if d.nearestShape == o.objectClass.shape { shapeNearest += 1 }
                    minScore = min(minScore, d.shapeScore)
                    minConfidence = min(minConfidence, d.confidence)
                    let e = d.centre - o.box.centre
                    maxCentreError = max(maxCentreError, max(abs(e.x), abs(e.y)))
                } else {
                    misses.append("seed \(seed): \(o.objectClass.name) size \(o.size)")
                }
            }
            for s in scene.objects.indices {
                for t in scene.objects.indices where t != s {
                    guard let ds = byIndex[scene.objects[s].objectClass.index],
                          let dt = byIndex[scene.objects[t].objectClass.index] else { continue }
                    let truth = relations(subject: scene.objects[s].box, object: scene.objects[t].box)
                    let seen = relation(of: ds, to: dt)
                    pairs += 1
                    if truth == seen { agree += 1 }
                    if clearRelation(subject: scene.objects[s].box, object: scene.objects[t].box) != nil {
                        clearPairs += 1
                        if truth == seen { clearAgree += 1 }
                    }
                }
            }
        }
        let agreement = Double(agree) / Double(pairs), clearAgreement = Double(clearAgree) / Double(clearPairs)
        print("detector validation: \(found)/\(objects) objects found, \(extra) extra; nearest shape correct \(shapeNearest)/\(found); min shape score \(minScore), min confidence \(minConfidence); max centre error \(maxCentreError) px; relation agreement \(agree)/\(pairs) = \(agreement); clear pairs \(clearAgree)/\(clearPairs) = \(clearAgreement)")
        if !misses.isEmpty { print("misses: \(misses.prefix(10))") }
        #expect(found == objects)
        #expect(extra == 0)
        #expect(agreement >= 0.99)
        #expect(clearAgree == clearPairs)
    }

    @Test("robust to blurred, dimmed, noisy images")
    func degradedImages() {
        let sampler = SceneSampler(size: 32)
        var rng = RNG(seed: 9)
        var objects = 0, found = 0, extra = 0, clearPairs = 0, clearAgree = 0
        for seed in 0..<300 {
            let scene = sampler.sample(seed: UInt64(seed))
            let image = degraded(SceneRenderer().render(scene), size: 32, noise: 0.1, dim: 0.85, rng: &rng)
            let detections = detect(image: image, size: 32)
            objects += scene.objects.count
            for d in detections {
                if scene.objects.contains(where: { $0.objectClass == d.objectClass }) { found += 1 } else { extra += 1 }
            }
            for s in scene.objects.indices {
                for t in scene.objects.indices where t != s {
                    guard clearRelation(subject: scene.objects[s].box, object: scene.objects[t].box) != nil,
                          let a = detections.first(where: { $0.objectClass == scene.objects[s].objectClass }),
                          let b = detections.first(where: { $0.objectClass == scene.objects[t].objectClass }) else { continue }
                    clearPairs += 1
                    if relation(of: a, to: b) == relations(subject: scene.objects[s].box, object: scene.objects[t].box) { clearAgree += 1 }
                }
            }
        }
        print("degraded images: \(found)/\(objects) found, \(extra) extra, clear relations \(clearAgree)/\(clearPairs)")
        #expect(Double(found) >= 0.99 * Double(objects))
        #expect(extra == 0)
        #expect(Double(clearAgree) >= 0.99 * Double(clearPairs))
    }

    @Test("instances: one per rendered object, two for a duplicated class")
    func instances() {
        let sampler = SceneSampler(size: 32)
        var exact = 0, scenes = 0
        for seed in 0..<300 {
            let scene = sampler.sample(seed: UInt64(seed))
            let found = Detector().instances(image: SceneRenderer().render(scene), size: 32)
            scenes += 1
            var counts: [String: Int] = [:]
            for d in found { counts[d.objectClass.name, default: 0] += 1 }
            let truth = Dictionary(uniqueKeysWithValues: scene.objects.map { ($0.objectClass.name, 1) })
            if counts == truth { exact += 1 }
        }
        #expect(Double(exact) / Double(scenes) > 0.97, "\(exact)/\(scenes) scenes counted exactly")
        // Two blue squares apart and a red circle: two instances of one class, one of the other; the
        // largest-blob detection still reports each class once.
        let square = Catalogue.named("blue square")!, circle = Catalogue.named("red circle")!
        let scene = Scene(size: 32, objects: [
            SceneObjectPlacement(objectClass: square, centre: SIMD2(7, 8), size: 8),
            SceneObjectPlacement(objectClass: square, centre: SIMD2(24, 8), size: 8),
            SceneObjectPlacement(objectClass: circle, centre: SIMD2(16, 24), size: 9),
        ])
        let image = SceneRenderer().render(scene)
        let found = Detector().instances(image: image, size: 32)
        #expect(found.filter { $0.objectClass == square }.count == 2)
        #expect(found.filter { $0.objectClass == circle }.count == 1)
        #expect(Detector().detect(image: image, size: 32).filter { $0.objectClass == square }.count == 1)
    }

    @Test("relation(of:to:) and holds on detections")
    func holdsOnDetections() {
        let red = Catalogue.named("red circle")!, blue = Catalogue.named("blue square")!, star = Catalogue.named("yellow star")!
        let scene = Scene(size: 32, objects: [
            SceneObjectPlacement(objectClass: red, centre: SIMD2(7, 20), size: 8),
            SceneObjectPlacement(objectClass: blue, centre: SIMD2(24, 21), size: 9),
            SceneObjectPlacement(objectClass: star, centre: SIMD2(23, 6), size: 8),
        ])
        let found = detect(image: SceneRenderer().render(scene), size: 32)
        guard let r = found.first(where: { $0.objectClass == red }), let b = found.first(where: { $0.objectClass == blue }),
              let s = found.first(where: { $0.objectClass == star }) else {
            Issue.record("objects missing: \(found.map(\.objectClass.name))")
            return
        }
        #expect(relation(of: r, to: b) == [.leftOf])
        #expect(holds(.leftOf, subject: r, object: b) && holds(.rightOf, subject: b, object: r))
        #expect(!holds(.rightOf, subject: r, object: b) && !holds(.above, subject: r, object: b))
        #expect(holds(.above, subject: s, object: b) && holds(.below, subject: b, object: s))
        #expect(relation(of: r, to: s) == [.leftOf, .below])   // a diagonal gives two relations
    }

    @Test("tensor input, larger images, empty scenes")
    func inputsAndSizes() {
        let renderer = SceneRenderer()
        for size in [48, 64] {
            let sampler = SceneSampler(size: size)
            for seed in 0..<40 {
                let scene = sampler.sample(seed: UInt64(seed))
                let fromArray = detect(image: renderer.render(scene), size: size)
                let fromTensor = detect(image: renderer.tensor(scene))
                #expect(fromArray == fromTensor)
                #expect(Set(fromArray.map(\.objectClass)) == Set(scene.objects.map(\.objectClass)))
                for d in fromArray {
                    let truth = scene.objects.first { $0.objectClass == d.objectClass }!.box
                    // Boxes may overlap a little (IoU ≤ 0.02); an occluded edge moves the detected box.
                    guard !scene.objects.contains(where: { $0.box != truth && $0.box.iou(truth) > 0 }) else { continue }
                    #expect(abs(d.centre.x - truth.centre.x) < 0.6 && abs(d.centre.y - truth.centre.y) < 0.6, "\(size) px seed \(seed): \(d.objectClass.name) box \(d.box) truth \(truth); scene \(scene.objects.map { "\($0.objectClass.name) \($0.box)" })")
                    #expect(d.nearestShape == d.objectClass.shape)
                    #expect(d.confidence > 0.5 && d.confidence <= 1)
                }
            }
        }
        let empty = Scene(size: 32, objects: [], backgroundTint: SIMD3(0.05, 0.0, 0.08))
        #expect(detect(image: renderer.render(empty), size: 32).isEmpty)
    }
}
