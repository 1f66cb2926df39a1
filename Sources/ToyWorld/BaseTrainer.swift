import Foundation
import Tensors
import Diffusion

/// Settings of a base-model training run (`l2s train-base`). Saved in checkpoints.
public struct BaseTrainingConfig: Codable, Equatable, Sendable {
    public var steps: Int = 3000
    public var batchSize: Int = 32
    public var learningRate: Float = 1e-3
    public var warmupSteps: Int = 200
    public var weightDecay: Float = 0.01
    public var emaDecay: Float = 0.999
    public var gradClip: Float = 1
    /// Min-SNR-γ loss weighting (γ = 5); 0 turns weighting off.
    public var minSNRGamma: Float = 5
    public var seed: UInt64 = 0
    public var checkpointEvery: Int = 100
    public var captionRates: CaptionRates = CaptionRates()
    /// True reproduces the v1 captions (a single-object caption may name one object of several);
    /// nil or false: every caption names every object (see `Captioner.namesEveryObject`). Optional
    /// so checkpoints written before the field existed still decode.
    public var partialCaptions: Bool? = nil
    /// Weights of 1, 2 and 3 objects per scene.
    public var objectCountWeights: [Float] = [0.2, 0.45, 0.35]

    public init() {}

    public func validationError() -> String? {
        if steps < 1 { return "steps must be ≥ 1" }
        if batchSize < 1 || batchSize > 4096 { return "batch size must be in 1…4096" }
        if !(learningRate > 0) || !learningRate.isFinite { return "learning rate must be > 0" }
        if checkpointEvery < 1 { return "checkpoint interval must be ≥ 1" }
        return nil
    }
}

/// One progress report of a training run.
public struct TrainingProgress: Sendable {
    public let step: Int
    public let totalSteps: Int
    public let loss: Float
    /// Exponential moving average of the loss (smoother to read).
    public let smoothedLoss: Float
    public let learningRate: Float
    public let imagesPerSecond: Double
    public let stepsPerSecond: Double
    public let checkpointed: Bool
}

public enum TrainingError: Error, CustomStringConvertible {
    case invalidConfig(String)
    case checkpointMismatch(String)
    case nonFiniteLoss(step: Int)
    public var description: String {
        switch self {
        case .invalidConfig(let m): return "invalid training settings: \(m)"
        case .checkpointMismatch(let m): return "cannot resume: \(m)"
        case .nonFiniteLoss(let s): return "loss became NaN/Inf at step \(s); lower the learning rate or resume from the last checkpoint"
        }
    }
}

/// Trains the toy model on batches rendered on the fly: DDPM ε-prediction loss with min-SNR weighting,
/// AdamW with warmup + cosine, gradient clipping, EMA, and a checkpoint (weights, EMA, optimiser
/// state, step) every `checkpointEvery` steps that `run` resumes from. Each step's batch is drawn from
/// an RNG seeded by (seed, step), so a resumed run sees exactly the batches an uninterrupted one would.
public final class BaseTrainer {
    public let model: ToyModel
    public let config: BaseTrainingConfig
    public let runDirectory: String
    let parameters: [Tensor]
    let optimizer: AdamW
    let ema: EMA
    let schedule: WarmupCosineSchedule
    public private(set) var step = 0

    public var checkpointPath: String { runDirectory + "/checkpoint.safetensors" }

    public init(model: ToyModel, config: BaseTrainingConfig, runDirectory: String) throws {
        if let m = config.validationError() { throw TrainingError.invalidConfig(m) }
        self.model = model
        self.config = config
        self.runDirectory = runDirectory
        model.unet.requiresGrad(true)
        model.textEncoder.requiresGrad(true)
        parameters = model.unet.parameters + model.textEncoder.parameters
        optimizer = AdamW(parameters: parameters, lr: config.learningRate, weightDecay: config.weightDecay)
        ema = EMA(parameters: parameters, decay: config.emaDecay)
        schedule = WarmupCosineSchedule(peak: config.learningRate, warmupSteps: config.warmupSteps, totalSteps: config.steps,
                                        minLR: config.learningRate * 0.05)
        try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
    }

    /// Loads the checkpoint in the run directory if there is one; returns the step it resumes at.
    @discardableResult
    public func resumeIfPossible() throws -> Int {
        guard FileManager.default.fileExists(atPath: checkpointPath) else { return 0 }
        let file = try SafetensorsFile(path: checkpointPath)
        guard let saved = file.metadata["config"], let data = saved.data(using: .utf8),
              let savedConfig = try? JSONDecoder().decode(BaseTrainingConfig.self, from: data) else {
            throw TrainingError.checkpointMismatch("\(checkpointPath) has no training config")
        }
        guard savedConfig.seed == config.seed, savedConfig.batchSize == config.batchSize else {
            throw TrainingError.checkpointMismatch("\(checkpointPath) was made with seed \(savedConfig.seed), batch \(savedConfig.batchSize)")
        }
        let all = try file.tensors()
        func sub(_ prefix: String) -> [String: Tensor] {
            Dictionary(uniqueKeysWithValues: all.filter { $0.key.hasPrefix(prefix) }.map { (String($0.key.dropFirst(prefix.count)), $0.value) })
        }
        try model.unet.loadStateDict(sub("unet."))
        try model.textEncoder.loadStateDict(sub("text_encoder."))
        try optimizer.loadState(sub("optimizer."))
        try ema.loadState(sub("ema."))
        step = Int(file.metadata["step"] ?? "0") ?? 0
        return step
    }

    /// Writes the checkpoint atomically.
    public func saveCheckpoint() throws {
        var tensors: [(String, Tensor)] = []
        tensors += model.unet.stateDict().map { ("unet." + $0.0, $0.1) }
        tensors += model.textEncoder.stateDict().map { ("text_encoder." + $0.0, $0.1) }
        tensors += optimizer.state().map { ("optimizer." + $0.0, $0.1) }
        tensors += ema.state().map { ("ema." + $0.0, $0.1) }
        let cfg = String(data: try JSONEncoder().encode(config), encoding: .utf8)!
        try writeSafetensors(tensors, to: checkpointPath, metadata: ["step": "\(step)", "config": cfg])
    }

    /// The batch of step `s`: rendered images [B, 3, H, W] in [−1, 1] and their captions.
    public func batch(at s: Int) -> (images: Tensor, captions: [String], rng: RNG) {
        BaseTrainer.batch(seed: config.seed, step: s, count: config.batchSize, config: config, imageSize: model.config.image_size)
    }

    /// A batch drawn from the stream of `seed` at `step` (the same function for training and held-out batches).
    static func batch(seed: UInt64, step s: Int, count: Int, config: BaseTrainingConfig, imageSize: Int)
        -> (images: Tensor, captions: [String], rng: RNG) {
        var rng = RNG(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(s))
        let sampler = SceneSampler(size: imageSize, objectCountWeights: config.objectCountWeights)
        let captioner = Captioner(rates: config.captionRates, namesEveryObject: !(config.partialCaptions ?? false))
        var scenes: [Scene] = [], captions: [String] = []
        for _ in 0..<count {
            let scene = sampler.sample(using: &rng)
            scenes.append(scene)
            captions.append(captioner.caption(for: scene, using: &rng).text)
        }
        return (SceneRenderer().batch(scenes), captions, rng)
    }

    /// One optimisation step; returns the loss.
    public func trainStep() throws -> Float {
        var (x0, captions, rng) = batch(at: step)
        let b = config.batchSize
        let alphas = model.schedulerConfig.alphasCumprod()
        let ts = (0..<b).map { _ in rng.int(below: alphas.count) }
        let noise = Tensor.randn(x0.shape, rng: &rng)
        let sa = Tensor(ts.map { Float(alphas[$0].squareRoot()) }, shape: [b, 1, 1, 1])
        let sb = Tensor(ts.map { Float((1 - alphas[$0]).squareRoot()) }, shape: [b, 1, 1, 1])
        let xt = noGrad { x0 * sa + noise * sb }
        let weights = Tensor(ts.map { t -> Float in
            guard config.minSNRGamma > 0 else { return 1 }
            let snr = alphas[t] / (1 - alphas[t])
            return Float(min(snr, Double(config.minSNRGamma)) / snr)
        })
        optimizer.lr = schedule.lr(at: step)
        let context = model.encode(captions)
        let pred = model.unet(xt, timesteps: ts.map(Float.init), context: context)
        let perSample = (pred - noise).square().mean(axes: [1, 2, 3])
        let loss = (perSample * weights).mean()
        let value = loss.item
        guard value.isFinite else { throw TrainingError.nonFiniteLoss(step: step) }
        loss.backward()
        clipGradNorm(parameters, maxNorm: config.gradClip)
        optimizer.step()
        optimizer.zeroGrad()
        ema.update()
        step += 1
        return value
    }

    /// Trains until `config.steps` (or `stopAt`, for a run cut short on the same schedule),
    /// checkpointing; `shouldStop` is polled between steps (Ctrl-C).
    public func run(stopAt: Int? = nil, shouldStop: () -> Bool = { false }, progress: (TrainingProgress) -> Void) throws {
        var smoothed: Float = 0
        let start = Date()
        let firstStep = step
        let end = min(stopAt ?? config.steps, config.steps)
        while step < end {
            if shouldStop() { try saveCheckpoint(); return }
            let loss = try trainStep()
            smoothed = step == firstStep + 1 ? loss : 0.98 * smoothed + 0.02 * loss
            let due = step % config.checkpointEvery == 0 || step == end
            if due { try saveCheckpoint() }
            let elapsed = Date().timeIntervalSince(start)
            let done = Double(step - firstStep)
            progress(TrainingProgress(step: step, totalSteps: config.steps, loss: loss, smoothedLoss: smoothed,
                                      learningRate: optimizer.lr, imagesPerSecond: done * Double(config.batchSize) / elapsed,
                                      stepsPerSecond: done / elapsed, checkpointed: due))
        }
    }

    /// Unweighted ε-prediction MSE of the current weights on a fixed held-out batch, per noise level
    /// (timestep buckets of 100): shows which part of the schedule the model has learned.
    public func lossByNoiseLevel(images: Int = 64) -> [(timestep: Int, mse: Float)] {
        noGrad {
            let (x0, captions, _) = BaseTrainer.batch(seed: 0xD1A9, step: 0, count: images, config: config,
                                                      imageSize: model.config.image_size)
            let context = model.encode(captions)
            var rng = RNG(seed: 77)
            let alphas = model.schedulerConfig.alphasCumprod()
            return stride(from: 50, to: 1000, by: 100).map { t in
                let noise = Tensor.randn(x0.shape, rng: &rng)
                let xt = x0 * Float(alphas[t].squareRoot()) + noise * Float((1 - alphas[t]).squareRoot())
                let pred = model.unet(xt, timesteps: [Float(t)], context: context)
                return (t, (pred - noise).square().mean().item)
            }
        }
    }

    /// Copies the EMA weights into the model (for export) — the optimiser's copy is no longer in use after.
    public func applyEMA() {
        ema.copyTo(parameters)
        model.unet.requiresGrad(false)
        model.textEncoder.requiresGrad(false)
    }
}
