import ArgumentParser
import Foundation
import Tensors
import Diffusion
import Steering
import ToyWorld

extension SpatialRelation {
    init(_ r: ToyRelation) {
        switch r {
        case .leftOf: self = .leftOf
        case .rightOf: self = .rightOf
        case .above: self = .above
        case .below: self = .below
        }
    }
}

extension DatasetSource: ExpressibleByArgument {}

/// Rendered two-object scenes with a clear relation, as classifier training examples.
func toyRelationExamples(count: Int, seed: UInt64, size: Int, startID: Int = 0) -> [RelationExample] {
    var rng = RNG(seed: seed &+ 0x5EED)
    let sampler = SceneSampler(size: size, objectCountWeights: [0, 0.7, 0.3])
    let captioner = Captioner()
    let renderer = SceneRenderer()
    var out: [RelationExample] = []
    var id = startID
    while out.count < count {
        let scene = sampler.sample(using: &rng)
        let n = scene.objects.count
        let a = rng.int(below: n)
        var b = rng.int(below: n - 1)
        if b >= a { b += 1 }
        guard let pair = captioner.captionPair(scene: scene, subject: a, object: b, using: &rng) else { continue }
        var positive = pair.positive, negative = pair.negative
        if n == 3 {  // name the third object too, as the base model's captions do
            let c = (0..<3).first { $0 != a && $0 != b }!
            let extra = " and " + Captioner.phrase(scene.objects[c].objectClass)
            positive += extra
            negative += extra
        }
        out.append(RelationExample(id: id, latent: renderer.tensor(scene).unsqueezed(0), positivePrompt: positive,
                                   negativePrompt: negative, relation: SpatialRelation(pair.trueRelation)))
        id += 1
    }
    return out
}

/// `l2s build-dataset`: records classifier training data from the model's own attention.
struct BuildDataset: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build-dataset",
        abstract: "Record cross-attention maps of rendered scenes under the true- and wrong-relation prompts (dual), as shards.",
        discussion: "Resumable: shards already in --out are kept and their examples skipped.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var models: ModelOptions
    @Option(help: "Number of scenes (images).") var images = 2000
    @Option(help: "Where the shards go.") var out = "runs/dataset"
    @Option(help: "inversion or forward-noising.") var source: DatasetSource = .forwardNoising
    @Flag(help: "Positive prompts only (the single-prompt ablation).") var single = false
    @Option(help: "Denoising step indices to record, comma-separated.") var steps = "5,10,15,20,25,49"
    @Option(help: "Fixed-point iterations per inversion step (1 lifts the embedded model's reconstructions from a median 36 dB, many < 20, to ≥ 45 dB; `l2s invert` measures it).") var fixedPoint = 1
    @Option(help: "Reconstruction PSNR gate in dB (inversion).") var psnrGate: Double = 20
    @Option(help: "Images per shard.") var shardSize = 250
    @Option(help: "Seed for scenes and noise.") var seed: UInt64 = 1
    @Option(help: "Images per UNet batch.") var batchSize = 16

    func run() throws {
        try common.apply()
        guard images >= 1, shardSize >= 1, batchSize >= 1 else { throw ValidationError("--images, --shard-size and --batch-size must be ≥ 1") }
        let recordSteps = steps.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !recordSteps.isEmpty, recordSteps.allSatisfy({ (0..<1000).contains($0) }) else { throw ValidationError("--steps must be step indices like 5,10,25") }
        let model = try models.loadToy(for: "build-dataset")
        var config = DatasetConfig()
        config.source = source; config.single = single; config.recordSteps = recordSteps; config.steps = model.config.default_steps
        config.fixedPointIterations = fixedPoint; config.psnrGate = psnrGate; config.seed = seed
        let builder = DatasetBuilder(model: model, config: config)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let shards = (images + shardSize - 1) / shardSize
        let bar = ProgressBar(total: images, label: "build-dataset")
        installInterruptHandler()
        var dropped = 0, samples = 0, skipped = 0
        let start = Date()
        for shard in 0..<shards {
            let path = "\(out)/shard-\(String(format: "%04d", shard)).safetensors"
            let count = min(shardSize, images - shard * shardSize)
            if FileManager.default.fileExists(atPath: path) {
                skipped += count
                bar.update(shard * shardSize + count, detail: "shard \(shard) exists")
                continue
            }
            if interruptRequested != 0 { note("interrupted; finished shards are kept, run again to continue"); throw ExitCode(130) }
            var data = RelationDataset()
            let examples = toyRelationExamples(count: count, seed: seed &+ UInt64(shard) &* 1_000_003, size: model.config.image_size,
                                               startID: shard * shardSize)
            var done = 0
            while done < examples.count {
                let batch = Array(examples[done..<min(done + batchSize, examples.count)])
                for s in builder.samples(for: batch, log: { line in
                    dropped += 1
                    if dropped <= 3 { note(line + (dropped == 3 ? " (further drops only counted)" : "")) }
                }) { data.append(s) }
                done += batch.count
                let total = shard * shardSize + done
                bar.update(total, detail: String(format: "%d samples, %d dropped, %.1f img/s", samples + data.count, dropped,
                                                 Double(total - skipped) / Date().timeIntervalSince(start)))
            }
            samples += data.count
            let meta = ["source": source.rawValue, "single": "\(single)", "steps": steps, "model_hash": model.weightsHash]
            try data.write(to: path, metadata: meta)
        }
        note(String(format: "dataset in %@: %d samples this run, %d dropped, %.0f s", out, samples, dropped, Date().timeIntervalSince(start)))
    }
}

/// `l2s train-classifier`: trains the relation classifier on built shards.
struct TrainClassifier: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-classifier",
        abstract: "Train the relation classifier on shards from build-dataset; reports held-out accuracy per step and prompt type.")

    @OptionGroup var common: CommonOptions
    @Option(help: "Shard directories (comma-separated).") var data = "runs/dataset"
    @Option(help: "Output weights.") var out = "runs/classifier.safetensors"
    @Option(help: "Model width d_model.") var dModel = 64
    @Option(help: "Learning rate.") var lr: Float = 5e-4
    @Option(help: "Maximum epochs.") var epochs = 60
    @Option(help: "Batch size.") var batchSize = 64
    @Option(help: "Dropout.") var dropout: Float = 0.1
    @Flag(help: "Train on positive-prompt samples only (the single-prompt ablation).") var positiveOnly = false
    @Option(help: "Seed.") var seed: UInt64 = 0

    func run() throws {
        try common.apply()
        var all = RelationDataset()  // every shard, before the split
        for dir in data.split(separator: ",").map(String.init) {
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: dir) else { throw ValidationError("cannot read \(dir)") }
            for f in files.sorted() where f.hasSuffix(".safetensors") { all.append(contentsOf: try RelationDataset.read(dir + "/" + f)) }
        }
        guard all.count > 0 else { throw ValidationError("no samples in \(data); run `l2s build-dataset` first") }
        var (trainSet, validation) = all.split(validationEvery: 10)
        // The single-prompt ablation trains on positives only but is judged on the same held-out set
        // (negatives included), so its leakage is measured the same way.
        if positiveOnly { trainSet = trainSet.subset((0..<trainSet.count).filter { !trainSet.negative[$0] }) }
        var c = RelationClassifierConfig()
        c.d_model = dModel; c.extractor_nhead = 4; c.extractor_num_layers = 2; c.extractor_dim_feedforward = dModel * 2
        c.extractor_layer_attn_nheads = 4; c.classifier_nhead = 4; c.classifier_num_layers = 2; c.classifier_dim_feedforward = dModel * 2
        c.dropout = dropout; c.max_channels = max(all.maps[0].shape[1], 64)
        c.input_scale = Float(c.map_size * c.map_size)
        c.training_steps = Array(Set(all.steps)).sorted()
        let classifier = RelationClassifier(config: c, seed: seed)
        var tc = ClassifierTrainingConfig()
        tc.learningRate = lr; tc.maxEpochs = epochs; tc.batchSize = batchSize; tc.seed = seed
        note("train-classifier: \(trainSet.count) train / \(validation.count) held-out samples, C = \(all.maps[0].shape[1]), \(classifier.parameterCount) parameters")
        installInterruptHandler()
        let trainer = ClassifierTrainer(classifier: classifier, config: tc)
        let best = trainer.train(trainSet, validation: validation, shouldStop: { interruptRequested != 0 }) { r in
            note(String(format: "epoch %3d  train loss %.4f  held-out loss %.4f  acc %.3f (pos %.3f, neg %.3f)  leakage %.3f",
                        r.epoch, r.trainLoss, r.validationLoss, r.accuracy, r.accuracyPositive, r.accuracyNegative, r.leakage))
        }
        guard let best else { throw ValidationError("no epoch finished") }
        try classifier.saveClassifier(to: out, metadata: ["heldout_accuracy": String(format: "%.4f", best.accuracy),
                                                          "positive_only": "\(positiveOnly)"])
        print(String(format: "best epoch %d: held-out accuracy %.3f (positive %.3f, negative %.3f), leakage %.3f",
                     best.epoch, best.accuracy, best.accuracyPositive, best.accuracyNegative, best.leakage))
        for (s, a) in best.accuracyByStep.sorted(by: { $0.key < $1.key }) { print(String(format: "  step %2d: %.3f", s, a)) }
        note("wrote \(out)")
    }
}
