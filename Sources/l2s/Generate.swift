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

/// `l2s generate`: one image (PNG + JSON sidecar), optionally steered.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate an image for a prompt (PNG plus a JSON sidecar with the seed and settings).")

    @OptionGroup var common: CommonOptions
    @OptionGroup var models: ModelOptions
    @OptionGroup var steering: SteeringOptions
    @Option(help: "The prompt, e.g. \"a red circle to the left of a blue square\".") var prompt: String
    @Option(parsing: .unconditional, help: "Random seed (printed and saved).") var seed: UInt64?
    @Option(help: "Negative prompt (the unconditional branch of classifier-free guidance).") var negativePrompt = ""
    @Option(parsing: .unconditional, help: "Denoising steps.") var steps: Int?
    @Option(name: .customLong("sampler"), help: "Sampler: ddim (default; the paper's, invertible), dpm++2m (DPM-Solver++ 2M: ~20 steps suffice) or euler.") var samplerKind: SamplerKind = .ddim
    @Option(parsing: .unconditional, help: "Classifier-free guidance scale.") var guidance: Float?
    @Option(help: "Output PNG path (a .json sidecar is written beside it).") var out: String?
    @Option(parsing: .unconditional, help: "Upscale the saved PNG by this integer factor (nearest neighbour) for viewing.") var upscale = 1
    @Option(help: "Write the whole event stream (steps with x̂₀ previews and, for the embedded model, the detector's reading of them; steering iterations with their maps) to this JSON file; `l2s replay FILE` opens it.") var trace: String?
    @Flag(help: "Also write the subject's and object's maps over the steered steps as one PNG strip per relation (<out>-maps-relN.png).") var maps = false

    func validate() throws {
        guard (1...64).contains(upscale) else { throw ValidationError("--upscale must be in 1…64") }
        if let steps, !SamplerSettings.stepRange.contains(steps) { throw ValidationError("--steps must be in \(SamplerSettings.stepRange.spelled)") }
        if let guidance, !SamplerSettings.guidanceRange.contains(guidance) { throw ValidationError("--guidance must be in \(SamplerSettings.guidanceRange.spelled)") }
        // The negative prompt is not parsed, but it is tokenised and saved in the sidecar: the
        // prompt's plain-text rules (length, no control characters) apply to it too.
        switch PromptParser.plainTextViolation(negativePrompt) {
        case .tooLong(let length)?:
            throw ValidationError("--negative-prompt is \(length) characters long; the limit is \(PromptParser.maxLength)")
        case .some:
            throw ValidationError("--negative-prompt contains control characters; use plain text")
        case nil:
            break
        }
    }

    func run() throws {
        try common.apply()
        let loaded = try models.load()
        let model = loaded.model
        let schedule = try steering.schedule(steps: steps ?? loaded.defaults.steps)
        let classifier = steering.steer && steering.loss == .learned ? try models.loadClassifier(required: true) : nil
        let seed = self.seed ?? UInt64.random(in: 0..<1_000_000)
        let settings = GenerationSettings(
            sampler: SamplerSettings(prompt: prompt, negativePrompt: negativePrompt, seed: seed, steps: steps ?? loaded.defaults.steps,
                                     guidanceScale: guidance ?? loaded.defaults.guidance, sampler: samplerKind),
            steering: schedule)
        let generator = SteeredGenerator(model: model, classifier: classifier, vocabulary: loaded.vocabulary)
        let outPath = out ?? "out/\(slug(prompt))-\(seed).png"
        let sidecarPath = (outPath as NSString).deletingPathExtension + ".json"
        note("seed \(seed)")
        let bar = ProgressBar(total: settings.steps, label: "generate")
        var traceEvents: [[String: Any]] = []
        var steerable: [Int] = []
        var stepTimes: [(step: Int, seconds: Double)] = []
        var asked: DetectorReading.Request?  // the toy detector's checklist (embedded model only)
        var strips: [Int: [MapStrip.Column]] = [:]
        var warnings: [String] = []
        let result: GenerationResult
        do {
            result = try generator.run(settings, onEvent: { event in
                switch event {
                case .parsed(let graph, let targets):
                    if schedule.mode != .off && targets.isEmpty { warnings.append("nothing to steer in this prompt; generating unsteered") }
                    steerable = targets.map(\.edge)
                    if trace != nil, loaded.toy != nil { asked = DetectorReading.Request(graph: graph) }
                    if trace != nil {
                        traceEvents.append(["event": "parsed", "graph": (try? JSONSerialization.jsonObject(with: Data(graph.jsonString().utf8))) ?? [:],
                                            "steerable": steerable])
                    }
                case .applied:
                    break  // no live edits on the command line: the run's own settings, recorded in the result
                case .iteration(let it):
                    if maps {
                        // The last iteration of a step wins (its maps are the step's final ones).
                        var cols = strips[it.edge] ?? []
                        if cols.last?.step == it.step { cols.removeLast() }
                        cols.append(MapStrip.Column(step: it.step, subject: it.subjectMap, object: it.objectMap))
                        strips[it.edge] = cols
                    }
                    if trace != nil {
                        traceEvents.append(RunTrace.iterationJSON(step: it.step, iteration: it.iteration, edge: it.edge,
                                                                  probabilities: it.probabilities, targetProbability: it.targetProbability,
                                                                  loss: it.loss, gradientNorm: it.gradientNorm, seconds: it.seconds, note: it.note,
                                                                  subjectMap: it.subjectMap, objectMap: it.objectMap, peaks: it.peaks))
                    }
                case .step(let s):
                    stepTimes.append((s.step, s.seconds))
                    bar.update(s.step + 1, detail: String(format: "t=%d %.2fs/step", s.timestep, s.seconds))
                    if trace != nil {
                        let preview = ImageFitter.thumbnail(RGBImage(firstImageOf: model.preview(s.predictedClean)))
                        traceEvents.append(RunTrace.stepJSON(step: s.step, totalSteps: s.totalSteps, timestep: s.timestep, seconds: s.seconds,
                                                             preview: preview,
                                                             detector: asked.map { DetectorReading.read(image: s.predictedClean, asked: $0) }))
                    }
                case .log(let line):
                    warnings.append(line)
                    if trace != nil { traceEvents.append(["event": "log", "message": line]) }
                }
            })
        } catch let e as PromptError {
            throw ValidationError(e.description)
        }
        for w in warnings { note("note: \(w)") }
        let image = result.image.reshaped(Array(result.image.shape.dropFirst()))
        let side = image.shape[1]
        let values = image.array
        var rgb = imageToRGB8(values, width: image.shape[2], height: side)
        let finalImage = RGBImage(width: image.shape[2], height: side, pixels: rgb)
        let defect = imageDefect(values: values, rgb: rgb)
        if upscale > 1 { rgb = upscaleNearest(rgb: rgb, width: side, height: side, factor: upscale) }
        let ran = result.applied.last?.settings ?? settings
        var sidecar = Sidecar(settings: ran, applied: result.applied, graph: result.graph, steerable: steerable, steps: stepTimes,
                              iterations: result.iterations, model: loaded.name, modelHash: model.weightsHash,
                              image: (outPath as NSString).lastPathComponent, seconds: result.seconds,
                              upscale: upscale > 1 ? upscale : nil)
        sidecar.defect = defect
        sidecar.trace = trace
        // PNG, sidecar and trace are one group: all three replace what was there, or none does.
        var files: [(path: String, data: Data)] = [
            (outPath, try encodePNG(rgb: rgb, width: side * upscale, height: side * upscale)),
            (sidecarPath, sidecar.json()),
        ]
        if let trace {
            var top = RunTrace.header(ran)
            top["events"] = traceEvents + [["event": "final", "image": RunTrace.imageJSON(finalImage), "seconds": result.seconds]]
            files.append((trace, try JSONSerialization.data(withJSONObject: top, options: [.sortedKeys])))
        }
        do { try writeFilesAtomically(files, createDirectories: true) } catch let e as OutputWriteError { throw RuntimeError(e.description) }
        if let defect {
            throw RuntimeError("the image is \(defect); wrote \(outPath) for inspection, flagged \"defect\" in its sidecar", exitCode: 3)
        }
        for (edge, columns) in strips.sorted(by: { $0.key < $1.key }) {
            let path = (outPath as NSString).deletingPathExtension + "-maps-rel\(edge + 1).png"
            if try MapStrip.write(columns, to: path) { note("wrote \(path) (\(columns.count) steered steps: subject above, object below)") }
        }
        if maps && strips.isEmpty { note("note: no steered step evaluated a relation, so there are no maps to write") }
        print(outPath)
        note(String(format: "wrote %@ and %@ (%.1f s)", outPath, sidecarPath, result.seconds))
    }
}

/// A file-name-safe short form of a prompt.
func slug(_ text: String) -> String {
    let s = text.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }
    return String(String(s).split(separator: "-").joined(separator: "-").prefix(60))
}

extension SamplerKind: ExpressibleByArgument {}
