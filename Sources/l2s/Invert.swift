import ArgumentParser
import Foundation
import ToyBench
import Imaging
import Tensors
import Diffusion
import Steering
import ToyWorld

/// `l2s invert`: DDIM inversion of an image (or rendered toy scenes) under a prompt, then DDIM
/// reconstruction from the inverted latent; reports the reconstruction PSNR — the quality gate the
/// inversion data source uses — and optionally writes the reconstruction.
struct Invert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invert",
        abstract: "DDIM-invert an image under a prompt and reconstruct it; print the reconstruction PSNR.",
        discussion: """
        With --image and --prompt: one PNG, center-cropped and resized to the model's size (VAE-encoded with \
        --model). Without --image (embedded model only): --scenes rendered two-object scenes with their \
        true-relation captions, the images the dataset builder inverts; prints each PSNR and the share above \
        --psnr-gate.
        """)

    @OptionGroup var common: CommonOptions
    @OptionGroup var models: ModelOptions
    @Option(help: "PNG to invert (center-cropped and resized to the model's size).") var image: String?
    @Option(help: "Prompt for the inversion (with --image).") var prompt: String?
    @Option(parsing: .unconditional, help: "Without --image: number of rendered toy scenes.") var scenes = 8
    @Option(parsing: .unconditional, help: "Seed of the rendered scenes.") var seed: UInt64 = 1
    @Option(parsing: .unconditional, help: "Denoising steps of the schedule (default: 50, the schedule the classifier's data are inverted along).") var steps: Int?
    @Option(parsing: .unconditional, help: "Invert up to this step index (0 = the noisiest).") var fromStep = 0
    @Option(parsing: .unconditional, help: "Fixed-point iterations per inversion step.") var fixedPoint = 0
    @Option(parsing: .unconditional, help: "PSNR gate in dB (the share of reconstructions above it is reported).") var psnrGate = 20.0
    @Option(help: "Write the reconstruction (the first one with --scenes) to this PNG.") var out: String?

    func run() throws {
        try common.apply()
        let loaded = try models.load()
        let model = loaded.model
        let steps = self.steps ?? RelationClassifierConfig().num_timesteps
        guard steps >= 1 && steps <= 1000 else { throw ValidationError("--steps must be in 1…1000") }
        guard fromStep >= 0 && fromStep < steps else { throw ValidationError("--from-step must be in 0..<\(steps)") }
        guard fixedPoint >= 0 && fixedPoint <= 50 else { throw ValidationError("--fixed-point must be in 0…50") }

        var cases: [(name: String, latent: Tensor, prompt: String)] = []
        if let image {
            guard let prompt, !prompt.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--image needs --prompt") }
            let latent = try imageLatent(path: image, model: loaded, context: "--image")
            cases.append((image, latent, prompt))
        } else {
            guard let toy = loaded.toy else { throw ValidationError("with --model, give --image and --prompt") }
            guard scenes >= 1 && scenes <= 10_000 else { throw ValidationError("--scenes must be in 1…10000") }
            for e in ToyEval.relationExamples(count: scenes, seed: seed, size: toy.config.image_size) {
                cases.append(("scene \(e.id)", e.latent, e.positivePrompt))
            }
        }

        let inversion = Inversion(model: model, fixedPointIterations: fixedPoint)
        let t = model.schedulerConfig.timesteps(steps: steps)[fromStep]
        print("inverting to step \(fromStep) of \(steps) (t = \(t)), \(fixedPoint) fixed-point iterations per step")
        var values: [Double] = []
        let start = Date()
        for (k, c) in cases.enumerated() {
            let context = model.encode([c.prompt])
            let (reconstruction, quality) = inversion.roundTrip(c.latent, context: context, steps: steps, from: fromStep)
            values.append(quality)
            print(String(format: "%@: PSNR %.2f dB  \"%@\"", c.name, quality, c.prompt))
            if k == 0, let out {
                let pixels = noGrad { model.decode(reconstruction) }
                let s = pixels.shape
                try writePNG(rgb: imageToRGB8(pixels.reshaped([3, s[2], s[3]])), width: s[3], height: s[2], to: out)
            }
        }
        let seconds = Date().timeIntervalSince(start)
        let sorted = values.sorted()
        let passed = values.filter { $0 >= psnrGate }.count
        print(String(format: "%d image(s): mean PSNR %.2f dB, median %.2f, min %.2f; %d/%d ≥ %.1f dB; %.2f s per image",
                     values.count, values.reduce(0, +) / Double(values.count), sorted[sorted.count / 2], sorted[0],
                     passed, values.count, psnrGate, seconds / Double(values.count)))
    }
}
