import Foundation
import Imaging
import Testing
import Tensors
import ToyWorld

/// Opt-in checks run by hand (they time a release build or write files outside the sandbox):
///   TOYWORLD_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter ExamplesAndTiming
///   TOYWORLD_EXAMPLES=/tmp/toy_examples.png swift test --filter ExamplesAndTiming (the grid also
///   runs without it, into a temporary file)
@Suite("Examples and timing")
struct ExamplesAndTimingTests {
    @Test("render speed of a 64-scene batch", .enabled(if: ProcessInfo.processInfo.environment["TOYWORLD_BENCH"] != nil))
    func renderSpeed() {
        let renderer = SceneRenderer()
        for size in [32, 48, 64] {
            let sampler = SceneSampler(size: size)
            var best = Double.infinity, bestSampling = Double.infinity, bestDetect = Double.infinity
            var checksum: Float = 0
            for round in 0..<20 {
                let seeds = UInt64(round * 64)..<UInt64(round * 64 + 64)
                let t0 = DispatchTime.now().uptimeNanoseconds
                let scenes = sampler.scenes(seeds: seeds)
                let t1 = DispatchTime.now().uptimeNanoseconds
                let batch = renderer.batch(scenes)
                let t2 = DispatchTime.now().uptimeNanoseconds
                checksum += batch.pointer[round]
                best = min(best, Double(t2 - t0) / 1e6)
                bestSampling = min(bestSampling, Double(t1 - t0) / 1e6)
                let images = (0..<64).map { Tensor(Array(batch.array[($0 * 3 * size * size)..<(($0 + 1) * 3 * size * size)]), shape: [3, size, size]) }
                let t3 = DispatchTime.now().uptimeNanoseconds
                for image in images { checksum += Float(detect(image: image).count) }
                let t4 = DispatchTime.now().uptimeNanoseconds
                bestDetect = min(bestDetect, Double(t4 - t3) / 1e6)
            }
            print(String(format: "timing %d px: sample+render 64 scenes %.3f ms (sampling %.3f ms); detect 64 images %.3f ms [checksum %.1f]",
                         size, best, bestSampling, bestDetect, checksum))
            if size == 32 { #expect(best < 50) }
        }
    }

    /// The 8×8 example grid of captioned scenes. It always runs (into a temporary file) and checks
    /// the grid it wrote; with TOYWORLD_EXAMPLES=path it writes there and prints the captions.
    @Test("example grid PNG")
    func exampleGrid() throws {
        let requested = ProcessInfo.processInfo.environment["TOYWORLD_EXAMPLES"]
        let path = requested ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("toy-examples-\(ProcessInfo.processInfo.processIdentifier).png").path
        defer { if requested == nil { try? FileManager.default.removeItem(atPath: path) } }
        let sampler = SceneSampler(size: 32)
        let captioner = Captioner()
        var tiles: [[UInt8]] = []
        for seed in 0..<64 {
            let scene = sampler.sample(seed: UInt64(seed))
            tiles.append(upscaleNearest(rgb: imageToRGB8(SceneRenderer().render(scene)), width: 32, height: 32, factor: 4))
            let caption = captioner.caption(for: scene, seed: UInt64(seed))
            #expect(caption.text.isEmpty == (caption.kind == .empty), "scene \(seed): \(caption.text)")
            if requested != nil { print("example \(seed): \(caption.text)") }
        }
        #expect(Set(tiles).count > 60, "seeds give different scenes")
        let grid = tileRGB(tiles, width: 128, height: 128, columns: 8, padding: 2)
        try writePNG(rgb: grid.rgb, width: grid.width, height: grid.height, to: path)
        let back = try readPNG(path: path)
        #expect(back.width == 8 * 128 + 9 * 2 && back.height == 8 * 128 + 9 * 2)
        #expect(back.rgb == grid.rgb)
        // The last tile sits at the bottom-right, after seven tiles and eight paddings in each direction.
        let origin = 2 + 7 * (128 + 2), row = 3 * (origin * back.width + origin)
        #expect(Array(back.rgb[row..<(row + 3 * 128)]) == Array(tiles[63][0..<(3 * 128)]))
    }
}
