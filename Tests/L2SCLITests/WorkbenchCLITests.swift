import Foundation
import Imaging
import Testing
import ToyWorld

/// The command line around the workbench: `l2s --help` lists its options, the help texts say what
/// the checks accept, and the embedded model is found from any directory.
@Suite("l2s workbench command line", .serialized) struct WorkbenchCLITests {
    /// Runs the built `l2s` in `directory` with `L2S_ASSETS` removed; returns (status, stdout + stderr).
    static func run(_ args: [String], in directory: String = NSTemporaryDirectory(), binary: String = CLITests.binary) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment
        env["L2S_THREADS"] = "1"
        env["L2S_ASSETS"] = nil
        env["COLUMNS"] = "200"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Help text with its line wrapping undone.
    static func flat(_ text: String) -> String {
        text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    /// Defect 15: every option of the workbench (`l2s tui --help`) is named in `l2s --help`.
    @Test func rootHelpListsTheWorkbenchOptions() throws {
        let (s1, tui) = try Self.run(["tui", "--help"])
        let (s2, root) = try Self.run(["--help"])
        #expect(s1 == 0 && s2 == 0)
        let options = Set(try tui.matches(of: Regex("--[a-z][a-z0-9-]+")).map { String(tui[$0.range]) }).subtracting(["--help", "--version"])
        #expect(options.isSuperset(of: ["--demo", "--no-color", "--ascii", "--log", "--assets", "--model", "--upscale"]), "\(options)")
        for o in options.sorted() { #expect(root.contains(o), "`l2s --help` does not mention \(o)") }
    }

    /// Defect 17: `--size` help says what the check accepts; `--assets` help names $L2S_ASSETS.
    @Test func helpSaysWhatTheChecksAccept() throws {
        let (_, help) = try Self.run(["generate", "--help"])
        let text = Self.flat(help)
        #expect(text.contains("a multiple of 64 in 64…1024"), "\(text)")
        #expect(text.contains("$L2S_ASSETS"))
        let (status, out) = try Self.run(["generate", "--prompt", "a red circle", "--size", "300"])
        #expect(status != 0 && out.contains("multiple of 64 in 64…1024"))
    }

    /// Defect 18: the embedded model is found from another directory, through the binary's real
    /// path (a symlink on PATH included), and from an install prefix (PREFIX/bin/l2s with
    /// PREFIX/share/l2s/Assets).
    @Test func theEmbeddedModelIsFoundFromAnyDirectory() throws {
        let checkoutAssets = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Assets").path
        try #require(FileManager.default.fileExists(atPath: checkoutAssets + "/toy/config.json"), "no Assets/toy in the checkout")
        let tmp = NSTemporaryDirectory() + "l2s-anywhere-\(getpid())"
        try? FileManager.default.removeItem(atPath: tmp)
        try FileManager.default.createDirectory(atPath: tmp + "/bin", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let args = ["generate", "--prompt", "a red circle", "--steps", "1", "--seed", "1", "--out", tmp + "/a.png"]
        let (s1, o1) = try Self.run(args, in: "/")
        #expect(s1 == 0, "from /: \(o1)")
        // A symlink elsewhere (as on PATH) still leads to the checkout's Assets.
        try FileManager.default.createSymbolicLink(atPath: tmp + "/bin/l2s-link", withDestinationPath: CLITests.binary)
        let (s2, o2) = try Self.run(args, in: tmp, binary: tmp + "/bin/l2s-link")
        #expect(s2 == 0, "through a symlink: \(o2)")
        // An installed copy: PREFIX/bin/l2s finds PREFIX/share/l2s/Assets.
        let prefix = tmp + "/prefix"
        try FileManager.default.createDirectory(atPath: prefix + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: prefix + "/share/l2s", withIntermediateDirectories: true)
        // The binary is copied by a child `cp`, not in this process: a writable descriptor held here is
        // inherited by any subprocess another test forks meanwhile, and exec of the copy then fails
        // with ETXTBSY ("Text file busy", seen once in CI).
        let cp = Process()
        cp.executableURL = URL(fileURLWithPath: "/bin/cp")
        cp.arguments = [URL(fileURLWithPath: CLITests.binary).resolvingSymlinksInPath().path, prefix + "/bin/l2s"]
        try cp.run()
        cp.waitUntilExit()
        try #require(cp.terminationStatus == 0, "cp of the binary failed")
        try FileManager.default.copyItem(atPath: checkoutAssets, toPath: prefix + "/share/l2s/Assets")
        let (s3, o3) = try Self.run(args, in: "/", binary: prefix + "/bin/l2s")
        #expect(s3 == 0, "installed: \(o3)")
        // With the prefix's Assets gone, the installed copy says where it looked (no silent success).
        try FileManager.default.removeItem(atPath: prefix + "/share/l2s/Assets")
        let (s4, o4) = try Self.run(args, in: "/", binary: prefix + "/bin/l2s")
        #expect(s4 != 0 && o4.contains("weights were not found"), "\(o4)")
    }

    /// Without --steer-steps the steered range is the first half of the run's steps (it was 0:25
    /// whatever the step count, so a 15-step run steered every step); --steer-steps still wins.
    @Test func defaultSteeredRangeIsTheFirstHalfOfTheSteps() throws {
        let dir = NSTemporaryDirectory() + "l2s-range-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (steps, flags, end) in [(5, [String](), 3), (6, [], 3), (5, ["--steer-steps", "1:4"], 4)] {
            let trace = dir + "/r\(steps)-\(end).trace.json"
            let (status, out) = try Self.run(["generate", "--assets", CLITests.tinyAssets, "--prompt", "a red circle to the left of a blue square",
                                              "--seed", "3", "--steps", "\(steps)", "--steer", "--loss", "handcrafted", "--iterations", "1",
                                              "--trace", trace, "--out", dir + "/r.png"] + flags)
            #expect(status == 0, "\(out)")
            let top = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as? [String: Any])
            let schedule = top["schedule"] as? [String: Any]
            #expect(schedule?["endStep"] as? Int == end, "\(steps) steps \(flags): \(String(describing: schedule))")
        }
    }

    /// `generate --trace` records what `l2s replay` needs (x̂₀ per step with the detector's reading of it,
    /// maps, the final image) and `--maps` writes the subject/object map strip over the steered steps.
    @Test func generateRecordsAReplayableTraceAndTheMapStrip() throws {
        let dir = NSTemporaryDirectory() + "l2s-trace-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, out) = try Self.run(["generate", "--assets", CLITests.tinyAssets, "--prompt", "a red circle to the left of a blue square",
                                          "--seed", "3", "--steps", "4", "--steer", "--loss", "handcrafted", "--iterations", "1",
                                          "--steer-steps", "0:3", "--trace", dir + "/g.trace.json", "--maps", "--out", dir + "/g.png"])
        #expect(status == 0, "\(out)")
        let top = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/g.trace.json"))) as? [String: Any])
        #expect(top["steps"] as? Int == 4 && top["steered"] as? Bool == true && top["schedule"] != nil)
        let events = top["events"] as? [[String: Any]] ?? []
        let steps = events.filter { $0["event"] as? String == "step" }
        #expect(steps.count == 4)
        for e in steps {
            let p = e["preview"] as? [String: Any]
            let w = p?["width"] as? Int ?? 0, h = p?["height"] as? Int ?? 0
            #expect(w == 32 && h == 32 && Data(base64Encoded: p?["rgb"] as? String ?? "")?.count == 32 * 32 * 3)
            // The embedded model's steps carry what the detector reads on x̂₀ (in the format replay reads).
            let d = try #require(e["detector"] as? [String: Any], "step \(e["step"] ?? "?") has no detector reading")
            let reading = try JSONDecoder().decode(DetectorReading.self, from: JSONSerialization.data(withJSONObject: d))
            #expect(reading.objects.map(\.name) == ["red circle", "blue square"])
            #expect(reading.relations.count == 1 && reading.relations[0].relation == .leftOf && reading.relations[0].edge == 0)
            let objects = d["objects"] as? [[String: Any]] ?? []
            #expect(objects.allSatisfy { $0["count"] is Int }, "counts are plain numbers in the JSON")
        }
        #expect(events.contains { $0["event"] as? String == "final" && $0["image"] != nil })
        #expect(events.filter { $0["event"] as? String == "iteration" }.allSatisfy { $0["edge"] as? Int == 0 && ($0["subject_map"] as? [Any])?.count == 256 })
        // Each iteration carries the subject's and object's attention peaks (the presence signal).
        #expect(events.filter { $0["event"] as? String == "iteration" }.allSatisfy { ($0["peaks"] as? [Double])?.count == 2 })
        // The presence-only loss runs without a classifier and spends every iteration below an unreachable floor.
        let (s2, o2) = try Self.run(["generate", "--assets", CLITests.tinyAssets, "--prompt", "a red circle to the left of a blue square",
                                     "--seed", "3", "--steps", "3", "--steer", "--loss", "presence", "--presence-floor", "1", "--iterations", "2",
                                     "--steer-steps", "0:2", "--trace", dir + "/p.trace.json", "--out", dir + "/p.png"])
        #expect(s2 == 0, "\(o2)")
        let p = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/p.trace.json"))) as? [String: Any])
        #expect(((p["events"] as? [[String: Any]]) ?? []).filter { $0["event"] as? String == "iteration" }.count == 4)
        let strip = try readPNG(path: dir + "/g-maps-rel1.png")
        #expect(strip.width == 3 * 64 + 2 * 2 && strip.height == 2 * 64 + 2, "three steered steps, subject above object")
    }
}
