import Foundation
import Imaging
import Testing
import ToyWorld

@Suite("PNG I/O and image helpers")
struct PNGTests {
    func temporaryPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("toyworld-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    @Test("write then read gives the same pixels")
    func roundTrip() throws {
        let width = 7, height = 5
        let rgb = (0..<(width * height * 3)).map { UInt8(($0 * 37 + 11) % 256) }
        let path = temporaryPath("round-trip.png")
        try writePNG(rgb: rgb, width: width, height: height, to: path)
        let back = try readPNG(path: path)
        #expect(back.width == width && back.height == height)
        #expect(back.rgb == rgb)
        // A rendered scene, enlarged.
        let scene = SceneSampler(size: 32).sample(seed: 3)
        let image = upscaleNearest(rgb: imageToRGB8(SceneRenderer().render(scene)), width: 32, height: 32, factor: 3)
        try writePNG(rgb: image, width: 96, height: 96, to: path)
        #expect(try readPNG(path: path).rgb == image)
        try? FileManager.default.removeItem(atPath: path)
    }

    @Test("clear errors: unwritable path, missing file, not a PNG, wrong buffer size")
    func errors() throws {
        // Missing folders are created (even as root), so the unwritable path runs through a plain file.
        let blocker = temporaryPath("not-a-folder")
        try Data([1]).write(to: URL(fileURLWithPath: blocker))
        defer { try? FileManager.default.removeItem(atPath: blocker) }
        let unwritable = blocker + "/nonexistent-\(getpid())/x.png"
        #expect(throws: PNGError.self) {
            try writePNG(rgb: [0, 0, 0], width: 1, height: 1, to: unwritable)
        }
        do {
            try writePNG(rgb: [0, 0, 0], width: 1, height: 1, to: unwritable)
        } catch let error as PNGError {
            guard case .cannotWrite = error else { Issue.record("wrong error \(error)"); return }
            #expect(error.description.contains("nonexistent-"))
        }
        #expect(throws: PNGError.invalidSize(width: 2, height: 2, bytes: 3)) {
            try writePNG(rgb: [1, 2, 3], width: 2, height: 2, to: temporaryPath("bad.png"))
        }
        #expect(throws: PNGError.cannotOpen(path: "/nonexistent-\(getpid()).png")) {
            _ = try readPNG(path: "/nonexistent-\(getpid()).png")
        }
        let text = temporaryPath("not-a-png.png")
        try "hello, not a png".write(toFile: text, atomically: true, encoding: .utf8)
        do {
            _ = try readPNG(path: text)
            Issue.record("reading a text file should fail")
        } catch let error as PNGError {
            guard case .notPNG = error else { Issue.record("wrong error \(error)"); return }
        }
        try? FileManager.default.removeItem(atPath: text)
    }

    @Test("imageToRGB8 maps [-1, 1] to 0…255 (clamped, rounded, HWC); upscale and tile")
    func helpers() {
        // 1×2 image: channels planar.
        let chw: [Float] = [-1, 1, /* G */ 0, 2, /* B */ -3, 0.5]
        #expect(imageToRGB8(chw, width: 2, height: 1) == [0, 128, 0, 255, 255, 191])
        let rgb: [UInt8] = [1, 2, 3, 4, 5, 6]   // 2×1
        #expect(upscaleNearest(rgb: rgb, width: 2, height: 1, factor: 2) ==
                [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6])
        let grid = tileRGB([rgb, rgb, rgb], width: 2, height: 1, columns: 2, padding: 1)
        #expect(grid.width == 7 && grid.height == 5 && grid.rgb.count == 7 * 5 * 3)
        #expect(Array(grid.rgb[(3 * (1 * 7 + 1))..<(3 * (1 * 7 + 3))]) == rgb)
    }
}
