import Foundation
import Imaging
import Formats
import Testing
import ToyWorld

/// Output groups (PNG + sidecar + trace) replace the previous files all together or not at all
/// (hostile-input-test §1: a failed overwrite deleted the old PNG; a failed sidecar write left it cut
/// at 4,096 bytes after the PNG had been replaced).
@Suite(.serialized) struct AtomicFilesTests {
    let dir: String
    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func bytes(_ name: String) -> Data? { FileManager.default.contents(atPath: dir + "/" + name) }
    func listing() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() }

    @Test func aFailedWriteLeavesThePreviousPairIntact() throws {
        let oldPNG = Data((0..<3000).map { UInt8($0 % 251) }), oldJSON = Data(String(repeating: "{\"old\": 1}\n", count: 500).utf8)
        try oldPNG.write(to: URL(fileURLWithPath: dir + "/a.png"))
        try oldJSON.write(to: URL(fileURLWithPath: dir + "/a.json"))
        let png = try encodePNG(rgb: [UInt8](repeating: 9, count: 4 * 4 * 3), width: 4, height: 4)
        // The sidecar (the second file) fails half-way, as on a full disk.
        outputWriteFailureInjection = { $0.hasSuffix("a.json") }
        defer { outputWriteFailureInjection = nil }
        #expect(throws: OutputWriteError(path: dir + "/a.json", reason: String(cString: strerror(ENOSPC)))) {
            try writeFilesAtomically([(dir + "/a.png", png), (dir + "/a.json", Data(String(repeating: "x", count: 9000).utf8))])
        }
        #expect(bytes("a.png") == oldPNG && bytes("a.json") == oldJSON)
        #expect(listing() == ["a.json", "a.png"], "stray files: \(listing())")
        // writePNG alone: the old file survives a failed overwrite (libpng used to truncate and remove it).
        outputWriteFailureInjection = { _ in true }
        #expect(throws: PNGError.self) { try writePNG(rgb: [UInt8](repeating: 1, count: 12), width: 2, height: 2, to: dir + "/a.png") }
        #expect(bytes("a.png") == oldPNG)
        outputWriteFailureInjection = nil
        // Success replaces both and leaves nothing else behind.
        try writeFilesAtomically([(dir + "/a.png", png), (dir + "/a.json", Data("{}".utf8))])
        #expect(bytes("a.png") == png && bytes("a.json") == Data("{}".utf8) && listing() == ["a.json", "a.png"])
        #expect(try readPNG(path: dir + "/a.png").rgb == [UInt8](repeating: 9, count: 48))
    }

    @Test func aDirectoryInTheWayWritesNothing() throws {
        let old = Data("old png".utf8)
        try old.write(to: URL(fileURLWithPath: dir + "/b.png"))
        try FileManager.default.createDirectory(atPath: dir + "/b.json", withIntermediateDirectories: false)
        #expect(throws: OutputWriteError(path: dir + "/b.json", reason: "it is a directory")) {
            try writeFilesAtomically([(dir + "/b.png", Data("new".utf8)), (dir + "/b.json", Data("{}".utf8))])
        }
        #expect(bytes("b.png") == old && listing() == ["b.json", "b.png"])
        // Missing folders: an error, unless asked to create them (as generate does for --out and --trace).
        #expect(throws: OutputWriteError.self) { try writeFilesAtomically([(dir + "/deep/er/t.json", Data("[]".utf8))]) }
        try writeFilesAtomically([(dir + "/deep/er/t.json", Data("[]".utf8))], createDirectories: true)
        #expect(bytes("deep/er/t.json") == Data("[]".utf8))
    }

    @Test func degenerateImagesAreNamed() {
        let black = [Float](repeating: -1, count: 3 * 4)
        #expect(imageDefect(values: black, rgb: imageToRGB8(black, width: 2, height: 2))?.hasPrefix("constant") == true)
        var nan = black
        nan[5] = .nan
        #expect(imageDefect(values: nan, rgb: imageToRGB8(nan, width: 2, height: 2)) == "non-finite (1 of 12 values are NaN or Inf)")
        var ok = black
        ok[0] = 0.5
        #expect(imageDefect(values: ok, rgb: imageToRGB8(ok, width: 2, height: 2)) == nil)
    }
}
