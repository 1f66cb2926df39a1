import Testing
import Tensors
import ToyWorld

@Suite("Scene sampling and rendering")
struct SceneRendererTests {
    let renderer = SceneRenderer()

    @Test("same seed, same scene and identical pixels; other seeds differ")
    func determinism() {
        for size in [32, 48, 64] {
            let sampler = SceneSampler(size: size)
            for seed: UInt64 in [0, 1, 7, 123_456_789] {
                let a = sampler.sample(seed: seed), b = sampler.sample(seed: seed)
                #expect(a == b)
                #expect(renderer.render(a) == renderer.render(b))
            }
            #expect(renderer.render(sampler.sample(seed: 1)) != renderer.render(sampler.sample(seed: 2)))
        }
    }

    @Test("scenes keep to the sampler's rules")
    func samplerRules() {
        let sampler = SceneSampler(size: 32)
        var counts = [0, 0, 0]
        let n = 2000
        for seed in 0..<n {
            let scene = sampler.sample(seed: UInt64(seed))
            #expect((1...3).contains(scene.objects.count))
            counts[scene.objects.count - 1] += 1
            #expect(Set(scene.objects.map(\.objectClass)).count == scene.objects.count, "classes must be distinct")
            #expect(scene.backgroundTint.min() >= 0 && scene.backgroundTint.max() <= sampler.maxTint)
            for (k, o) in scene.objects.enumerated() {
                #expect(o.size >= 0.22 * 32 - 1e-4 && o.size <= 0.40 * 32 + 1e-4)
                let box = o.box
                #expect(box.x0 >= 1 - 1e-4 && box.y0 >= 1 - 1e-4 && box.x1 <= 31 + 1e-4 && box.y1 <= 31 + 1e-4)
                for p in scene.objects[(k + 1)...] { #expect(box.iou(p.box) <= sampler.maxIoU) }
            }
        }
        // Weights 0.2 / 0.4 / 0.4.
        #expect(abs(Double(counts[0]) / Double(n) - 0.2) < 0.04)
        #expect(abs(Double(counts[1]) / Double(n) - 0.4) < 0.05)
        #expect(abs(Double(counts[2]) / Double(n) - 0.4) < 0.05)
        let single = SceneSampler(size: 32, objectCountWeights: [0, 0, 1])
        #expect((0..<50).allSatisfy { single.sample(seed: UInt64($0)).objects.count == 3 })
    }

    @Test("object sizes scale with the image")
    func sizesScale() {
        for size in [48, 64] {
            let sampler = SceneSampler(size: size)
            for seed in 0..<200 {
                for o in sampler.sample(seed: UInt64(seed)).objects {
                    #expect(o.size >= 0.22 * Float(size) - 1e-3 && o.size <= 0.40 * Float(size) + 1e-3)
                }
            }
        }
    }

    @Test("pixels: background, class colours inside shapes, soft edges, range [-1, 1]")
    func pixels() {
        let red = Catalogue.named("red circle")!, bar = Catalogue.named("cyan bar")!, ring = Catalogue.named("orange ring")!
        let scene = Scene(size: 32, objects: [
            SceneObjectPlacement(objectClass: red, centre: SIMD2(8.3, 8.6), size: 10),
            SceneObjectPlacement(objectClass: bar, centre: SIMD2(22, 24), size: 12),
            SceneObjectPlacement(objectClass: ring, centre: SIMD2(24, 8), size: 12),
        ], backgroundTint: SIMD3(0.02, 0.04, 0.0))
        let image = renderer.render(scene)
        #expect(image.count == 3 * 32 * 32)
        #expect(image.allSatisfy { $0 >= -1 && $0 <= 1 })
        func pixel(_ x: Int, _ y: Int) -> SIMD3<Float> {
            SIMD3(image[y * 32 + x], image[1024 + y * 32 + x], image[2048 + y * 32 + x])
        }
        func close(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> Bool { max((a - b).max(), (b - a).max()) < 1e-5 }
        let bg = scene.background * 2 - 1
        #expect(close(pixel(0, 31), bg))
        #expect(close(pixel(8, 8), red.rgb * 2 - 1))
        #expect(close(pixel(22, 24), bar.rgb * 2 - 1))
        #expect(close(pixel(22, 20), bg), "the bar is only 4 px tall")
        #expect(close(pixel(24, 8), bg), "the ring has a hole")
        #expect(close(pixel(24, 3), ring.rgb * 2 - 1))
        // Anti-aliasing: the circle's rim has pixels part-way between background and red.
        let rim = (0..<32).map { pixel($0, 8).x }.filter { $0 > bg.x + 0.05 && $0 < red.rgb.x * 2 - 1 - 0.05 }
        #expect(rim.count >= 2)
    }

    @Test("tensor and batch hold the same pixels as render")
    func tensors() {
        let sampler = SceneSampler(size: 48)
        let scenes = sampler.scenes(seeds: 10..<14)
        let batch = renderer.batch(scenes)
        #expect(batch.shape == [4, 3, 48, 48])
        let all = batch.array
        for (n, scene) in scenes.enumerated() {
            let single = renderer.tensor(scene)
            #expect(single.shape == [3, 48, 48])
            #expect(single.array == renderer.render(scene))
            #expect(Array(all[(n * 3 * 48 * 48)..<((n + 1) * 3 * 48 * 48)]) == renderer.render(scene))
        }
    }

    @Test("ground-truth boxes are centred on the placement, bars 3:1")
    func boxes() {
        for cls in Catalogue.classes {
            let box = SceneObjectPlacement(objectClass: cls, centre: SIMD2(16, 16), size: 12).box
            #expect(abs(box.centre.x - 16) < 1e-5 && abs(box.centre.y - 16) < 1e-5)
            #expect(abs(box.width - 12) < 1e-4)
            switch cls.shape {
            case .bar: #expect(abs(box.height - 4) < 1e-4)
            case .star: #expect(box.height < 12 && box.height > 11)
            default: #expect(abs(box.height - 12) < 1e-4)
            }
        }
    }
}
