import ArgumentParser
import Foundation
import Tensors
import ToyWorld

/// `l2s train-base`: trains the embedded toy text-to-image model from scratch on rendered scenes.
struct TrainBase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-base",
        abstract: "Train the embedded toy text-to-image model on the synthetic scene world (resumable).",
        discussion: """
        Checkpoints go to --run-dir every --checkpoint-every steps; running the same command again resumes
        from the last one (same seed and batch size). Ctrl-C saves a checkpoint and stops. When the run
        completes, the EMA weights are exported (fp16) to --export.
        """)

    @OptionGroup var common: CommonOptions
    @Option(help: "Run directory for checkpoints.") var runDir = "runs/toy-base"
    @Option(parsing: .unconditional, help: "Total optimisation steps (v1 from scratch: 3600; the shipped v2 is a fine-tune of v1, see README).") var steps = 3600
    @Option(parsing: .unconditional, help: "Images per step.") var batchSize = 32
    @Option(parsing: .unconditional, help: "Peak learning rate (AdamW).") var lr: Float = 1e-3
    @Option(parsing: .unconditional, help: "Warm-up steps.") var warmup = 200
    @Option(parsing: .unconditional, help: "Random seed (scenes, captions, noise, initial weights).") var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "Checkpoint interval in steps.") var checkpointEvery = 100
    @Option(parsing: .unconditional, help: "Image size: 32, 48 or 64.") var size = 32
    @Option(help: "Where to export the trained weights (config.json, unet/text_encoder safetensors).") var export = "Assets/toy"
    @Flag(help: "Ignore an existing checkpoint and start over.") var fresh = false
    @Option(parsing: .unconditional, help: "Stop at this step of the --steps schedule and export (a shorter run on the same LR schedule).") var stopAt: Int?
    @Flag(help: "Export the checkpoint's weights to --export without training (a snapshot of a running job).") var exportOnly = false
    @Flag(help: "With --export-only: export the raw weights instead of the EMA.") var raw = false
    @Flag(help: "Print the checkpoint's ε-prediction error per noise level on a held-out batch, then exit.") var diagnose = false
    @Option(help: "Start from the weights of an exported model folder (its config.json and safetensors) instead of random ones: fine-tuning. Ignored when a checkpoint is resumed.")
    var initFrom: String?
    @Option(help: "UNet widths per resolution level, comma-separated (default: the shipped 32,64,64; each a multiple of the 16 norm groups, at most 512). Ignored with --init-from; give the same value to resume.")
    var blockChannels: String?
    @Flag(help: "With --init-from: start from its UNet made twice as wide at every level, computing the same function (each channel split into two copies that training separates; ToyModel.widened).")
    var widen = false
    @Flag(help: "v1 captions: a single-object caption may name one object of several (the ablation; default: every caption names every object).")
    var partialCaptions = false

    func validate() throws {
        guard [32, 48, 64].contains(size) else { throw ValidationError("--size must be 32, 48 or 64") }
        guard steps >= 1 else { throw ValidationError("--steps must be ≥ 1") }
        guard batchSize >= 1 && batchSize <= 1024 else { throw ValidationError("--batch-size must be in 1…1024") }
        guard lr > 0 && lr < 1 else { throw ValidationError("--lr must be in (0, 1)") }
        guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be ≥ 1") }
        guard warmup >= 0 && warmup <= steps else { throw ValidationError("--warmup must be in 0…\(steps) (--steps)") }
        if widen && initFrom == nil { throw ValidationError("--widen widens the model of --init-from; give --init-from DIR") }
        if widen && blockChannels != nil { throw ValidationError("--widen sets the widths (twice --init-from's); leave out --block-channels") }
        if let blockChannels { _ = try TrainBase.parseBlockChannels(blockChannels, levels: ToyModelConfig.small.unet.block_out_channels.count) }
    }

    /// The widest UNet level `--block-channels` and `--widen` allow.
    static let maxWidth = 512

    /// The widths of `--block-channels`: `levels` whole numbers, multiples of the 16 norm groups, in 16…512.
    static func parseBlockChannels(_ text: String, levels: Int) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let groups = ToyModelConfig.small.unet.norm_num_groups
        let widths = parts.compactMap { Int($0) }
        guard parts.count == levels, widths.count == levels, widths.allSatisfy({ $0 >= groups && $0 <= maxWidth && $0 % groups == 0 }) else {
            throw ValidationError("--block-channels \(text): give \(levels) comma-separated widths, each a multiple of \(groups) in \(groups)…\(maxWidth) (the shipped model: 32,64,64)")
        }
        return widths
    }

    func run() throws {
        try common.apply()
        var modelConfig = ToyModelConfig.small
        modelConfig.image_size = size
        modelConfig.unet.sample_size = size
        if let blockChannels {
            modelConfig.unet.block_out_channels = try TrainBase.parseBlockChannels(blockChannels, levels: modelConfig.unet.block_out_channels.count)
        }
        var config = BaseTrainingConfig()
        config.steps = steps; config.batchSize = batchSize; config.learningRate = lr; config.warmupSteps = warmup
        config.seed = seed; config.checkpointEvery = checkpointEvery
        config.partialCaptions = partialCaptions ? true : nil
        let model: ToyModel
        if let initFrom {
            let loaded: ToyModel
            do { loaded = try ToyModel.load(directory: initFrom) } catch {
                throw ValidationError("--init-from \(initFrom): \(error)")
            }
            guard loaded.config.image_size == size else {
                throw ValidationError("--init-from \(initFrom) is a \(loaded.config.image_size)-px model; pass --size \(loaded.config.image_size)")
            }
            if widen {
                guard loaded.config.unet.block_out_channels.allSatisfy({ 2 * $0 <= TrainBase.maxWidth }) else {
                    throw ValidationError("--widen: \(initFrom)'s widths \(loaded.config.unet.block_out_channels) would pass \(TrainBase.maxWidth)")
                }
                model = try loaded.widened(seed: seed)
            } else {
                model = loaded
            }
        } else {
            model = try ToyModel(config: modelConfig, seed: seed)
        }
        if fresh { try? FileManager.default.removeItem(atPath: runDir + "/checkpoint.safetensors") }
        let trainer = try BaseTrainer(model: model, config: config, runDirectory: runDir)
        let resumed: Int
        do { resumed = try trainer.resumeIfPossible() } catch {
            throw ValidationError("cannot resume the checkpoint in \(runDir): \(error); give the --block-channels and --size it was started with, or --fresh to start over")
        }
        if diagnose {
            guard resumed > 0 else { throw ValidationError("no checkpoint in \(runDir) to diagnose") }
            if !raw { trainer.applyEMA() }
            print("step \(resumed) (\(raw ? "raw" : "EMA") weights): held-out ε MSE by timestep")
            for (t, mse) in trainer.lossByNoiseLevel() { print(String(format: "t=%4d  %.4f", t, mse)) }
            return
        }
        if exportOnly {
            guard resumed > 0 else { throw ValidationError("no checkpoint in \(runDir) to export") }
            if !raw { trainer.applyEMA() }
            try model.save(directory: export, metadata: ["seed": "\(seed)", "steps": "\(resumed)", "batch_size": "\(batchSize)"])
            note("exported \(raw ? "raw" : "EMA") weights of step \(resumed) to \(export)")
            return
        }
        note("train-base: seed \(seed), \(model.unet.parameterCount + model.textEncoder.parameterCount) parameters "
             + "(UNet \(model.unet.parameterCount), text \(model.textEncoder.parameterCount)), batch \(batchSize), "
             + "\(steps) steps, \(Threads.count) thread(s)" + (resumed > 0 ? ", resuming at step \(resumed)" : ""))
        installInterruptHandler()
        let bar = ProgressBar(total: stopAt ?? steps, label: "train-base", alreadyDone: resumed)
        if let stopAt, !(1...steps).contains(stopAt) { throw ValidationError("--stop-at must be in 1…\(steps)") }
        let end = stopAt ?? steps
        try trainer.run(stopAt: end, shouldStop: { interruptRequested != 0 }) { p in
            bar.update(p.step, detail: String(format: "loss %.4f (avg %.4f) lr %.2e %.2f it/s %.1f img/s%@",
                                              p.loss, p.smoothedLoss, p.learningRate, p.stepsPerSecond, p.imagesPerSecond,
                                              p.checkpointed ? " ✓ckpt" : ""))
        }
        bar.finish()
        if trainer.step < end {
            note("stopped at step \(trainer.step); checkpoint saved in \(runDir). Run the same command to resume.")
            throw ExitCode(130)
        }
        trainer.applyEMA()
        try model.save(directory: export, metadata: ["seed": "\(seed)", "steps": "\(end)", "schedule_steps": "\(steps)",
                                                     "batch_size": "\(batchSize)", "lr": "\(lr)", "init_from": (initFrom ?? "random") + (widen ? " (widened 2×)" : ""),
                                                     "captions": partialCaptions ? "v1" : "every-object"])
        note("exported EMA weights of step \(end) to \(export)")
    }
}
