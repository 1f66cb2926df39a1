import ArgumentParser
import Foundation
import Formats
import Relations
import ToyBench
import Imaging
import Tensors
import Diffusion
import Steering
import ToyWorld

extension DatasetSource: ExpressibleByArgument {}

/// `l2s build-dataset`: records classifier training data from the model's own attention.
struct BuildDataset: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build-dataset",
        abstract: "Record cross-attention maps of images under the true- and wrong-relation prompts (dual), as shards.",
        discussion: """
        The images: rendered toy scenes with a clear relation (the embedded model; --scenes of them), or your own \
        images with --images DIR --annotations FILE.jsonl, one record a line: \
        {"image": "a.png", "subject": "dog", "relation": "to the left of", "object": "teddy bear"} (PNG files; \
        center-cropped and resized to the model's size; with --model they are VAE-encoded). \
        Resumable: shards already in --out are kept and their examples skipped (each is written to a temporary \
        file and renamed into place, so an interrupted shard leaves nothing). With --shard i/n or --shard auto \
        (a Slurm job array or Kubernetes Indexed Job, as for `l2s eval`) this process builds every n-th shard \
        file from i; all tasks may share one --out.
        """)

    @OptionGroup var common: CommonOptions
    @OptionGroup var models: ModelOptions
    @Option(parsing: .unconditional, help: "Number of rendered scenes (embedded model, without --annotations).") var scenes = 2000
    @Option(help: "Directory of your images (with --annotations).") var images: String?
    @Option(help: "JSON-lines file of (image, subject, relation, object) records (with --images).") var annotations: String?
    @Option(help: "Where the shards go.") var out = "runs/dataset"
    @Option(help: "inversion, forward-noising or sampling (the embedded model's own trajectories from noise, labelled by the detector on the final image).") var source: DatasetSource = .forwardNoising
    @Option(parsing: .unconditional, help: "Classifier-free guidance of --source sampling (default: the model's).") var guidance: Float?
    @Flag(help: "Positive prompts only (the single-prompt ablation).") var single = false
    @Option(help: "Step indices of the classifier's 50-step schedule to record, comma-separated.") var steps = "5,10,15,20,25,49"
    @Option(parsing: .unconditional, help: "Fixed-point iterations per inversion step (1 lifts the embedded model's reconstructions from a median 35.5 dB, some < 20, to ≥ 45 dB; `l2s invert` measures it).") var fixedPoint = 1
    @Option(parsing: .unconditional, help: "Reconstruction PSNR gate in dB (inversion).") var psnrGate: Double = 20
    @Option(parsing: .unconditional, help: "Images per shard.") var shardSize = 250
    @Option(parsing: .unconditional, help: "Seed for scenes and noise.") var seed: UInt64 = 1
    @Option(parsing: .unconditional, help: "Images per UNet batch.") var batchSize = 16
    @Option(help: "Build only shard files i, i+n, … (i/n), or auto (Slurm array / Kubernetes Indexed Job task).") var shard: String?

    func validate() throws {
        if let guidance, !SamplerSettings.guidanceRange.contains(guidance) { throw ValidationError("--guidance must be in \(SamplerSettings.guidanceRange.spelled)") }
        if source == .sampling && (models.model != nil || images != nil || annotations != nil) {
            throw ValidationError("--source sampling labels images with the embedded model's detector: use it with rendered scenes (no --model, --images)")
        }
        if let shard {
            do { _ = try EvalGrid.resolveShard(shard, environment: ProcessInfo.processInfo.environment) } catch let e as ShardError {
                throw ValidationError(e.message)
            }
        }
    }

    func run() throws {
        try common.apply()
        guard scenes >= 1, shardSize >= 1, batchSize >= 1 else { throw ValidationError("--scenes, --shard-size and --batch-size must be ≥ 1") }
        let parsed = steps.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        let recordSteps = parsed.compactMap { $0 }
        let table = RelationClassifierConfig().num_timesteps
        guard !recordSteps.isEmpty, recordSteps.count == parsed.count, recordSteps.allSatisfy({ (0..<table).contains($0) }) else {
            throw ValidationError("--steps must be step indices of the \(table)-step schedule like 5,10,25 (each in 0..<\(table))")
        }
        let loaded = try models.load()
        let model = loaded.model
        // Where the examples come from: the user's annotated images, or rendered toy scenes.
        let total: Int
        let examplesFor: (Range<Int>) throws -> [RelationExample]
        switch (images, annotations) {
        case let (dir?, file?):
            let records: [ResolvedAnnotation]
            do { records = try Annotations.read(path: file, seed: seed) } catch { throw ValidationError("\(error)") }
            total = records.count
            examplesFor = { range in try range.map { i in
                let r = records[i]
                let latent = try imageLatent(path: dir + "/" + r.record.image, model: loaded, context: "\(file):\(r.line)")
                return RelationExample(id: i, latent: latent, positivePrompt: r.positivePrompt, negativePrompt: r.negativePrompt, relation: r.relation)
            } }
        case (nil, nil):
            guard let toy = loaded.toy else { throw ValidationError("with --model, give --images DIR and --annotations FILE (rendered scenes are for the embedded model)") }
            total = scenes
            examplesFor = { range in
                let shard = range.lowerBound / shardSize
                return ToyEval.relationExamples(count: range.count, seed: seed &+ UInt64(shard) &* 1_000_003, size: toy.config.image_size,
                                           startID: range.lowerBound)
            }
        default:
            throw ValidationError("--images DIR and --annotations FILE go together")
        }
        var config = DatasetConfig()
        config.source = source; config.single = single; config.recordSteps = recordSteps
        // The maps are recorded along the classifier's own step table (50 steps; --steps indexes it),
        // not the model's sampling default (15 for the embedded model), which would drop steps ≥ 15.
        config.steps = table
        config.fixedPointIterations = fixedPoint; config.psnrGate = psnrGate; config.seed = seed
        config.guidance = guidance ?? loaded.defaults.guidance
        var judge: DatasetBuilder.Judge? = nil
        if source == .sampling {
            let parser = PromptParser(vocabulary: loaded.vocabulary)
            judge = { image, prompt in DetectorReading.relationLabel(image: image, prompt: prompt, parser: parser) }
        }
        let builder = DatasetBuilder(model: model, config: config, judge: judge)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let shards = (total + shardSize - 1) / shardSize
        let (task, tasks) = try shard.map { try EvalGrid.resolveShard($0, environment: ProcessInfo.processInfo.environment) } ?? (0, 1)
        let bar = ProgressBar(total: total, label: "build-dataset")
        installInterruptHandler()
        var dropped = 0, samples = 0, skipped = 0
        let start = Date()
        for shard in 0..<shards where shard % tasks == task {
            let stem = "\(out)/shard-\(String(format: "%04d", shard))"
            let path = stem + ".safetensors"
            // A shard whose every sample was dropped leaves a marker instead, so it counts as done too.
            let emptyMarker = stem + ".empty"
            let count = min(shardSize, total - shard * shardSize)
            if FileManager.default.fileExists(atPath: path) || FileManager.default.fileExists(atPath: emptyMarker) {
                skipped += count
                bar.skipped(count)
                bar.update(shard * shardSize + count, detail: "shard \(shard) exists")
                continue
            }
            if interruptRequested != 0 { note("interrupted; finished shards are kept, run again to continue"); throw ExitCode(130) }
            var data = RelationDataset()
            let examples = try examplesFor(shard * shardSize..<shard * shardSize + count)
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
            var meta = ["source": source.rawValue, "single": "\(single)", "steps": steps, "model_hash": model.weightsHash,
                        "images": annotations ?? "rendered scenes"]
            if source == .sampling { meta["guidance"] = "\(config.guidance)" }
            if data.count == 0 {
                try writeFilesAtomically([(emptyMarker, Data("every sample of this shard was dropped\n".utf8))])
            } else {
                try data.write(to: path, metadata: meta)
            }
        }
        note(String(format: "dataset in %@: %d samples this run, %d dropped, %.0f s", out, samples, dropped, Date().timeIntervalSince(start)))
    }
}

/// `l2s train-classifier`: trains the relation classifier on built shards.
struct TrainClassifier: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-classifier",
        abstract: "Train the relation classifier on shards from build-dataset; reports held-out accuracy per step and prompt type.",
        discussion: """
        With --images DIR --annotations FILE (and --model PATH for Stable Diffusion) it first records the \
        dual-inversion data from your images into the first --data directory (as `l2s build-dataset --source \
        inversion` does; resumable), then trains on it.
        """)

    @OptionGroup var common: CommonOptions
    @Option(help: "Shard directories (comma-separated).") var data = "runs/dataset"
    @Option(help: "With --images: a Stable Diffusion diffusers folder whose attention is recorded (default: the embedded model).") var model: String?
    @Option(help: "Directory of your PNG images (records from --annotations).") var images: String?
    @Option(help: "JSON-lines (image, subject, relation, object) records for --images.") var annotations: String?
    @Option(parsing: .unconditional, help: "With --model: image size 256 or 512 (default: the model's own).") var size: Int?
    @Option(parsing: .unconditional, help: "With --images: fixed-point iterations per inversion step (the paper: 5).") var fixedPoint = 5
    @Option(help: "Output weights.") var out = "runs/classifier.safetensors"
    @Option(parsing: .unconditional, help: "Model width d_model.") var dModel = 64
    @Option(parsing: .unconditional, help: "Learning rate.") var lr: Float = 5e-4
    @Option(parsing: .unconditional, help: "Maximum epochs.") var epochs = 60
    @Option(parsing: .unconditional, help: "Batch size.") var batchSize = 64
    @Option(parsing: .unconditional, help: "Dropout.") var dropout: Float = 0.1
    @Flag(help: "Train on positive-prompt samples only (the single-prompt ablation).") var positiveOnly = false
    @Flag(help: "Mirror training maps at random (left–right swaps left of/right of, top–bottom swaps above/below).") var flips = false
    @Option(parsing: .unconditional, help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Shard directories of a separate test set (comma-separated), e.g. another source's or seed's: the best epoch is also scored on it, per step. Repeat for several sets, each reported on its own.") var test: [String] = []

    func validate() throws {
        // An empty value read as a set with no name ("no samples in --test ").
        if data.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--data needs a shard directory; an empty value was given") }
        if test.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw ValidationError("--test needs a shard directory; an empty value was given")
        }
    }

    /// Every sample in the shards of comma-separated directories.
    func readShards(_ dirs: String) throws -> RelationDataset {
        var all = RelationDataset()
        for dir in dirs.split(separator: ",").map(String.init) {
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: dir) else { throw ValidationError("cannot read \(dir)") }
            for f in files.sorted() where f.hasSuffix(".safetensors") { all.append(contentsOf: try RelationDataset.read(dir + "/" + f)) }
        }
        return all
    }

    /// The report's lines: overall, by prompt type, leakage, then per step.
    func printReport(_ title: String, _ r: ClassifierReport) {
        print(String(format: "%@: held-out accuracy %.3f (positive %.3f, negative %.3f), leakage %.3f",
                     title, r.accuracy, r.accuracyPositive, r.accuracyNegative, r.leakage))
        for (s, a) in r.accuracyByStep.sorted(by: { $0.key < $1.key }) { print(String(format: "  step %2d: %.3f", s, a)) }
    }

    func run() throws {
        try common.apply()
        if images != nil || annotations != nil || model != nil {
            guard let images, let annotations else { throw ValidationError("--images DIR and --annotations FILE go together (--model needs them)") }
            let dir = data.split(separator: ",").first.map(String.init) ?? "runs/dataset"
            var args = ["--images", images, "--annotations", annotations, "--out", dir, "--source", "inversion", "--fixed-point", "\(fixedPoint)"]
            if let model { args += ["--model", model] }
            if let size { args += ["--size", "\(size)"] }
            if let threads = common.threads { args += ["--threads", "\(threads)"] }
            let build = try BuildDataset.parse(args)
            try build.run()
        }
        let all = try readShards(data)  // every shard, before the split
        guard all.count > 0 else { throw ValidationError("no samples in \(data); run `l2s build-dataset` first") }
        let testSets = try test.map { dirs -> (String, RelationDataset) in
            let set = try readShards(dirs)
            guard set.count > 0 else { throw ValidationError("no samples in --test \(dirs)") }
            guard set.maps[0].shape == all.maps[0].shape else {
                throw ValidationError("--test \(dirs) maps are \(set.maps[0].shape), the training maps \(all.maps[0].shape): record both with the same model")
            }
            return (dirs, set)
        }
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
        tc.learningRate = lr; tc.maxEpochs = epochs; tc.batchSize = batchSize; tc.seed = seed; tc.augmentFlips = flips
        note("train-classifier: \(trainSet.count) train / \(validation.count) held-out samples, C = \(all.maps[0].shape[1]), \(classifier.parameterCount) parameters")
        installInterruptHandler()
        let trainer = ClassifierTrainer(classifier: classifier, config: tc)
        let best = trainer.train(trainSet, validation: validation, shouldStop: { interruptRequested != 0 }) { r in
            note(String(format: "epoch %3d  train loss %.4f  held-out loss %.4f  acc %.3f (pos %.3f, neg %.3f)  leakage %.3f",
                        r.epoch, r.trainLoss, r.validationLoss, r.accuracy, r.accuracyPositive, r.accuracyNegative, r.leakage))
        }
        guard let best else { throw ValidationError("no epoch finished") }
        try classifier.saveClassifier(to: out, metadata: ["heldout_accuracy": String(format: "%.4f", best.accuracy),
                                                          "positive_only": "\(positiveOnly)", "flips": "\(flips)",
                                                          "data": data, "best_epoch": "\(best.epoch)"])
        printReport("best epoch \(best.epoch)", best)
        for (dirs, set) in testSets { printReport("test set \(dirs) (\(set.count) samples)", trainer.evaluate(set, epoch: best.epoch)) }
        note("wrote \(out)")
    }
}

/// A PNG as the model's clean latent [1, C, h, w]: center-cropped to a square, resized (PyTorch-exact
/// bilinear) to the model's image size, scaled to [−1, 1]; VAE-encoded (mean × scaling) for Stable
/// Diffusion. Errors name the file and the annotation line.
func imageLatent(path: String, model: ModelProfile, context: String) throws -> Tensor {
    let png: (rgb: [UInt8], width: Int, height: Int)
    do { png = try readPNG(path: path) } catch {
        throw ValidationError("\(context): cannot read \(path) (\(error)); images must be PNG files")
    }
    let side = min(png.width, png.height)
    let x0 = (png.width - side) / 2, y0 = (png.height - side) / 2
    let pixels = Tensor(zeros: [1, 3, side, side])
    let plane = side * side
    for y in 0..<side {
        for x in 0..<side {
            let src = 3 * ((y + y0) * png.width + x + x0)
            for c in 0..<3 { pixels.pointer[c * plane + y * side + x] = Float(png.rgb[src + c]) / 127.5 - 1 }
        }
    }
    return noGrad {
        if let sd = model.model as? StableDiffusionModel {
            let size = sd.imageSize
            let resized = side == size ? pixels : pixels.resizeBilinear(height: size, width: size)
            return sd.encodeImages(resized)
        }
        let size = model.model.latentShape[1]
        return side == size ? pixels : pixels.resizeBilinear(height: size, width: size)
    }
}
