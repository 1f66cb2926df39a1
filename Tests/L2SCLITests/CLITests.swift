import Foundation
import Imaging
import Testing
import Steering
import ToyWorld
import Tensors

/// End-to-end tests of the `l2s` binary: exit codes, output files, and one clear error for bad input.
@Suite("l2s command line", .serialized) struct CLITests {
    /// The built `l2s` next to the test bundle (`swift test` builds it because this target depends on it).
    static let binary: String = {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("l2s").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return dir.appendingPathComponent("l2s").path
    }()

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    static func run(_ args: [String], environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["L2S_THREADS"] = "1"
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// A directory holding an untrained embedded-model layout (config + weights), made once.
    static let tinyAssets: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-cli-assets-\(getpid())").path
        let model = try! ToyModel(config: .small, seed: 1)
        try! model.save(directory: dir + "/toy")
        return dir
    }()

    @Test func helpListsEverySubcommand() throws {
        let r = try Self.run(["--help"])
        #expect(r.status == 0)
        for sub in ["generate", "eval", "parse", "invert", "build-dataset", "train-base", "train-classifier", "bench"] {
            #expect(r.stdout.contains(sub), "--help does not mention \(sub)")
            let h = try Self.run([sub, "--help"])
            #expect(h.status == 0 && h.stdout.contains("USAGE"), "\(sub) --help failed")
        }
    }

    @Test func parsePrintsTheGraphAsJSON() throws {
        let r = try Self.run(["parse", "a photo of a dog right of a teddy bear"])
        #expect(r.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let triplets = json?["triplets"] as? [[String]]
        #expect(triplets?.first == ["dog", "to the right of", "teddy bear"])
    }

    @Test func badInputGivesOneClearErrorAndNonZeroExit() throws {
        let cases: [([String], String)] = [
            (["parse", ""], "empty"),
            (["parse", String(repeating: "a dog ", count: 2000)], "long"),
            (["generate", "--prompt", "a red circle", "--steps", "0"], "steps"),
            (["generate", "--prompt", "a red circle", "--assets", "/nonexistent"], "weights"),
            (["eval", "--shard", "3/2"], "shard"),
            (["bench", "engine", "--repeats", "0"], "repeats"),
            (["train-base", "--size", "40"], "size"),
            (["train-base", "--block-channels", "30,64,64"], "multiple of 16"),
            (["train-base", "--block-channels", "64,128"], "3 comma-separated widths"),
            (["train-base", "--steps", "10"], "--warmup must be in 0…10"),
            (["train-classifier", "--test", ""], "--test needs a shard directory"),   // said "no samples in --test " (no name)
            (["train-classifier", "--data", " "], "--data needs a shard directory"),
            (["train-base", "--widen"], "--widen widens the model of --init-from"),
            (["train-base", "--widen", "--init-from", "/nonexistent", "--block-channels", "64,128,128"], "leave out --block-channels"),   // was a precondition trap (default warmup 200)
            (["generate", "--prompt", "x", "--model", "/nonexistent/sd"], "not found"),
            (["eval", "--model", "/nonexistent/sd"], "embedded model only"),
            (["invert", "--image", "/nonexistent.png", "--prompt", "a red circle"], "cannot read"),
            (["invert", "--image", "/nonexistent.png"], "needs --prompt"),
            (["invert", "--from-step", "60", "--steps", "50"], "from-step"),
        ]
        for (args, fragment) in cases {
            let r = try Self.run(args)
            #expect(r.status != 0, "\(args) exited 0")
            #expect(r.stderr.lowercased().contains(fragment.lowercased()), "\(args): stderr was \(r.stderr)")
            #expect(!r.stderr.contains("Fatal error"), "\(args) crashed: \(r.stderr)")
            // Exactly one line (no usage block), as the README says; bad input points at the subcommand's help.
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
            if r.status == 64 { #expect(r.stderr.contains("(see 'l2s \(args[0])"), "\(args): \(r.stderr)") }
        }
    }

    /// Negative numbers reach the range checks (ArgumentParser read `-1` as a flag: "Missing value for
    /// '--steps <steps>'"), and step size has an upper bound (1e39 said "must be ≥ 0").
    @Test func negativeAndHugeNumbersGetTheValidatorsMessage() throws {
        let base = ["generate", "--assets", Self.tinyAssets, "--prompt", "a red circle to the left of a blue square"]
        let cases: [([String], String)] = [
            (["--steps", "-1"], "--steps must be in 1…1000"), (["--guidance", "-5"], "--guidance must be in 0…50"),
            (["--guidance", "-inf"], "--guidance must be in 0…50"), (["--threads", "-3"], "--threads must be in 1…256"),
            (["--upscale", "-1"], "--upscale must be in 1…64"), (["--iterations", "-1"], "--iterations must be in 0…100"),
            (["--step-size", "-1"], "--step-size must be in 0…10"), (["--step-size", "1e39"], "--step-size must be in 0…10"),
            (["--step-size", "1e30", "--update", "plain"], "--step-size must be in 0…100"),
            (["--steer-steps", "-5:3"], "--steer-steps must look like"), (["--seed", "-1"], "'-1' is invalid for '--seed"),
            (["--presence-weight", "-1"], "--presence-weight must be in 0…100"), (["--presence-weight", "nan"], "--presence-weight must be in 0…100"),
            (["--presence-floor", "2"], "--presence-floor must be in 0…1"),
            // The negative prompt had no bound at all (a 1 MB one was tokenised and written into the sidecar).
            (["--negative-prompt", String(repeating: "blur ", count: 300)], "--negative-prompt is 1500 characters long; the limit is 1000"),
            (["--negative-prompt", "blur\u{1B}[2J"], "--negative-prompt contains control characters"),
        ]
        for (extra, fragment) in cases {
            let r = try Self.run(base + extra)
            #expect(r.status == 64, "\(extra): \(r.status)")
            #expect(r.stderr.contains(fragment) && r.stderr.split(separator: "\n").count == 1, "\(extra): \(r.stderr)")
        }
        let eval = try Self.run(["eval", "--assets", Self.tinyAssets, "--seeds", "-2"])
        #expect(eval.status == 64 && eval.stderr.contains("--seeds must be in 1…10000") && eval.stderr.contains("see 'l2s eval"), "\(eval.stderr)")
    }

    /// Resuming a run with other UNet widths than it was started with: one line naming the flag, and the
    /// checkpoint is left as it was (was a bare state-dict error).
    @Test func resumingWithOtherWidthsSaysWhichFlag() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-widths-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        let common = ["train-base", "--run-dir", dir, "--steps", "1", "--warmup", "0", "--batch-size", "2", "--threads", "1",
                      "--export", dir + "/export"]
        let first = try Self.run(common + ["--block-channels", "16,32,32"])
        #expect(first.status == 0, "\(first.stderr)")
        let checkpoint = try Data(contentsOf: URL(fileURLWithPath: dir + "/checkpoint.safetensors"))
        var again = common
        again[again.firstIndex(of: "--steps")! + 1] = "2"
        let r = try Self.run(again)
        #expect(r.status != 0)
        #expect(r.stderr.contains("give the --block-channels and --size it was started with"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/checkpoint.safetensors")) == checkpoint)
    }

    /// `--widen`: training starts from --init-from's model made twice as wide (the export's config says
    /// so), and the same command resumes the widened run's checkpoint.
    @Test func widenTrainsTheWidenedModelAndResumes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-widen-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        var config = ToyModelConfig.small
        config.unet.block_out_channels = [16, 32, 32]
        try ToyModel(config: config, seed: 2).save(directory: dir + "/narrow")
        let command = ["train-base", "--init-from", dir + "/narrow", "--widen", "--run-dir", dir + "/run", "--steps", "2",
                       "--warmup", "0", "--batch-size", "2", "--threads", "1", "--export", dir + "/wide"]
        let first = try Self.run(command + ["--stop-at", "1"])
        #expect(first.status == 0, "\(first.stderr)")
        let exported = try ToyModelConfig.load(jsonFile: dir + "/wide/config.json")
        #expect(exported.unet.block_out_channels == [32, 64, 64])
        let second = try Self.run(command)
        #expect(second.status == 0 && second.stderr.contains("resuming at step 1"), "\(second.stderr)")
    }

    /// A directory where the sidecar goes: nothing is written (the PNG used to be left without a sidecar),
    /// one line; `--trace` into a missing folder creates it (was a raw NSError dump after the PNG was written).
    @Test func outputsAreWrittenTogetherOrNotAtAll() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-atomic-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/x.json", withIntermediateDirectories: true)
        let args = ["generate", "--assets", Self.tinyAssets, "--prompt", "a red circle", "--steps", "2", "--seed", "1"]
        let r = try Self.run(args + ["--out", dir + "/x.png"])
        #expect(r.status == 1 && r.stderr.hasSuffix("Error: cannot write \(dir)/x.json: it is a directory\n"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/x.png"))
        let t = try Self.run(args + ["--out", dir + "/y.png", "--trace", dir + "/new/t.json"])
        #expect(t.status == 0, "\(t.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/new/t.json") && FileManager.default.fileExists(atPath: dir + "/y.json"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["new", "x.json", "y.json", "y.png"])
    }

    /// On a full file system (a 64 kB tmpfs; needs root, as CI runs), overwriting an existing PNG fails
    /// with one line and leaves the old PNG and sidecar byte-for-byte (libpng used to delete the PNG).
    @Test(.enabled(if: getuid() == 0)) func aFullDiskKeepsThePreviousFiles() throws {
        let mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-full-\(getpid())").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mountPoint]
        try mount.run()
        mount.waitUntilExit()
        try #require(mount.terminationStatus == 0, "cannot mount a tmpfs")
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = [mountPoint]
            try? umount.run()
            umount.waitUntilExit()
        }
        let oldPNG = Data((0..<3000).map { UInt8(($0 * 7) % 256) }), oldJSON = Data(String(repeating: "OLD ", count: 1200).utf8)
        try oldPNG.write(to: URL(fileURLWithPath: mountPoint + "/old.png"))
        try oldJSON.write(to: URL(fileURLWithPath: mountPoint + "/old.json"))
        // Fill what is left.
        let filler = FileHandle(forWritingAtPath: mountPoint + "/filler") ?? {
            FileManager.default.createFile(atPath: mountPoint + "/filler", contents: nil)
            return FileHandle(forWritingAtPath: mountPoint + "/filler")!
        }()
        while (try? filler.write(contentsOf: Data(count: 4096))) != nil {}
        try? filler.close()
        let r = try Self.run(["generate", "--assets", Self.tinyAssets, "--prompt", "a red circle to the left of a blue square",
                              "--steps", "2", "--upscale", "8", "--out", mountPoint + "/old.png"])
        #expect(r.status == 1)
        #expect(r.stderr.hasSuffix("Error: cannot write \(mountPoint)/old.png: No space left on device\n"), "\(r.stderr)")
        #expect(FileManager.default.contents(atPath: mountPoint + "/old.png") == oldPNG)
        #expect(FileManager.default.contents(atPath: mountPoint + "/old.json") == oldJSON)
        #expect(try FileManager.default.contentsOfDirectory(atPath: mountPoint).sorted() == ["filler", "old.json", "old.png"])
    }

    /// A run whose image comes out constant (here: a UNet that predicts a huge constant noise, so every
    /// x̂₀ clips to black) exits 3 with one line and flags the sidecar, instead of exit 0 with a black PNG.
    @Test func aConstantImageIsReported() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-black-\(getpid())").path
        let model = try ToyModel(config: .small, seed: 1)
        model.unet.conv_out.weight.assign(Tensor(zeros: model.unet.conv_out.weight.shape))
        model.unet.conv_out.bias!.assign(Tensor(Array(repeating: 1000, count: 3)))
        try model.save(directory: dir + "/assets/toy")
        let r = try Self.run(["generate", "--assets", dir + "/assets", "--prompt", "a red circle", "--steps", "3", "--out", dir + "/b.png"])
        #expect(r.status == 3, "\(r.stderr)")
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("Error") }
        #expect(errors.count == 1 && errors[0].contains("the image is constant (every pixel is RGB 0,0,0)"), "\(r.stderr)")
        let sidecar = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/b.json"))) as? [String: Any]
        #expect((sidecar?["defect"] as? String)?.hasPrefix("constant") == true)
        #expect(try readPNG(path: dir + "/b.png").rgb.allSatisfy { $0 == 0 })
        // eval judges such images (presence 0) but says so: a warning line and "defect" in the record.
        try "a red circle above a blue square\n".write(toFile: dir + "/p.txt", atomically: true, encoding: .utf8)
        let e = try Self.run(["eval", "--assets", dir + "/assets", "--prompts", dir + "/p.txt", "--steps", "3", "--out", dir + "/r.jsonl"])
        #expect(e.status == 0 && e.stderr.contains("warning: prompt 1 seed 0 (base): the image is constant"), "\(e.stderr)")
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/r.jsonl"))) as? [String: Any]
        #expect((record?["defect"] as? String)?.hasPrefix("constant") == true)
    }

    @Test func generateWritesPNGAndSidecarWithTheSeed() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-gen-\(getpid())/img.png").path
        let r = try Self.run(["generate", "--assets", Self.tinyAssets, "--prompt", "a red circle to the left of a blue square",
                              "--seed", "7", "--steps", "3", "--out", out, "--steer", "--loss", "handcrafted", "--iterations", "1",
                              "--trace", out + ".trace.json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("seed 7"))
        let png = try readPNG(path: out)
        #expect(png.width == 32 && png.height == 32)
        let sidecar = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out.replacingOccurrences(of: ".png", with: ".json")))) as? [String: Any]
        #expect(sidecar?["seed"] as? Int == 7)
        #expect(sidecar?["prompt"] as? String == "a red circle to the left of a blue square")
        // One sidecar format for the CLI and the workbench: it decodes as `Sidecar`, with graph edge
        // indices and the settings applied from step 0.
        let car = try JSONDecoder().decode(Sidecar.self, from: Data(contentsOf: URL(fileURLWithPath: out.replacingOccurrences(of: ".png", with: ".json"))))
        #expect(car.seed == 7 && car.steps == 3 && car.steered && car.schedule.maxIterations == 1 && car.order == [0])
        #expect(car.relations.map(\.steerable) == [true] && car.applied?.map(\.step) == [0])
        #expect(car.perStep.count == 3 && car.perStep[0].relations.map(\.relation) == [0] && car.perStep[0].relations[0].iterations == 1)
        let trace = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + ".trace.json"))) as? [String: Any]
        let events = trace?["events"] as? [[String: Any]] ?? []
        #expect(events.contains { $0["event"] as? String == "iteration" })
        #expect(events.filter { $0["event"] as? String == "step" }.count == 3)
        // Same seed → same pixels.
        let again = out.replacingOccurrences(of: "img.png", with: "img2.png")
        _ = try Self.run(["generate", "--assets", Self.tinyAssets, "--prompt", "a red circle to the left of a blue square",
                          "--seed", "7", "--steps", "3", "--out", again, "--steer", "--loss", "handcrafted", "--iterations", "1"])
        #expect(try readPNG(path: again).rgb == png.rgb)
    }

    /// `l2s invert`: a PNG round trip under its prompt, and rendered scenes with the gate summary.
    @Test func invertReportsTheReconstructionPSNR() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-inv-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let img = dir + "/scene.png"
        let g = try Self.run(["generate", "--assets", Self.tinyAssets, "--prompt", "a red circle", "--steps", "4", "--out", img])
        #expect(g.status == 0, "stderr: \(g.stderr)")
        let r = try Self.run(["invert", "--assets", Self.tinyAssets, "--image", img, "--prompt", "a red circle", "--steps", "4",
                              "--fixed-point", "2", "--out", dir + "/recon.png"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("PSNR") && r.stdout.contains("1 image(s)"))
        #expect(try readPNG(path: dir + "/recon.png").width == 32)
        let s = try Self.run(["invert", "--assets", Self.tinyAssets, "--scenes", "2", "--steps", "4", "--from-step", "1"])
        #expect(s.status == 0 && s.stdout.contains("2 image(s)") && s.stdout.contains("/2 ≥ 20.0 dB"), "\(s.stdout) \(s.stderr)")
    }

    /// `train-classifier --model --images --annotations`: dual-inversion data from the user's PNGs on a
    /// diffusers folder (the tiny fixture), then training; bad records are one error naming file and line.
    @Test func trainClassifierFromAnnotatedImagesOnADiffusersFolder() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("DiffusionTests/Fixtures/tiny-sd").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-ann-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/img", withIntermediateDirectories: true)
        var lines: [String] = []
        for (i, rel) in ["left of", "on top of", "under", "to the right of", "left of", "below"].enumerated() {
            var rgb = [UInt8](repeating: 20, count: 24 * 20 * 3)  // 24×20: cropped to 20×20, resized to 16×16
            for y in 4..<10 { for x in (2 + 2 * i)..<(8 + 2 * i) { rgb[3 * (y * 24 + x)] = 230 } }
            try writePNG(rgb: rgb, width: 24, height: 20, to: dir + "/img/\(i).png")
            lines.append(#"{"image": "\#(i).png", "subject": "dog", "relation": "\#(rel)", "object": "cat"}"#)
        }
        try lines.joined(separator: "\n").write(toFile: dir + "/ann.jsonl", atomically: true, encoding: .utf8)
        let r = try Self.run(["train-classifier", "--model", folder, "--images", dir + "/img", "--annotations", dir + "/ann.jsonl",
                              "--data", dir + "/data", "--out", dir + "/c.safetensors", "--epochs", "1", "--fixed-point", "1",
                              "--d-model", "16", "--batch-size", "8"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/data/shard-0000.safetensors"))
        #expect(FileManager.default.fileExists(atPath: dir + "/c.safetensors"))
        #expect(r.stderr.contains("held-out"))
        // One bad record: the file and line are named, nothing is written.
        try (lines + [#"{"image": "0.png", "subject": "dog", "relation": "next to", "object": "cat"}"#]).joined(separator: "\n")
            .write(toFile: dir + "/bad.jsonl", atomically: true, encoding: .utf8)
        let bad = try Self.run(["build-dataset", "--model", folder, "--images", dir + "/img", "--annotations", dir + "/bad.jsonl", "--out", dir + "/bad"])
        #expect(bad.status != 0 && bad.stderr.contains("bad.jsonl:7") && bad.stderr.contains("next to"), "\(bad.stderr)")
        let missing = try Self.run(["build-dataset", "--images", dir + "/nope", "--annotations", dir + "/ann.jsonl", "--out", dir + "/m",
                                    "--assets", Self.tinyAssets])
        #expect(missing.status != 0 && missing.stderr.contains("ann.jsonl:1") && missing.stderr.contains("PNG"), "\(missing.stderr)")
    }

    /// A Stable Diffusion folder (the tiny random SD-1.x-shaped fixture of the parity tests).
    @Test func generateRunsOnADiffusersFolder() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("DiffusionTests/Fixtures/tiny-sd").path
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-sd-\(getpid()).png").path
        let r = try Self.run(["generate", "--model", folder, "--prompt", "a photo of a dog to the left of a cat", "--steps", "2",
                              "--size", "128", "--seed", "3", "--out", out])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let png = try readPNG(path: out)
        #expect(png.width == 128 && png.height == 128)
        let dpm = try Self.run(["generate", "--model", folder, "--prompt", "a photo of a dog to the left of a cat", "--steps", "3",
                                "--sampler", "dpm++2m", "--seed", "3", "--out", out])
        #expect(dpm.status == 0, "stderr: \(dpm.stderr)")
        let sidecar = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out.replacingOccurrences(of: ".png", with: ".json")))) as? [String: Any]
        #expect(sidecar?["sampler"] as? String == "dpm++2m")
    }

    @Test func evalShardsMergeToTheWholeGrid() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-eval-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "a red circle above a blue square\na green triangle to the right of a yellow star\na white cross below an orange ring\n"
            .write(toFile: dir + "/prompts.txt", atomically: true, encoding: .utf8)
        for i in 0..<2 {
            let r = try Self.run(["eval", "--assets", Self.tinyAssets, "--prompts", dir + "/prompts.txt", "--steps", "2",
                                  "--shard", "\(i)/2", "--out", dir + "/s\(i).jsonl"])
            #expect(r.status == 0, "stderr: \(r.stderr)")
        }
        let merged = try Self.run(["eval", "merge", dir + "/s0.jsonl", dir + "/s1.jsonl"])
        #expect(merged.status == 0)
        #expect(merged.stdout.contains("base") && merged.stdout.contains("     3  "), "\(merged.stdout)")
    }

    @Test func benchEngineRunsQuick() throws {
        let r = try Self.run(["bench", "engine", "--quick", "--repeats", "1", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let names = (json?["results"] as? [[String: Any]])?.compactMap { $0["name"] as? String } ?? []
        #expect(names.count == 7, "\(names)")
        #expect(names.contains { $0.hasPrefix("groupnorm32 fwd+bwd") } && names.contains { $0.hasPrefix("sdpa fwd+bwd") })
        #expect((json?["blas"] as? String).map { !$0.isEmpty && $0 != "unknown" } == true)
    }

    /// A malformed L2S_THREADS was ignored without a word (hostile-input finding): now one warning line.
    @Test func aBadThreadCountInTheEnvironmentIsSaid() throws {
        let r = try Self.run(["bench", "engine", "--quick", "--repeats", "1"], environment: ["L2S_THREADS": "abc"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("L2S_THREADS=abc is not a whole number"), "\(r.stderr)")
        let ok = try Self.run(["bench", "engine", "--quick", "--repeats", "1"], environment: ["L2S_THREADS": "2"])
        #expect(!ok.stderr.contains("L2S_THREADS"))
    }

    @Test func benchTrainTimesTheEmbeddedModelsStep() throws {
        let r = try Self.run(["bench", "train", "--batches", "2", "--repeats", "1", "--json", "--threads", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let results = json?["results"] as? [[String: Any]] ?? []
        #expect(results.count == 1 && results.first?["name"] as? String == "train step B2")
        #expect(((results.first?["seconds"] as? Double) ?? 0) > 0)
        let bad = try Self.run(["bench", "train", "--batches", "0"])
        #expect(bad.status != 0)
        // A config with an impossible value gets the model loader's one-line check, not a crash.
        let dir = NSTemporaryDirectory() + "l2s-bench-config-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let shipped = try String(contentsOfFile: repo + "/Assets/toy/config.json", encoding: .utf8)
        let broken = shipped.replacingOccurrences(of: "\"norm_num_groups\" : 16", with: "\"norm_num_groups\" : 0")
        #expect(broken != shipped)
        try broken.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        let hostile = try Self.run(["bench", "train", "--batches", "2", "--repeats", "1", "--config", dir + "/config.json"])
        #expect(hostile.status == 64, "\(hostile.stderr)")
        #expect(hostile.stderr.contains("norm_num_groups") && hostile.stderr.split(separator: "\n").count == 1, "\(hostile.stderr)")
    }

    /// CRLF and CR files are read line by line (a CRLF file was one line: `parse --file` printed 1 line
    /// for 2 prompts, `eval --prompts` scored 1 merged prompt with presence 0 and exit 0); invalid UTF-8
    /// names the line and byte.
    @Test func crlfFilesAreReadLineByLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-crlf-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, ending) in [("crlf", "\r\n"), ("cr", "\r")] {
            try Data("a dog left of a cat\(ending)a cat above a dog\(ending)".utf8).write(to: URL(fileURLWithPath: "\(dir)/\(name).txt"))
            let p = try Self.run(["parse", "--file", "\(dir)/\(name).txt"])
            #expect(p.status == 0 && p.stdout.split(separator: "\n").count == 2, "\(name): \(p.stdout)")
        }
        try Data("a red circle above a blue square\r\na green triangle to the right of a yellow star\r\n".utf8)
            .write(to: URL(fileURLWithPath: dir + "/prompts.txt"))
        let e = try Self.run(["eval", "--assets", Self.tinyAssets, "--prompts", dir + "/prompts.txt", "--steps", "2", "--out", dir + "/r.jsonl"])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(try String(contentsOfFile: dir + "/r.jsonl", encoding: .utf8).split(separator: "\n").count == 2)
        try Data(Array("a dog left of a cat\nab".utf8) + [0xFF] + Array("c\n".utf8)).write(to: URL(fileURLWithPath: dir + "/bad.txt"))
        let bad = try Self.run(["parse", "--file", dir + "/bad.txt"])
        #expect(bad.status == 64 && bad.stderr.contains("bad.txt:2: invalid UTF-8 at byte 3 of the line (byte offset 22 in the file)"), "\(bad.stderr)")
    }

    /// `--shard auto` under Slurm's and Kubernetes' variables; each shard file resumes after an
    /// interruption and a finished shard is left as it is; `eval merge` wants every shard exactly once.
    @Test func shardAutoResumesAndMergesExactlyOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-auto-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "a red circle above a blue square\na green triangle to the right of a yellow star\na white cross below an orange ring\n"
            .write(toFile: dir + "/prompts.txt", atomically: true, encoding: .utf8)
        let args = ["eval", "--assets", Self.tinyAssets, "--prompts", dir + "/prompts.txt", "--steps", "2", "--seeds", "2", "--shard", "auto"]
        let slurm = try Self.run(args + ["--out", dir + "/s0.jsonl"],
                                 environment: ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "1"])
        #expect(slurm.status == 0, "\(slurm.stderr)")
        let k8s = try Self.run(args + ["--out", dir + "/s1.jsonl"], environment: ["JOB_COMPLETION_INDEX": "1", "L2S_SHARD_COUNT": "2"])
        #expect(k8s.status == 0, "\(k8s.stderr)")
        let lines = { (f: String) in try String(contentsOfFile: dir + "/" + f, encoding: .utf8).split(separator: "\n").map(String.init) }
        #expect(try lines("s0.jsonl").count == 3 && lines("s1.jsonl").count == 3)  // 6 cases: indices 0,2,4 and 1,3,5
        let full = try Data(contentsOf: URL(fileURLWithPath: dir + "/s0.jsonl"))
        // Idempotent: a finished shard run again changes nothing.
        let again = try Self.run(args + ["--out", dir + "/s0.jsonl"], environment: ["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"])
        #expect(again.status == 0 && again.stderr.contains("resuming"), "\(again.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/s0.jsonl")) == full)
        // Resumable: cut the file inside its second record, run again: the same cases come back.
        let cut = try lines("s0.jsonl")[0] + "\n" + String(lines("s0.jsonl")[1].prefix(30))
        try cut.write(toFile: dir + "/s0.jsonl", atomically: true, encoding: .utf8)
        let resumed = try Self.run(args + ["--out", dir + "/s0.jsonl"], environment: ["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"])
        #expect(resumed.status == 0 && resumed.stderr.contains("1 of 3 records already there"), "\(resumed.stderr)")
        func keys(_ f: String) throws -> [String] {
            try lines(f).map { l in
                let o = try JSONSerialization.jsonObject(with: Data(l.utf8)) as! [String: Any]
                return "\(o["mode"]!)#\(o["index"]!)#\(o["found"]!)#\(o["satisfied"]!)"
            }
        }
        #expect(try keys("s0.jsonl") == (try String(decoding: full, as: UTF8.self).split(separator: "\n").map { l in
            let o = try JSONSerialization.jsonObject(with: Data(l.utf8)) as! [String: Any]
            return "\(o["mode"]!)#\(o["index"]!)#\(o["found"]!)#\(o["satisfied"]!)"
        }))
        // Another run's file is not resumed into.
        let other = try Self.run(["eval", "--assets", Self.tinyAssets, "--prompts", dir + "/prompts.txt", "--steps", "3", "--seeds", "2",
                                  "--shard", "0/2", "--out", dir + "/s0.jsonl"])
        #expect(other.status == 64 && other.stderr.contains("holds records of another run"), "\(other.stderr)")
        let merged = try Self.run(["eval", "merge", dir + "/s0.jsonl", dir + "/s1.jsonl", "--out", dir + "/all.jsonl"])
        #expect(merged.status == 0 && merged.stdout.contains("     6  "), "\(merged.stdout) \(merged.stderr)")
        #expect(try lines("all.jsonl").count == 6)
        let missing = try Self.run(["eval", "merge", dir + "/s0.jsonl"])
        #expect(missing.status == 1 && missing.stderr == "Error: missing shard(s) 1/2: no file holds them\n", "\(missing.stderr)")
        let twice = try Self.run(["eval", "merge", dir + "/s0.jsonl", dir + "/s1.jsonl", dir + "/s0.jsonl"])
        #expect(twice.status == 1 && twice.stderr.contains("shard 0/2 appears twice"), "\(twice.stderr)")
        let none = try Self.run(args)
        #expect(none.status == 64 && none.stderr.contains("none of SLURM_ARRAY_TASK_ID"), "\(none.stderr)")
    }

    /// The maps are recorded along the classifier's 50-step table whatever the model samples with:
    /// with the embedded model's default at 15 steps, step 20 was silently left out of every shard.
    /// A step outside the table is one clear error (it was dropped without a word).
    @Test func buildDatasetRecordsStepsOfTheClassifierTable() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-bdt-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/assets", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.tinyAssets + "/toy", toPath: dir + "/assets/toy")
        let config = dir + "/assets/toy/config.json"
        let text = try String(contentsOfFile: config, encoding: .utf8)
        let fifteen = text.replacingOccurrences(of: "\"default_steps\" : 50", with: "\"default_steps\" : 15")
        #expect(fifteen != text)
        try fifteen.write(toFile: config, atomically: true, encoding: .utf8)
        let args = ["build-dataset", "--assets", dir + "/assets", "--scenes", "1", "--shard-size", "1"]
        let built = try Self.run(args + ["--steps", "5,20", "--out", dir + "/ds"])
        #expect(built.status == 0, "\(built.stderr)")
        let shard = try RelationDataset.read(dir + "/ds/shard-0000.safetensors")
        #expect(Set(shard.steps) == [5, 20], "\(Set(shard.steps))")
        let outside = try Self.run(args + ["--steps", "5,50", "--out", dir + "/bad"])
        #expect(outside.status == 64 && outside.stderr.contains("each in 0..<50"), "\(outside.stderr)")
    }

    /// `eval --sampler` samples with the chosen solver, and the sampler is part of the run's identity:
    /// a DDIM file is not resumed by a DPM++ run (the records would mix solvers), while an explicit
    /// `--sampler ddim` resumes the files written before the option existed.
    @Test func evalSamplerIsPartOfTheRun() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-evs-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let args = ["eval", "--assets", Self.tinyAssets, "--limit", "1", "--steps", "2", "--out", dir + "/e.jsonl"]
        let ddim = try Self.run(args)
        #expect(ddim.status == 0, "\(ddim.stderr)")
        let again = try Self.run(args + ["--sampler", "ddim"])
        #expect(again.status == 0 && again.stderr.contains("resuming"), "\(again.stderr)")
        let dpm = try Self.run(args + ["--sampler", "dpm++2m"])
        #expect(dpm.status == 64 && dpm.stderr.contains("holds records of another run"), "\(dpm.stderr)")
        let fresh = try Self.run(["eval", "--assets", Self.tinyAssets, "--limit", "1", "--steps", "2", "--sampler", "euler", "--out", dir + "/u.jsonl"])
        #expect(fresh.status == 0, "\(fresh.stderr)")
        let bad = try Self.run(["eval", "--assets", Self.tinyAssets, "--sampler", "heun"])
        #expect(bad.status == 64 && bad.stderr.contains("--sampler"), "\(bad.stderr)")
    }

    /// build-dataset tasks split the shard files (i, i+n, …) and can share one --out.
    @Test func buildDatasetShardsSplitTheFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-bds-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        let args = ["build-dataset", "--assets", Self.tinyAssets, "--scenes", "4", "--shard-size", "1", "--steps", "5", "--out", dir]
        let one = try Self.run(args + ["--shard", "1/2"])
        #expect(one.status == 0, "\(one.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["shard-0001.safetensors", "shard-0003.safetensors"])
        let zero = try Self.run(args + ["--shard", "auto"], environment: ["JOB_COMPLETION_INDEX": "0", "L2S_SHARD_COUNT": "2"])
        #expect(zero.status == 0, "\(zero.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == 4)
    }

    /// `build-dataset --source sampling` runs the model's own trajectories and labels them with the
    /// detector (a random model draws nothing readable, so every image is dropped, with a count);
    /// a guidance out of range is one line; `train-classifier --test` scores the best epoch on
    /// another set, per step.
    @Test func samplingSourceAndTestSet() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-sampling-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        let base = ["build-dataset", "--assets", Self.tinyAssets, "--scenes", "3", "--shard-size", "3", "--steps", "5"]
        let sampled = try Self.run(base + ["--source", "sampling", "--out", dir + "/s"])
        #expect(sampled.status == 0, "\(sampled.stderr)")
        #expect(sampled.stderr.contains("the judge cannot read the sampled image") && sampled.stderr.contains("3 dropped"), "\(sampled.stderr)")
        // A shard whose every sample was dropped counts as done: a rerun does not sample it again (it did).
        let again = try Self.run(base + ["--source", "sampling", "--out", dir + "/s"])
        #expect(again.status == 0 && again.stderr.contains("0 samples this run, 0 dropped"), "\(again.stderr)")
        let badGuidance = try Self.run(base + ["--source", "sampling", "--guidance", "99", "--out", dir + "/g"])
        #expect(badGuidance.status == 64 && badGuidance.stderr.contains("--guidance must be in"), "\(badGuidance.stderr)")
        let ownImages = try Self.run(base + ["--source", "sampling", "--images", dir, "--annotations", dir + "/a.jsonl", "--out", dir + "/i"])
        #expect(ownImages.status == 64 && ownImages.stderr.contains("--source sampling labels images with the embedded model's detector"),
                "\(ownImages.stderr)")
        let fn = try Self.run(base + ["--scenes", "10", "--out", dir + "/fn"])
        #expect(fn.status == 0, "\(fn.stderr)")
        let trained = try Self.run(["train-classifier", "--data", dir + "/fn", "--test", dir + "/fn", "--epochs", "1", "--d-model", "16",
                                    "--out", dir + "/c.safetensors"])
        #expect(trained.status == 0, "\(trained.stderr)")
        #expect(trained.stdout.contains("test set \(dir)/fn (20 samples): held-out accuracy") && trained.stdout.contains("  step  5: "), "\(trained.stdout)")
        let missing = try Self.run(["train-classifier", "--data", dir + "/fn", "--test", dir + "/nope", "--epochs", "1", "--out", dir + "/c2.safetensors"])
        #expect(missing.status == 64 && missing.stderr.contains("cannot read \(dir)/nope"), "\(missing.stderr)")
    }
}
