import Foundation
import Relations
import Tensors
import Diffusion

/// One training image for the relation classifier: the clean latent, its two prompts and the TRUE relation.
public struct RelationExample: Sendable {
    public var id: Int
    /// Clean latent [1, C, H, W] (the toy model: pixels in [−1, 1]).
    public var latent: Tensor
    /// Prompt stating the true relation.
    public var positivePrompt: String
    /// The same objects with a wrong relation word (dual inversion's negative).
    public var negativePrompt: String
    public var relation: SpatialRelation
    public init(id: Int, latent: Tensor, positivePrompt: String, negativePrompt: String, relation: SpatialRelation) {
        self.id = id; self.latent = latent; self.positivePrompt = positivePrompt
        self.negativePrompt = negativePrompt; self.relation = relation
    }
}

/// How the noisy latents whose maps are recorded are made.
public enum DatasetSource: String, Codable, Sendable, CaseIterable {
    /// DDIM inversion of the image under each prompt, then reconstruction; maps recorded on the way
    /// down at the configured steps; a PSNR gate drops poor reconstructions (the paper's way).
    case inversion
    /// x_t = √ᾱ·x₀ + √(1−ᾱ)·ε with fresh noise, one conditional UNet pass per recorded step (~25× cheaper).
    case forwardNoising = "forward-noising"
    /// The model's own sampling from noise under the example's true-relation prompt (CFG at
    /// `DatasetConfig.guidance`), maps recorded on the way; each trajectory is labelled with the
    /// relation a judge (the toy detector) reads on the final image. Where that differs from the
    /// prompt's word the sample is a wrong-word (negative) sample; images the judge cannot read
    /// (an object missing or duplicated, no single clear offset) are dropped. The example's image
    /// is not used, only its prompt.
    case sampling
}

/// Settings of a dataset build.
public struct DatasetConfig: Codable, Equatable, Sendable {
    public var source: DatasetSource = .forwardNoising
    /// Denoising step indices (of `steps`) whose maps are recorded.
    public var recordSteps: [Int] = [5, 10, 15, 20, 25, 49]
    public var steps: Int = 50
    /// Positive prompts only (the ablation without dual prompts).
    public var single: Bool = false
    /// Reconstruction PSNR (dB) below which an inversion is dropped.
    public var psnrGate: Double = 20
    /// Fixed-point iterations per inversion step (0 = plain DDIM inversion).
    public var fixedPointIterations: Int = 0
    public var seed: UInt64 = 0
    /// Classifier-free guidance of the sampling source's trajectories.
    public var guidance: Float = 1.5
    public init() {}
}

/// One recorded sample: subject and object maps at one step under one prompt, labelled with the true relation.
public struct RelationSample {
    public var maps: Tensor          // [2, C, 16, 16]
    public var label: Int            // true relation's class index
    public var step: Int             // denoising step index
    public var negative: Bool        // recorded under the wrong-relation prompt
    /// The relation the prompt stated (for leakage: how often wrong-prompt maps read as this).
    public var promptLabel: Int
    public var exampleID: Int
}

/// Records classifier training data from a model's own cross-attention.
public final class DatasetBuilder {
    public let model: TextToImageModel
    public let config: DatasetConfig
    /// The sampling source's labeller: the relation of the prompt's subject to its object that it
    /// reads on a final image [1, 3, H, W] (nil: the image cannot be read; the sample is dropped).
    public typealias Judge = (_ image: Tensor, _ prompt: String) -> SpatialRelation?
    let judge: Judge?
    let generator: SteeredGenerator

    /// `judge` is required by the sampling source and unused by the others.
    public init(model: TextToImageModel, config: DatasetConfig, judge: Judge? = nil) {
        precondition(config.source != .sampling || judge != nil, "the sampling source needs a judge")
        self.model = model
        self.config = config
        self.judge = judge
        generator = SteeredGenerator(model: model, classifier: nil)
    }

    /// Token spans (sequence positions) of the prompt's first relation's subject and object.
    func spans(_ prompt: String) -> (Range<Int>, Range<Int>, SpatialRelation)? {
        guard let graph = try? generator.parser.parse(prompt) else { return nil }
        let targets = generator.targets(for: graph)
        guard let t = targets.first else { return nil }
        return (t.subjectTokens, t.objectTokens, t.relation)
    }

    /// One prompt of one example, resolved.
    struct Job {
        let example: RelationExample
        let negative: Bool
        let subject: Range<Int>
        let object: Range<Int>
        let stated: SpatialRelation
        let prompt: String
    }

    /// Conditional UNet pass over a batch with capture; returns ε̂ [B, …] and each item's [2, C, 16, 16] maps.
    func passWithMaps(_ x: Tensor, timestep: Int, context: Tensor, jobs: [Job]) -> (Tensor, [Tensor]) {
        let capture = AttentionCapture(keepOnTape: false, conditionalHalfOnly: false)
        let eps = model.unet(x, timesteps: [Float(timestep)], context: context, capture: capture)
        let maps = jobs.enumerated().map { i, job in
            Tensor.stack([AttentionMaps.maps(capture.layers, tokenSpan: job.subject, item: i),
                          AttentionMaps.maps(capture.layers, tokenSpan: job.object, item: i)], axis: 0)
        }
        return (eps, maps)
    }

    /// The sampling source: every job's trajectory from its own seeded noise (CFG, the batch as one
    /// UNet pass of 2B), conditional maps at the recorded steps, labelled by the judge's reading of
    /// the final image.
    func sampled(_ jobs: [Job], steps: [Int], scheduler: DDIMScheduler, context: Tensor, log: ((String) -> Void)?) -> [RelationSample] {
        let sampler = Sampler(model: model)
        let noise = jobs.map { sampler.initialNoise(seed: config.seed &* 1_000_003 &+ UInt64($0.example.id)) }
        let uncond = model.encode(Array(repeating: "", count: jobs.count))
        let offset = Sampler.conditionalOffset(guidance: config.guidance, batch: jobs.count)
        var scheduler = scheduler
        var recorded: [[(Int, Tensor)]] = Array(repeating: [], count: jobs.count)
        let final = Sampler.denoise(Tensor.concat(noise, axis: 0), scheduler: &scheduler, predict: { x, step, t in
            let capture = steps.contains(step) ? AttentionCapture(keepOnTape: false, conditionalHalfOnly: false) : nil
            let eps = sampler.guidedPrediction(x, timestep: t, cond: context, uncond: uncond, guidance: config.guidance, capture: capture)
            if let capture {
                for (i, j) in jobs.enumerated() {
                    recorded[i].append((step, Tensor.stack([AttentionMaps.maps(capture.layers, tokenSpan: j.subject, item: offset + i),
                                                            AttentionMaps.maps(capture.layers, tokenSpan: j.object, item: offset + i)], axis: 0)))
                }
            }
            return eps
        })
        let images = model.decode(final)
        var out: [RelationSample] = []
        for (i, j) in jobs.enumerated() {
            guard let read = judge?(images.sliced(axis: 0, i..<i + 1), j.prompt) else {
                log?("example \(j.example.id): the judge cannot read the sampled image of \"\(j.prompt)\"; dropped")
                continue
            }
            for (step, maps) in recorded[i] {
                out.append(RelationSample(maps: maps, label: read.classIndex, step: step, negative: read != j.stated,
                                          promptLabel: j.stated.classIndex, exampleID: j.example.id))
            }
        }
        return out
    }

    /// Samples for a batch of examples (both prompts each unless `single`; the sampling source runs the
    /// positive prompt only), run as one UNet batch per recorded step; `log` hears about skipped or
    /// dropped ones.
    public func samples(for examples: [RelationExample], log: ((String) -> Void)? = nil) -> [RelationSample] {
        noGrad {
            var jobs: [Job] = []
            for example in examples {
                let prompts = config.single || config.source == .sampling
                    ? [(example.positivePrompt, false)] : [(example.positivePrompt, false), (example.negativePrompt, true)]
                for (prompt, negative) in prompts {
                    guard let (subject, object, stated) = spans(prompt) else {
                        log?("example \(example.id): no steerable relation in \"\(prompt)\"; skipped")
                        continue
                    }
                    jobs.append(Job(example: example, negative: negative, subject: subject, object: object, stated: stated, prompt: prompt))
                }
            }
            guard !jobs.isEmpty else { return [] }
            let x0 = Tensor.concat(jobs.map(\.example.latent), axis: 0)
            let context = model.encode(jobs.map(\.prompt))
            let scheduler = DDIMScheduler(config: model.schedulerConfig, steps: config.steps)
            let timesteps = scheduler.timesteps
            let steps = config.recordSteps.filter { $0 < timesteps.count }
            func sample(_ j: Job, _ maps: Tensor, _ step: Int) -> RelationSample {
                RelationSample(maps: maps, label: j.example.relation.classIndex, step: step, negative: j.negative,
                               promptLabel: j.stated.classIndex, exampleID: j.example.id)
            }
            var out: [RelationSample] = []
            switch config.source {
            case .forwardNoising:
                var rng = RNG(seed: config.seed &+ UInt64(examples[0].id) &* 7919)
                for step in steps {
                    let t = timesteps[step]
                    let xt = scheduler.addNoise(x0, noise: Tensor.randn(x0.shape, rng: &rng), t: t)
                    let (_, maps) = passWithMaps(xt, timestep: t, context: context, jobs: jobs)
                    for (j, m) in zip(jobs, maps) { out.append(sample(j, m, step)) }
                }
            case .inversion:
                let deepest = steps.min() ?? 0
                let inversion = Inversion(model: model, fixedPointIterations: config.fixedPointIterations)
                let (xT, _) = inversion.invert(x0, context: context, steps: config.steps, downTo: deepest)
                // Reconstruct with the inversion's own (unclipped) scheduler: clipping x̂₀ on the way
                // down bends the trajectory away from the inverted one (most reconstructions then
                // failed the PSNR gate).
                var unclipped = inversion.scheduler(steps: config.steps)
                var recorded: [[RelationSample]] = Array(repeating: [], count: jobs.count)
                var clean = xT
                _ = Sampler.denoise(xT, scheduler: &unclipped, from: deepest, predict: { x, step, t in
                    let (eps, maps) = passWithMaps(x, timestep: t, context: context, jobs: jobs)
                    if steps.contains(step) { for i in jobs.indices { recorded[i].append(sample(jobs[i], maps[i], step)) } }
                    return eps
                }, afterStep: { _, _, _, x0 in clean = x0 })
                for (i, j) in jobs.enumerated() {
                    let quality = psnr(clean.sliced(axis: 0, i..<i + 1), j.example.latent)
                    if quality < config.psnrGate {
                        log?(String(format: "example %d (%@): reconstruction PSNR %.1f dB < %.1f; dropped", j.example.id,
                                    j.negative ? "negative" : "positive", quality, config.psnrGate))
                        continue
                    }
                    out += recorded[i]
                }
            case .sampling:
                out = sampled(jobs, steps: steps, scheduler: scheduler, context: context, log: log)
            }
            return out
        }
    }
}
