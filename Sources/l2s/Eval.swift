import ArgumentParser
import Foundation
import Relations
import ToyBench
import Imaging
import Formats
import Tensors
import Diffusion
import Steering
import ToyWorld
import Workbench

/// `l2s eval`: object presence and GenEval-position accuracy on a prompt × seed grid.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure object presence and spatial accuracy (GenEval position rule) with the toy detector.",
        discussion: """
        Default prompts: every ordered pair of the 8 toy classes × 4 relations (224 prompts). Use --shard i/n
        to run one slice of the prompt × seed grid, or --shard auto inside a Slurm job array or a Kubernetes
        Indexed Job (SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with L2S_SHARD_COUNT),
        and `l2s eval merge` to combine them (it checks that every shard is there exactly once and complete).
        A shard's --out file is resumable: run the same command again and it continues where it stopped.
        """,
        subcommands: [EvalRun.self, EvalMerge.self],
        defaultSubcommand: EvalRun.self)
}

struct EvalRun: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Generate and judge (the default).")

    @OptionGroup var common: CommonOptions
    @OptionGroup var models: ModelOptions
    @OptionGroup var steering: SteeringOptions
    @Option(help: "Prompt file, one prompt per line (default: the --preset list).") var prompts: String?
    @Option(help: "Built-in prompt list: pairs (8×7 ordered class pairs × 4 relations = 224) or chains (200 three-object prompts with two relations).")
    var preset = "pairs"
    @Option(parsing: .unconditional, help: "Seeds per prompt (every image has its own seed: first-seed + its index in the grid, so no two prompts start from the same noise).") var seeds = 1
    @Option(parsing: .unconditional, help: "Seed of the first image; image i of the grid uses first-seed + i.") var firstSeed: UInt64 = 0
    @Option(parsing: .unconditional, help: "Use only the first N prompts.") var limit: Int?
    @Option(name: .customLong("sampler"), help: "Sampler: ddim (default), dpm++2m or euler.") var samplerKind: SamplerKind = .ddim
    @Option(help: "Run shard i of n (i/n, 0-based), or auto: the shard the Slurm array or Kubernetes Indexed Job gives this task.") var shard: String?
    @Option(parsing: .unconditional, help: "Denoising steps.") var steps: Int?
    @Option(parsing: .unconditional, help: "Guidance scale.") var guidance: Float?
    @Option(help: "Write one JSON record per image to this file (JSON lines).") var out: String?
    @Flag(help: "Run base and steered on the same prompts and seeds (two records per case).") var compare = false
    @Option(help: "Name of the steered rows (default steered-<loss>), e.g. to tell two classifiers apart.") var label: String?

    func validate() throws {
        guard (1...10_000).contains(seeds) else { throw ValidationError("--seeds must be in 1…10000") }
        guard ["pairs", "chains"].contains(preset) else { throw ValidationError("--preset must be pairs or chains") }
        if let shard {
            do { _ = try EvalGrid.resolveShard(shard, environment: ProcessInfo.processInfo.environment) } catch let e as ShardError {
                throw ValidationError(e.message)
            }
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be ≥ 1") }
    }

    func run() throws {
        try common.apply()
        let model = try models.loadToy(for: "eval")
        // The run's sampling settings, the model's defaults where not given (the steered range follows the steps).
        let runSteps = steps ?? model.config.default_steps, runGuidance = guidance ?? model.config.default_guidance
        var schedule = try steering.schedule(steps: runSteps)
        let wantsSteer = steering.steer || compare
        if compare { schedule.mode = .steer }
        let classifier = wantsSteer && schedule.loss == .learned ? try models.loadClassifier(required: true) : nil
        var list = try prompts.map(readPromptFile) ?? (preset == "chains" ? ToyEval.chainPrompts() : ToyEval.defaultPrompts())
        if let limit { list = Array(list.prefix(limit)) }
        var cases = EvalGrid.cases(prompts: list, seeds: seeds, firstSeed: firstSeed)
        let grid = cases.count
        let (shardIndex, shardCount) = try shard.map { try EvalGrid.resolveShard($0, environment: ProcessInfo.processInfo.environment) } ?? (0, 1)
        cases = EvalGrid.shard(cases, index: shardIndex, count: shardCount)
        let steeredName = label ?? "steered-\(schedule.loss.rawValue)"
        let modes: [(String, Bool)] = compare ? [("base", false), (steeredName, true)]
                                              : [(schedule.mode == .steer ? steeredName : "base", schedule.mode == .steer)]
        let shardName = "\(shardIndex)/\(shardCount)"
        let fingerprint = ToyEval.runFingerprint(prompts: list + ["seeds \(seeds) from \(firstSeed), one per image"], modes: modes.map(\.0), schedule: schedule, modelHash: model.weightsHash,
                                         steps: runSteps, guidance: runGuidance, sampler: samplerKind)
        // An existing --out of the same run and shard is resumed: its records are kept and their cases skipped.
        var records: [EvalRecord] = []
        if let out, FileManager.default.fileExists(atPath: out) {
            let existing: [EvalRecord]
            do { existing = try EvalRecords.readForResume(out) } catch { throw ValidationError("\(error)") }
            if let other = existing.first(where: { $0.shard != shardName || $0.grid != grid || $0.run != fingerprint }) {
                throw ValidationError("\(out) holds records of another run (shard \(other.shard ?? "none"), grid \(other.grid.map(String.init) ?? "?")) or other settings; remove it or choose another --out")
            }
            records = existing
            if !existing.isEmpty { note("resuming \(out): \(existing.count) of \(cases.count * modes.count) records already there") }
        }
        let done = Set(records.map { "\($0.mode)#\($0.index)" })
        let handle: FileHandle? = try out.map { path in
            if !FileManager.default.fileExists(atPath: path) {
                let dir = (path as NSString).deletingLastPathComponent
                if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
                _ = FileManager.default.createFile(atPath: path, contents: nil)
            }
            guard let h = FileHandle(forWritingAtPath: path) else { throw ValidationError("cannot write \(path)") }
            _ = try h.seekToEnd()
            return h
        }
        let generator = SteeredGenerator(model: model, classifier: classifier, vocabulary: ModelProfile.toyVocabulary)
        let bar = ProgressBar(total: cases.count * modes.count, label: "eval", alreadyDone: records.count)
        installInterruptHandler()
        for c in cases {
            for (mode, steer) in modes {
                if interruptRequested != 0 { break }
                if done.contains("\(mode)#\(c.index)") { continue }
                var s = schedule
                s.mode = steer ? .steer : .off
                let settings = GenerationSettings(
                    sampler: SamplerSettings(prompt: c.prompt, seed: c.seed, steps: runSteps, guidanceScale: runGuidance, sampler: samplerKind),
                    steering: s)
                var record = try judge(generator: generator, case: c, mode: mode, settings: settings)
                record.shard = shardName; record.grid = grid; record.run = fingerprint
                records.append(record)
                if let handle { try EvalRecords.append(record, to: handle) }
                let summary = EvalSummary(records: records)
                bar.update(records.count, detail: String(format: "presence %.2f accuracy %.2f", summary.presence, summary.accuracy))
            }
        }
        try handle?.synchronize()
        try handle?.close()
        printSummary(records)
        if interruptRequested != 0 { note("interrupted: \(records.count) records written"); throw ExitCode(130) }
    }

    func judge(generator: SteeredGenerator, case c: EvalCase, mode: String, settings: GenerationSettings) throws -> EvalRecord {
        var lastProbability: [Int: Float] = [:]
        let result: GenerationResult
        do {
            result = try generator.run(settings, onEvent: { event in
                if case .iteration(let it) = event { lastProbability[it.edge] = it.targetProbability }
            })
        } catch let e as PromptError {
            throw ValidationError("prompt \(c.index + 1) \"\(c.prompt)\": \(e.description)")
        }
        let image = result.image.reshaped(Array(result.image.shape.dropFirst()))
        let detector = Detector()
        var record = ToyEval.record(case: c, mode: mode, graph: result.graph, detections: detector.detect(image: image),
                                 seconds: result.seconds,
                                 probabilities: lastProbability.isEmpty ? nil : lastProbability.keys.sorted().map { lastProbability[$0]! })
        record.setInstances(ToyEval.instanceCounts(detector.instances(image: image)),
                            named: result.graph.objects.map { $0.vocabularyName ?? $0.name })
        let values = image.array
        if let defect = imageDefect(values: values, rgb: imageToRGB8(values, width: image.shape[2], height: image.shape[1])) {
            record.defect = defect
            note("warning: prompt \(c.index + 1) seed \(c.seed) (\(mode)): the image is \(defect); its record has \"defect\"")
        }
        return record
    }

    func readPromptFile(_ path: String) throws -> [String] {
        let text: [String]
        do { text = try TextLines.read(path: path) } catch let e as TextFileError { throw ValidationError(e.description) }
        let lines = text.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !lines.isEmpty else { throw ValidationError("\(path) has no prompts") }
        return lines
    }
}

struct EvalMerge: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "merge", abstract: "Combine shard files and print the summary.")
    @Argument(help: "JSON-lines files written by `l2s eval --out`.") var files: [String]
    @Option(help: "Write the merged records here.") var out: String?

    func validate() throws { if files.isEmpty { throw ValidationError("give at least one file") } }

    func run() throws {
        let merged: [EvalRecord]
        do { merged = try EvalRecords.mergeShards(files.map { ($0, try EvalRecords.read($0)) }) } catch let e as EvalError {
            throw RuntimeError(e.description)
        }
        if let out {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            var data = Data()
            for r in merged { data.append(try enc.encode(r)); data.append(0x0A) }
            do { try writeFilesAtomically([(out, data)]) } catch let e as OutputWriteError { throw RuntimeError(e.description) }
        }
        printSummary(merged)
    }
}

/// Prints a per-mode summary table.
func printSummary(_ records: [EvalRecord]) {
    let modes = Array(Set(records.map(\.mode))).sorted()
    print("mode                     images  presence  accuracy  exact  dup.   unasked  left   right  above  below  s/image")
    var base: Double?
    for mode in modes {
        let s = EvalSummary(records: records.filter { $0.mode == mode })
        func fmt(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "  -  " }
        print(String(format: "%-24@ %6d  %8.3f  %8.3f  %@  %@  %@    %@  %@  %@  %@  %7.2f", mode as NSString, s.images,
                     s.presence, s.accuracy, fmt(s.exact), fmt(s.duplicate), fmt(s.unasked), fmt(s.perRelation["left of"]),
                     fmt(s.perRelation["right of"]), fmt(s.perRelation["above"]), fmt(s.perRelation["below"]), s.meanSeconds))
        if mode == "base" { base = s.meanSeconds }
    }
    if let base, modes.count > 1 {
        for mode in modes where mode != "base" {
            let s = EvalSummary(records: records.filter { $0.mode == mode })
            print(String(format: "time %@ ÷ base: %.2f×", mode, s.meanSeconds / base))
        }
    }
}
