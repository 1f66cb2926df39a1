// Opening a model: the one loader the CLI and the workbench share. A profile is a model with the
// generation defaults and the object vocabulary that suit it — the embedded toy model (its
// config.json says its steps and guidance; it draws the toy world's catalogue) or a Stable
// Diffusion 1.x/2.x folder (open vocabulary, 50 steps, CFG 7.5).

import Foundation
import Relations
import Diffusion
import Steering
import ToyWorld

public struct ModelProfile {
    /// Which model to open.
    public enum Source: Sendable, Equatable {
        /// The embedded toy model in `assets` (nil: `AssetLocator`'s search).
        case embedded(assets: String?)
        /// A diffusers folder; `fp16` prefers its .fp16 weights; `size` is the image side in pixels (nil: the model's own).
        case stableDiffusion(path: String, fp16: Bool, size: Int?)
    }

    public let model: TextToImageModel
    /// "toy" or "stable-diffusion" (sidecars and eval records name the model so).
    public let name: String
    /// Steps and guidance that suit the model (seed 1, empty prompt).
    public let defaults: GenerationSettings
    /// The objects the model can draw (nil: any).
    public let vocabulary: ObjectVocabulary?
    public var toy: ToyModel? { model as? ToyModel }

    /// The toy world's object names, for checking prompts.
    public static var toyVocabulary: ObjectVocabulary { ObjectVocabulary(Catalogue.classes.map(\.name)) }

    /// Loads the model's weights (seconds for Stable Diffusion on a CPU).
    public static func load(_ source: Source) throws -> ModelProfile {
        switch source {
        case .embedded(let assets):
            let toy = try ToyModel.loadEmbedded(assets: assets)
            return ModelProfile(model: toy, name: "toy", defaults: defaults(steps: toy.config.default_steps, guidance: toy.config.default_guidance),
                                vocabulary: toyVocabulary)
        case .stableDiffusion(let path, let fp16, let size):
            // The latent side for `size` needs the VAE's factor, known once the folder's configs are read.
            let factor = size == nil ? 1 : try ModelFolder(path: path, preferFP16: fp16).vaeConfig.downscale
            let sd = try StableDiffusionModel(path: path, preferFP16: fp16, latentSize: size.map { $0 / factor })
            return ModelProfile(model: sd, name: "stable-diffusion", defaults: stableDiffusionDefaults, vocabulary: nil)
        }
    }

    /// The defaults of `source` without loading weights (the toy model's config.json is tiny), for a
    /// UI that is up while the weights load.
    public static func defaults(of source: Source) -> GenerationSettings {
        switch source {
        case .embedded(let assets):
            let config = AssetLocator.toyDirectory(override: assets).flatMap { try? ToyModelConfig.load(jsonFile: $0 + "/config.json") }
            return defaults(steps: config?.default_steps ?? ToyModelConfig.small.default_steps,
                            guidance: config?.default_guidance ?? ToyModelConfig.small.default_guidance)
        case .stableDiffusion:
            return stableDiffusionDefaults
        }
    }

    /// The vocabulary of `source` (known without loading weights).
    public static func vocabulary(of source: Source) -> ObjectVocabulary? {
        if case .embedded = source { return toyVocabulary }
        return nil
    }

    static var stableDiffusionDefaults: GenerationSettings { defaults(steps: 50, guidance: 7.5) }

    static func defaults(steps: Int, guidance: Float) -> GenerationSettings {
        var d = GenerationSettings()
        d.steps = steps
        d.guidance = guidance
        d.steering.endStep = SteeringSettings.defaultEnd(steps: steps)
        d.seed = 1
        return d
    }
}
