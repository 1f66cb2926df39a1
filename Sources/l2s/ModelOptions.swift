import ArgumentParser
import Foundation
import Formats
import Tensors
import Diffusion
import Steering
import ToyWorld
import ToyBench

/// Which model and classifier to use (shared by generate, eval, build-dataset, …).
struct ModelOptions: ParsableArguments {
    @Option(help: "Directory of the embedded model's weights, holding toy/ (default: $L2S_ASSETS, else Assets/ beside the program, its install prefix's share/l2s/Assets, or ./Assets).")
    var assets: String?
    @Option(help: "A Stable Diffusion 1.x/2.x diffusers folder (instead of the embedded model).")
    var model: String?
    @Option(parsing: .unconditional, help: "Image size for --model: a multiple of 64 in 64…1024, e.g. 256 or 512 (default: the model's own).")
    var size: Int?
    @Flag(help: "With --model: prefer the folder's .fp16.safetensors weights (computed in fp32).")
    var fp16 = false
    @Option(help: "Relation classifier weights (default: classifier.safetensors in the model's assets).")
    var classifier: String?

    /// Checked when the command line is parsed, before any weights are read.
    func validate() throws {
        if let size, !(size % 64 == 0 && size >= 64 && size <= 1024) {
            throw ValidationError("--size must be a multiple of 64 in 64…1024 (presets 256, 512)")
        }
    }

    /// Which model the flags name.
    var source: ModelProfile.Source {
        model.map { .stableDiffusion(path: $0, fp16: fp16, size: size) } ?? .embedded(assets: assets)
    }

    /// Loads the embedded toy model or, with --model, a Stable Diffusion folder; a missing, invalid
    /// or damaged model is bad input (exit 64).
    func load() throws -> ModelProfile {
        if model == nil && size != nil { throw ValidationError("--size applies to --model folders; the embedded model is 32×32") }
        do { return try ModelProfile.load(source) } catch { throw ValidationError("\(error)") }
    }

    /// Loads the embedded toy model (commands that need its world: eval, build-dataset).
    func loadToy(for command: String) throws -> ToyModel {
        if model != nil { throw ValidationError("\(command) works on the embedded model only (it needs the toy world's renderer and detector)") }
        guard let toy = try load().toy else { throw ValidationError("\(command) works on the embedded model only") }
        return toy
    }

    /// The classifier if one is available (nil when `required` is false and none is found).
    func loadClassifier(required: Bool) throws -> RelationClassifier? {
        let path = classifier ?? (model == nil ? AssetLocator.toyDirectory(override: assets).map { $0 + "/classifier.safetensors" } : nil)
        guard let path, FileManager.default.fileExists(atPath: path) else {
            if required { throw ValidationError("no relation classifier found (looked for \(path ?? "--classifier")); train one with `l2s train-classifier` or use --loss handcrafted") }
            return nil
        }
        return try RelationClassifier.load(path: path)
    }

}

/// Steering flags shared by generate and eval.
struct SteeringOptions: ParsableArguments {
    @Flag(help: "Steer toward the prompt's relations (Learn-to-Steer).") var steer = false
    @Option(help: "Loss that judges the arrangement: learned (the relation classifier), handcrafted (map centroids) or presence (only the objects' attention peaks, no relation term).")
    var loss: SteeringLoss = .learned
    @Option(parsing: .unconditional, help: "Steered steps as start:end (end exclusive), e.g. 0:25 (default: the first half of the steps, 0:8 of 15).") var steerSteps: String?
    @Option(help: "Update rule: normalized (step = update RMS) or plain (z -= s·grad, the paper's).") var update: SteeringUpdate = .normalized
    @Option(parsing: .unconditional, help: "Step size (update RMS for normalized; s for plain; the paper uses 5–7.5).") var stepSize: Float?
    @Option(parsing: .unconditional, help: "Maximum refinement iterations per steered step (the paper: 16).") var iterations: Int?
    @Option(parsing: .unconditional, help: "Stop a step's refinement once p(target) reaches this.") var probabilityTarget: Float?
    @Flag(help: "The paper's settings: plain step 5, 16 iterations, near-zero loss targets.") var paper = false
    @Option(parsing: .unconditional, help: "Weight of the object-presence term added to the relation loss (0…100; 0 = relation only). With it a step's refinement also goes on while an object's attention peak is below --presence-floor.") var presenceWeight: Float?
    @Option(parsing: .unconditional, help: "Attention peak below which an object counts as absent (0…1).") var presenceFloor: Float?

    /// Flags are checked before any model loads (the range default needs the model's step count).
    func validate() throws { _ = try schedule(steps: SamplerSettings.stepRange.upperBound) }

    /// The steering settings for a run of `steps` denoising steps (which sets the default range).
    func schedule(steps: Int) throws -> SteeringSettings {
        var s = paper ? SteeringSettings.paper : SteeringSettings()
        s.mode = steer ? .steer : .off
        s.loss = loss
        if !paper { s.update = update }
        if let steerSteps {
            let parts = steerSteps.split(separator: ":")
            guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, b >= a else {
                throw ValidationError("--steer-steps must look like 0:25 (start ≤ end)")
            }
            s.startStep = a; s.endStep = b
        } else {
            s.startStep = 0; s.endStep = SteeringSettings.defaultEnd(steps: steps)
        }
        if let stepSize {
            // Bounded: a normalized step is the update's RMS in latent units (latents have RMS ≈ 1), and the
            // paper's plain steps are 5–7.5; larger values only blow the latent up (1e30 gave a black image).
            let limit = s.maxStepSize
            guard stepSize.isFinite && stepSize >= 0 && stepSize <= limit else {
                throw ValidationError("--step-size must be in 0…\(Int(limit)) for --update \(s.update.rawValue) (got \(stepSize))")
            }
            s.stepSizes = [stepSize]
        }
        if let iterations {
            guard SteeringSettings.iterationRange.contains(iterations) else { throw ValidationError("--iterations must be in \(SteeringSettings.iterationRange.spelled)") }
            s.maxIterations = iterations
        }
        if let probabilityTarget {
            guard SteeringSettings.probabilityTargetRange.contains(probabilityTarget) else { throw ValidationError("--probability-target must be in \(SteeringSettings.probabilityTargetRange.spelled)") }
            s.probabilityTarget = probabilityTarget
        }
        if let presenceWeight {
            guard SteeringSettings.presenceWeightRange.contains(presenceWeight) else { throw ValidationError("--presence-weight must be in \(SteeringSettings.presenceWeightRange.spelled)") }
            s.presenceWeight = presenceWeight
        }
        if let presenceFloor {
            guard SteeringSettings.presenceFloorRange.contains(presenceFloor) else { throw ValidationError("--presence-floor must be in \(SteeringSettings.presenceFloorRange.spelled)") }
            s.presenceFloor = presenceFloor
        }
        if let m = s.validationError() { throw ValidationError(m) }
        return s
    }
}

extension SteeringLoss: ExpressibleByArgument {}
extension SteeringUpdate: ExpressibleByArgument {}
