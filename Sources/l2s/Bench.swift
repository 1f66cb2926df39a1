import ArgumentParser
import Foundation
import Tensors
import Diffusion
import ToyWorld

/// `l2s bench`: speed measurements, reported as rates and ratios measured in one run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (GFLOP/s and ratios measured in one run; never timed assertions).",
        subcommands: [BenchEngine.self, BenchUNet.self, BenchTrain.self])
}

/// One measured op: name, FLOPs per call and the best-of-N wall time.
struct BenchResult: Codable {
    let name: String
    let flops: Double
    let seconds: Double
    var gflops: Double { flops / seconds / 1e9 }
}

/// Times `body` after a warm-up: the median of `repeats` runs (each long enough to be measurable).
func measure(repeats: Int, _ body: () -> Void) -> Double {
    body()
    var times: [Double] = []
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return times.sorted()[times.count / 2]
}

/// `l2s bench engine`: the tensor engine's kernels on the shapes the UNet uses.
struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "GFLOP/s of sgemm, conv2d 3×3 (forward, forward+backward), attention and group norm.",
        discussion: "Scripts/bench_vs_torch.py runs the same ops in PyTorch CPU (same threads) and prints our time ÷ PyTorch's.")

    @OptionGroup var common: CommonOptions
    @Option(parsing: .unconditional, help: "Timed repetitions per op (median reported).") var repeats: Int = 5
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Flag(help: "Small shapes (a smoke run for tests).") var quick = false

    func validate() throws {
        guard repeats >= 1 && repeats <= 1000 else { throw ValidationError("--repeats must be in 1…1000") }
    }

    func run() throws {
        try common.apply()
        let results = runEngineBenchmarks(repeats: repeats, quick: quick)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let payload = EngineReport(threads: Threads.count, results: results)
            print(String(data: try enc.encode(payload), encoding: .utf8)!)
            return
        }
        let sgemm = results.first { $0.name.hasPrefix("sgemm") }?.gflops ?? 1
        print("engine benchmark, \(Threads.count) thread(s), median of \(repeats), OpenBLAS kernels \(blasCoreName), element-wise kernels \(elementwiseKernelISA), convolutions \(convolutionBackend)")
        print("op".padding(toLength: 36, withPad: " ", startingAt: 0) + "      ms   GFLOP/s   ÷ sgemm")
        for r in results {
            let name = r.name.padding(toLength: 36, withPad: " ", startingAt: 0)
            print(name + String(format: "%8.2f  %8.1f   %6.2f", r.seconds * 1e3, r.gflops, r.gflops / sgemm))
        }
    }
}

/// `l2s bench unet`: seconds per denoising step of a Stable Diffusion UNet (CFG: batch 2) at given sizes.
struct BenchUNet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unet",
        abstract: "Seconds per UNet step with CFG (batch 2) of a diffusers folder at 256/512 px.",
        discussion: "Scripts/bench_sd_unet.py times diffusers on the same folder and threads in the same run and prints our time ÷ PyTorch's.")

    @OptionGroup var common: CommonOptions
    @Option(help: "The diffusers folder.") var model: String
    @Option(help: "Image sizes, comma-separated.") var sizes = "256,512"
    @Option(parsing: .unconditional, help: "Timed repetitions per size (median reported).") var repeats: Int = 3
    @Flag(help: "Load the folder's .fp16.safetensors weights (computed in fp32).") var fp16 = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try common.apply()
        let list = sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.allSatisfy({ $0 >= 64 && $0 % 64 == 0 && $0 <= 1024 }) else {
            throw ValidationError("--sizes must be multiples of 64 in 64…1024, e.g. 256,512")
        }
        guard repeats >= 1 && repeats <= 100 else { throw ValidationError("--repeats must be in 1…100") }
        let sd: StableDiffusionModel
        let loadStart = DispatchTime.now().uptimeNanoseconds
        do { sd = try StableDiffusionModel(path: model, preferFP16: fp16) } catch { throw ValidationError("\(error)") }
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e9
        if !json { print(String(format: "folder load (tokenizer, text encoder, UNet, VAE): %.2f s (%d thread(s))", loadSeconds, Threads.count)) }
        var rng = RNG(seed: 1)
        let context = noGrad { sd.encode(["a photo of a dog to the left of a teddy bear", ""]) }
        var results: [BenchResult] = [BenchResult(name: "folder load", flops: 0, seconds: loadSeconds)]
        for size in list {
            let latent = size / sd.vae.config.downscale
            let x = Tensor.randn([2, sd.unet.config.in_channels, latent, latent], rng: &rng)
            let seconds = measure(repeats: repeats) { _ = noGrad { sd.unet(x, timesteps: [500, 500], context: context) } }
            results.append(BenchResult(name: "unet step cfg \(size)", flops: 0, seconds: seconds))
            if !json { print(String(format: "UNet step (CFG, batch 2) at %d×%d: %.2f s (median of %d, %d thread(s))", size, size, seconds, repeats, Threads.count)) }
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(data: try enc.encode(EngineReport(threads: Threads.count, results: results)), encoding: .utf8)!)
        }
    }
}

/// `l2s bench train`: steps per second of the embedded model's training step (`l2s train-base`'s
/// own step: render, encode, UNet forward, min-SNR ε-loss, backward, clip, AdamW, EMA).
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Seconds per training step of the embedded model's architecture (fresh weights).",
        discussion: "Scripts/bench_train_vs_torch.py builds the same architecture in PyTorch (diffusers + transformers) and prints our time ÷ PyTorch's.")

    @OptionGroup var common: CommonOptions
    @Option(help: "Batch sizes, comma-separated.") var batches = "32,64"
    @Option(help: "Timed steps per batch size (median reported).") var repeats: Int = 5
    @Option(help: "The model's config.json (default: the embedded model's).") var config: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try common.apply()
        let list = batches.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.allSatisfy({ (1...1024).contains($0) }) else {
            throw ValidationError("--batches must be sizes in 1…1024, e.g. 32,64")
        }
        guard (1...1000).contains(repeats) else { throw ValidationError("--repeats must be in 1…1000") }
        var modelConfig = ToyModelConfig.small
        if let path = config ?? AssetLocator.toyDirectory().map({ $0 + "/config.json" }) {
            // The same reading and range checks as loading the model (a hostile config must not crash it).
            do {
                modelConfig = try ToyModelConfig.load(jsonFile: path)
                try modelConfig.validate(file: path)
            } catch { throw ValidationError("\(error)") }
        }
        let dir = NSTemporaryDirectory() + "l2s-bench-train-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var results: [BenchResult] = []
        for batch in list {
            var settings = BaseTrainingConfig()
            settings.batchSize = batch
            let trainer = try BaseTrainer(model: try ToyModel(config: modelConfig, seed: 0), config: settings, runDirectory: dir)
            var failure: Error?
            let seconds = measure(repeats: repeats) { do { _ = try trainer.trainStep() } catch { failure = error } }
            if let failure { throw failure }
            results.append(BenchResult(name: "train step B\(batch)", flops: 0, seconds: seconds))
            if !json {
                print(String(format: "training step, batch %d: %.1f ms (%.2f steps/s, %.0f img/s; median of %d, %d thread(s), OpenBLAS %@, element-wise %@, convolutions %@)",
                             batch, seconds * 1e3, 1 / seconds, Double(batch) / seconds, repeats, Threads.count, blasCoreName,
                             elementwiseKernelISA, convolutionBackend))
            }
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(data: try enc.encode(EngineReport(threads: Threads.count, results: results)), encoding: .utf8)!)
        }
    }
}

struct EngineReport: Codable {
    let threads: Int
    let results: [BenchResult]
    /// OpenBLAS's kernel set in this run.
    var blas: String = blasCoreName
    /// The instruction set of the C element-wise kernels in this run.
    var elementwise: String = elementwiseKernelISA
    /// What runs the large convolutions in this run (oneDNN or the built-in GEMM paths).
    var convolutions: String = convolutionBackend
}

/// The benchmark set (shared names with Scripts/bench_vs_torch.py).
func runEngineBenchmarks(repeats: Int, quick: Bool) -> [BenchResult] {
    var rng = RNG(seed: 1)
    var out: [BenchResult] = []
    let s = quick ? 128 : 1024
    let a = Tensor.randn([s, s], rng: &rng), b = Tensor.randn([s, s], rng: &rng)
    out.append(BenchResult(name: "sgemm \(s)", flops: 2 * pow(Double(s), 3),
                           seconds: measure(repeats: repeats) { _ = noGrad { a.matmul(b) } }))

    let convShapes = quick ? [(2, 8, 8)] : [(32, 64, 32), (32, 128, 16)]
    for (n, c, hw) in convShapes {
        let x = Tensor.randn([n, c, hw, hw], rng: &rng)
        let w = Tensor.randn([c, c, 3, 3], rng: &rng, std: 0.05)
        let bias = Tensor.randn([c], rng: &rng)
        let flops = 2.0 * Double(n * c * c * 9 * hw * hw)
        let tag = "N\(n) C\(c) \(hw)x\(hw)"
        out.append(BenchResult(name: "conv3x3 fwd \(tag)", flops: flops, seconds: measure(repeats: repeats) {
            _ = noGrad { conv2d(x, weight: w, bias: bias, padding: 1) }
        }))
        let g = Tensor.randn([n, c, hw, hw], rng: &rng)
        out.append(BenchResult(name: "conv3x3 fwd+bwd \(tag)", flops: 3 * flops, seconds: measure(repeats: repeats) {
            x.requiresGrad = true; w.requiresGrad = true; bias.requiresGrad = true
            let y = conv2d(x, weight: w, bias: bias, padding: 1)
            y.backward(seed: g)
            x.grad = nil; w.grad = nil; bias.grad = nil
            x.requiresGrad = false; w.requiresGrad = false; bias.requiresGrad = false
        }))
        let gamma = Tensor(ones: [c]), beta = Tensor(zeros: [c])
        out.append(BenchResult(name: "groupnorm32 fwd \(tag)", flops: 8.0 * Double(n * c * hw * hw), seconds: measure(repeats: repeats) {
            _ = noGrad { groupNorm(x, groups: min(32, c), weight: gamma, bias: beta) }
        }))
        out.append(BenchResult(name: "groupnorm32 fwd+bwd \(tag)", flops: 20.0 * Double(n * c * hw * hw), seconds: measure(repeats: repeats) {
            x.requiresGrad = true; gamma.requiresGrad = true; beta.requiresGrad = true
            groupNorm(x, groups: min(32, c), weight: gamma, bias: beta).backward(seed: g)
            x.grad = nil; gamma.grad = nil; beta.grad = nil
            x.requiresGrad = false; gamma.requiresGrad = false; beta.requiresGrad = false
        }))
    }

    let (bb, h, l, d) = quick ? (2, 2, 16, 8) : (32, 4, 256, 32)
    let q = Tensor.randn([bb, h, l, d], rng: &rng), k = Tensor.randn([bb, h, l, d], rng: &rng), v = Tensor.randn([bb, h, l, d], rng: &rng)
    out.append(BenchResult(name: "sdpa fwd B\(bb) h\(h) L\(l) d\(d)", flops: 4.0 * Double(bb * h * l * l * d),
                           seconds: measure(repeats: repeats) {
        _ = noGrad { scaledDotProductAttention(query: q, key: k, value: v) }
    }))
    let go = Tensor.randn([bb, h, l, d], rng: &rng)
    out.append(BenchResult(name: "sdpa fwd+bwd B\(bb) h\(h) L\(l) d\(d)", flops: 10.0 * Double(bb * h * l * l * d),
                           seconds: measure(repeats: repeats) {
        for t in [q, k, v] { t.requiresGrad = true }
        scaledDotProductAttention(query: q, key: k, value: v).output.backward(seed: go)
        for t in [q, k, v] { t.grad = nil; t.requiresGrad = false }
    }))
    return out
}
