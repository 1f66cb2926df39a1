import Foundation
import Testing
import Diffusion
import Tensors
import ToyWorld

// A bounded mutation fuzzer for model configs and safetensors headers. Each input is a seed file with
// 1–3 random mutations (a value set to an edge case, a key or list element removed or repeated, bytes
// flipped, …); it must end in a one-line error or a model that builds within the memory cap and runs a
// forward pass. A crash (trap, signal) ends the test process, which is the finding. `swift test` runs a
// short pass; the long run is:
//   L2S_FUZZ_ITERATIONS=1000000 L2S_FUZZ_BUILD_EVERY=100 nice -n 19 swift test --filter FuzzTests
// (L2S_FUZZ_SEED picks another sequence; L2S_FUZZ_BUILD_EVERY=k builds and runs only every k-th config
// that passes validation.) Counts are printed at the end of each test.

enum Fuzz {
    static let iterations = Int(ProcessInfo.processInfo.environment["L2S_FUZZ_ITERATIONS"] ?? "") ?? 300
    /// Build and run every k-th accepted config (1: all; the long run uses more to stay within hours).
    static let buildEvery = max(Int(ProcessInfo.processInfo.environment["L2S_FUZZ_BUILD_EVERY"] ?? "") ?? 1, 1)
    static let seed = UInt64(ProcessInfo.processInfo.environment["L2S_FUZZ_SEED"] ?? "") ?? 14
    /// Models whose estimate exceeds this are refused by the memory check instead of built.
    static let memoryCap: Double = 256 * 1_048_576
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static var scratch: String {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        return base + "/l2s-fuzz-\(getpid())-\(UUID().uuidString)"
    }

    static let edgeInts: [Int] = [0, 1, 2, 3, -1, -8, 7, 33, 64, 100_000_000, 1_000_000_000, 1 << 31, 1 << 62, Int.max, Int.min]
    static let edgeValues: [Any] = [0.5, -1e-9, 1e300, -1e300, "", "x", NSNull(), true, false, [Any](), [0], [-1, 2], ["a"], [String: Any]()]

    enum Step { case key(String), index(Int) }

    /// The process's resident set (VmRSS) in bytes.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") else { return 0 }
        return kb * 1024
    }

    /// Every path to a value in a JSON tree.
    static func paths(_ node: Any, _ prefix: [Step] = []) -> [[Step]] {
        var out: [[Step]] = prefix.isEmpty ? [] : [prefix]
        if let d = node as? [String: Any] { for k in d.keys.sorted() { out += paths(d[k]!, prefix + [.key(k)]) } }  // sorted: reproducible
        if let a = node as? [Any] { for (i, v) in a.enumerated() { out += paths(v, prefix + [.index(i)]) } }
        return out
    }

    /// The tree with the value at `path` replaced by `f(old)` (nil removes it).
    static func update(_ node: Any, _ path: ArraySlice<Step>, _ f: (Any) -> Any?) -> Any? {
        guard let first = path.first else { return f(node) }
        switch first {
        case .key(let k):
            guard var d = node as? [String: Any], let child = d[k] else { return node }
            d[k] = update(child, path.dropFirst(), f)
            return d
        case .index(let i):
            guard var a = node as? [Any], i < a.count else { return node }
            if let v = update(a[i], path.dropFirst(), f) { a[i] = v } else { a.remove(at: i) }
            return a
        }
    }

    static func mutateJSON(_ tree: Any, rng: inout RNG) -> Any {
        var t = tree
        for _ in 0..<(1 + rng.int(below: 3)) {
            let all = paths(t)
            guard !all.isEmpty else { break }
            let path = all[rng.int(below: all.count)]
            let op = rng.int(below: 10)
            t = update(t, path[...]) { old in
                switch op {
                case 0...4: return edgeInts[rng.int(below: edgeInts.count)]
                case 5: return rng.int(below: 2000) - 1000
                case 6: return edgeValues[rng.int(below: edgeValues.count)]
                case 7: return nil
                case 8: if let a = old as? [Any], let x = a.first { return a + [x] } else { return (old as? Int).map { $0 &* 2 } ?? old }
                default: if let n = old as? Int { return n &+ (rng.int(below: 5) - 2) } else { return old }
                }
            } ?? t
        }
        return t
    }

    static func json(_ path: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) }
    static func data(_ tree: Any) -> Data { (try? JSONSerialization.data(withJSONObject: tree, options: [.fragmentsAllowed, .sortedKeys])) ?? Data("null".utf8) }

    /// Every error the program prints must be one line.
    static func checkMessage(_ error: Error) {
        let text = "\(error)"
        #expect(!text.isEmpty && !text.contains("\n") || text.contains("DecodingError") || text.contains("keyNotFound"),
                "not one line: \(text.prefix(300))")
    }
}

@Suite(.serialized) struct FuzzTests {
    /// Stable Diffusion folders: one of the four configs (or the tokenizer config) of tiny-sd / tiny-sd2
    /// mutated; the folder is read, its memory estimated, the model loaded (weights are the fixture's,
    /// linked) and sampled for one step at the config's size.
    @Test func stableDiffusionConfigs() throws {
        let dir = Fuzz.scratch
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        let sources = ["tiny-sd", "tiny-sd2"].map { Fuzz.root.appendingPathComponent("Tests/DiffusionTests/Fixtures/\($0)").path }
        let files = ["unet/config.json", "text_encoder/config.json", "vae/config.json", "scheduler/scheduler_config.json",
                     "tokenizer/tokenizer_config.json", "model_index.json"]
        // A working copy per source: configs copied (they are rewritten), everything else linked.
        var trees: [[String: Any]] = []
        for (n, src) in sources.enumerated() {
            let copy = dir + "/\(n)"
            for sub in ["unet", "text_encoder", "vae", "scheduler", "tokenizer"] {
                try fm.createDirectory(atPath: copy + "/" + sub, withIntermediateDirectories: true)
                for f in try fm.contentsOfDirectory(atPath: src + "/" + sub) where !files.contains(sub + "/" + f) {
                    try fm.createSymbolicLink(atPath: "\(copy)/\(sub)/\(f)", withDestinationPath: "\(src)/\(sub)/\(f)")
                }
            }
            var t: [String: Any] = [:]
            for f in files { t[f] = try Fuzz.json(src + "/" + f) }
            trees.append(t)
        }
        var rng = RNG(seed: Fuzz.seed)
        var outcome: [String: Int] = [:]
        var accepted = 0
        // Only the file mutated last time (restored) and this time's target are rewritten.
        var dirty: [[String]] = sources.map { _ in files }
        for _ in 0..<Fuzz.iterations {
            let n = rng.int(below: sources.count), copy = dir + "/\(n)"
            let target = files[rng.int(below: rng.int(below: 4) == 0 ? files.count : 4)]
            for f in Set(dirty[n] + [target]) {
                let tree = f == target ? Fuzz.mutateJSON(trees[n][f]!, rng: &rng) : trees[n][f]!
                try Fuzz.data(tree).write(to: URL(fileURLWithPath: copy + "/" + f))
            }
            dirty[n] = [target]
            do {
                let folder = try ModelFolder(path: copy)
                try folder.memoryEstimate().check(model: "fuzz", limit: Fuzz.memoryCap)
                accepted += 1
                guard accepted % Fuzz.buildEvery == 0 else { outcome["accepted, not built", default: 0] += 1; continue }
                let model = try StableDiffusionModel(path: copy, memoryLimit: Fuzz.memoryCap)
                _ = try Sampler(model: model).run(SamplerSettings(prompt: "a dog left of a cat", seed: 1, steps: 1, guidanceScale: 2))
                outcome["sampled", default: 0] += 1
            } catch {
                Fuzz.checkMessage(error)
                let kind = "\(type(of: error))"
                outcome["rejected: " + kind, default: 0] += 1
            }
        }
        print("fuzz SD configs: \(Fuzz.iterations) inputs, seed \(Fuzz.seed): \(outcome.sorted { $0.key < $1.key })")
        #expect(outcome["sampled", default: 0] > 0 && outcome.values.reduce(0, +) == Fuzz.iterations)
    }

    /// The embedded model's config.json mutated; validated, memory-checked, built and run (text encoder
    /// and one guided UNet pass) with random weights.
    @Test func toyConfigs() throws {
        let seedTree = try Fuzz.json(Fuzz.root.appendingPathComponent("Assets/toy/config.json").path)
        var rng = RNG(seed: Fuzz.seed &+ 1)
        var outcome: [String: Int] = [:]
        var accepted = 0
        // RSS growth per built model against its estimate: the largest ratio (reported) and the one
        // furthest over the allowance (checked).
        struct Reading {
            let grew: Double, estimate: Double, config: String
            var ratio: Double { grew / estimate }
            /// Bytes over 1.5 × the estimate (random initialisation's temporaries, the allocator's
            /// rounding) plus 16 MB of the harness's own allocations.
            var overAllowance: Double { grew - (1.5 * estimate + 16e6) }
        }
        var largestRatio: Reading?, furthestOver: Reading?
        for _ in 0..<Fuzz.iterations {
            let bytes = Fuzz.data(Fuzz.mutateJSON(seedTree, rng: &rng))
            do {
                let config = try JSONDecoder().decode(ToyModelConfig.self, from: bytes)
                try config.validate()
                try config.memoryEstimate.check(model: "fuzz", limit: Fuzz.memoryCap)
                accepted += 1
                guard accepted % Fuzz.buildEvery == 0 else { outcome["accepted, not built", default: 0] += 1; continue }
                // RSS growth of building the model and one guided pass, against the estimate: the
                // engine's idle buffers are drained first, so earlier models do not count.
                MemoryPool.drain()
                let before = Fuzz.residentBytes()
                do {
                    let model = try ToyModel(config: config)
                    let context = model.encode(["a red circle to the left of a blue square", ""])
                    var r = RNG(seed: 3)
                    let x = Tensor.randn([2] + model.latentShape, rng: &r)
                    _ = model.unet(x, timesteps: [500], context: context)
                    let reading = Reading(grew: Double(Fuzz.residentBytes() - before), estimate: config.memoryEstimate.totalBytes,
                                          config: "image_size \(config.image_size), channels \(config.unet.block_out_channels), layers \(config.unet.layers_per_block), text layers \(config.text_encoder.num_hidden_layers) × \(config.text_encoder.hidden_size)/\(config.text_encoder.intermediate_size), vocab \(config.text_encoder.vocab_size)")
                    if reading.ratio > largestRatio?.ratio ?? -.infinity { largestRatio = reading }
                    if reading.overAllowance > furthestOver?.overAllowance ?? -.infinity { furthestOver = reading }
                }
                outcome["ran", default: 0] += 1
            } catch is DecodingError {
                outcome["rejected: decoding", default: 0] += 1
            } catch {
                Fuzz.checkMessage(error)
                outcome["rejected: " + "\(type(of: error))", default: 0] += 1
            }
        }
        print("fuzz toy config: \(Fuzz.iterations) inputs, seed \(Fuzz.seed): \(outcome.sorted { $0.key < $1.key })")
        #expect(outcome["ran", default: 0] > 0)
        if let r = largestRatio {
            print(String(format: "fuzz toy config: largest RSS growth ÷ estimate %.2f (grew %.1f MB, estimate %.1f MB; %@)",
                         r.ratio, r.grew / 1e6, r.estimate / 1e6, r.config))
        }
        // Opt-in (RSS is per process; other suites running beside this one move it): the estimate must
        // bound what every built model takes, within the allowance.
        if ProcessInfo.processInfo.environment["L2S_FUZZ_RSS_CHECK"] == "1", let r = furthestOver {
            #expect(r.overAllowance <= 0, "a model took \(r.grew / 1e6) MB, estimated \(r.estimate / 1e6) MB: \(r.config)")
        }
    }

    /// Safetensors files: a small file's header mutated as JSON (shapes, offsets, dtypes, metadata) or as
    /// bytes (flips, cuts, the length field); opened and every tensor read.
    @Test func safetensorsHeaders() throws {
        let dir = Fuzz.scratch
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var r = RNG(seed: 9)
        let original = dir + "/seed.safetensors"
        try writeSafetensors([("a.weight", Tensor.randn([4, 3], rng: &r)), ("a.bias", Tensor.randn([4], rng: &r)),
                              ("b", Tensor.randn([2, 2, 2], rng: &r)), ("scalar", Tensor([1.5], shape: []))],
                             to: original, dtype: .f16, dtypes: ["b": .f32], metadata: ["format": "pt", "note": "fuzz"])
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: original)))
        let headerLength = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)]))
        let body = Array(bytes[(8 + headerLength)...])
        var rng = RNG(seed: Fuzz.seed &+ 2)
        var outcome: [String: Int] = [:]
        let path = dir + "/m.safetensors"
        for _ in 0..<Fuzz.iterations {
            var file: [UInt8]
            if rng.int(below: 2) == 0 {
                var h = [UInt8](Fuzz.data(Fuzz.mutateJSON(header, rng: &rng)))
                h += [UInt8](repeating: 0x20, count: (8 - h.count % 8) % 8)
                file = withUnsafeBytes(of: UInt64(h.count).littleEndian, Array.init) + h + body
            } else {
                file = bytes
                for _ in 0..<(1 + rng.int(below: 3)) {
                    switch rng.int(below: 4) {
                    case 0: if !file.isEmpty { file[rng.int(below: file.count)] = UInt8(truncatingIfNeeded: rng.next()) }
                    case 1: file = Array(file.prefix(rng.int(below: file.count + 1)))
                    case 2: if file.count >= 8 { file[rng.int(below: 8)] = UInt8(truncatingIfNeeded: rng.next()) }
                    default:
                        let at = 8 + rng.int(below: max(headerLength, 1))
                        if at < file.count { file.insert(contentsOf: Array("\"x\"".utf8), at: at) }
                    }
                }
            }
            try Data(file).write(to: URL(fileURLWithPath: path))
            do {
                let st = try SafetensorsFile(path: path)
                for name in st.names { _ = try st.tensor(name) }
                outcome["read", default: 0] += 1
            } catch let e as SafetensorsError {
                Fuzz.checkMessage(e)
                outcome["rejected", default: 0] += 1
            }
        }
        print("fuzz safetensors headers: \(Fuzz.iterations) inputs, seed \(Fuzz.seed): \(outcome.sorted { $0.key < $1.key })")
        #expect(outcome["read", default: 0] > 0 && outcome["rejected", default: 0] > 0)
    }
}
