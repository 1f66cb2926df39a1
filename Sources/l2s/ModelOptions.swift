import ArgumentParser
import Foundation
import Tensors
import Diffusion
import Steering
import ToyWorld

/// Which model and classifier to use (shared by generate, eval, invert, …).
struct ModelOptions: ParsableArguments {
    @Option(help: "Directory of the embedded model's weights (default: Assets/toy next to the program or in the current directory).")
    var assets: String?
    @Option(help: "A Stable Diffusion 1.x/2.x diffusers folder (not supported yet).")
    var model: String?
    @Option(help: "Relation classifier weights (default: classifier.safetensors in the model's assets).")
    var classifier: String?

    /// Loads the embedded toy model.
    func loadModel() throws -> ToyModel {
        if let model { throw ValidationError("--model \(model): Stable Diffusion folders are not supported yet; use the embedded model") }
        return try ToyModel.loadEmbedded(assets: assets)
    }

    /// The classifier if one is available (nil when `required` is false and none is found).
    func loadClassifier(required: Bool) throws -> RelationClassifier? {
        let path = classifier ?? AssetLocator.toyDirectory(override: assets).map { $0 + "/classifier.safetensors" }
        guard let path, FileManager.default.fileExists(atPath: path) else {
            if required { throw ValidationError("no relation classifier found (looked for \(path ?? "Assets/toy/classifier.safetensors")); train one with `l2s train-classifier` or use --loss handcrafted") }
            return nil
        }
        return try RelationClassifier.load(path: path)
    }

    /// The toy world's object names, for checking prompts.
    static var toyVocabulary: ObjectVocabulary { ObjectVocabulary(Catalogue.classes.map(\.name)) }
}

/// Steering flags shared by generate and eval.
struct SteeringOptions: ParsableArguments {
    @Flag(help: "Steer toward the prompt's relations (Learn-to-Steer).") var steer = false
    @Option(help: "Loss that judges the arrangement: learned (the relation classifier) or handcrafted (map centroids).")
    var loss: SteeringLoss = .learned
    @Option(help: "Steered steps as start:end (end exclusive), e.g. 0:25.") var steerSteps = "0:25"
    @Option(help: "Update rule: normalized (step = update RMS) or plain (z -= s·grad, the paper's).") var update: SteeringUpdate = .normalized
    @Option(help: "Step size (update RMS for normalized; s for plain; the paper uses 5–7.5).") var stepSize: Float?
    @Option(help: "Maximum refinement iterations per steered step (the paper: 16).") var iterations: Int?
    @Option(help: "Stop a step's refinement once p(target) reaches this.") var probabilityTarget: Float?
    @Flag(help: "The paper's settings: plain step 5, 16 iterations, near-zero loss targets.") var paper = false

    func schedule() throws -> SteeringSchedule {
        var s = paper ? SteeringSchedule.paper : SteeringSchedule()
        s.enabled = steer
        s.loss = loss
        if !paper { s.update = update }
        let parts = steerSteps.split(separator: ":")
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, b >= a else {
            throw ValidationError("--steer-steps must look like 0:25 (start ≤ end)")
        }
        s.startStep = a; s.endStep = b
        if let stepSize {
            guard stepSize.isFinite && stepSize >= 0 else { throw ValidationError("--step-size must be ≥ 0") }
            s.stepSizes = [stepSize]
        }
        if let iterations {
            guard (0...100).contains(iterations) else { throw ValidationError("--iterations must be in 0…100") }
            s.maxIterations = iterations
        }
        if let probabilityTarget {
            guard (0...1).contains(probabilityTarget) else { throw ValidationError("--probability-target must be in 0…1") }
            s.probabilityTarget = probabilityTarget
        }
        if let m = s.validationError() { throw ValidationError(m) }
        return s
    }
}

extension SteeringLoss: ExpressibleByArgument {}
extension SteeringUpdate: ExpressibleByArgument {}
