import ArgumentParser
import Foundation
import Tensors
import Diffusion

/// `l2s verify --against DIR`: parity of a Stable Diffusion folder with diffusers/transformers reference
/// outputs (Scripts/make_sd_fixtures.py --full DIR writes the folder and its reference for the real
/// SD 1.5 / SD 2.1-base configs with random weights).
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a diffusers folder against reference outputs recorded with diffusers (max-abs error per component).",
        discussion: """
        DIR holds a diffusers folder and reference.safetensors (or give --model and --reference separately). \
        Prints, per component (token ids, text encoder, UNet, one layer's cross-attention probabilities, VAE \
        decode and encode, 3 DDIM steps with CFG, decoded image), max |ours − reference| / max(1, max |reference|) \
        and exits 1 when any exceeds --tolerance.
        """)

    @OptionGroup var common: CommonOptions
    @Option(help: "Directory with model/ (a diffusers folder) and reference.safetensors.") var against: String?
    @Option(help: "The diffusers folder (default: DIR/model).") var model: String?
    @Option(help: "The reference outputs (default: DIR/reference.safetensors).") var reference: String?
    @Option(parsing: .unconditional, help: "Largest allowed error relative to the output's scale.") var tolerance: Float = 1e-4
    @Flag(help: "Load the folder's .fp16.safetensors weights (computed in fp32).") var fp16 = false

    func run() throws {
        try common.apply()
        guard let folder = model ?? against.map({ $0 + "/model" }), let refPath = reference ?? against.map({ $0 + "/reference.safetensors" }) else {
            throw ValidationError("give --against DIR (or --model and --reference)")
        }
        guard FileManager.default.fileExists(atPath: refPath) else { throw ValidationError("no reference outputs at \(refPath)") }
        let start = Date()
        let sd: StableDiffusionModel
        do { sd = try StableDiffusionModel(path: folder, preferFP16: fp16) } catch { throw ValidationError("\(error)") }
        let ref: SafetensorsFile
        do { ref = try SafetensorsFile(path: refPath) } catch { throw ValidationError("\(refPath): \(error)") }
        note(String(format: "loaded %@ in %.1f s; reference %@ (%@)", folder, Date().timeIntervalSince(start), refPath,
                    ref.metadata["config"] ?? ref.metadata["script"] ?? "no metadata"))
        print("component                                   error/scale   result   seconds (cumulative per group)")
        let results = try ParityCheck(model: sd, reference: ref, tolerance: tolerance).run { r in
            let e = r.error.map { String(format: "%.2e", $0) } ?? "exact"
            let name = r.component.count > 44 ? String(r.component.prefix(43)) + "…" : r.component.padding(toLength: 44, withPad: " ", startingAt: 0)
            print(name + e.padding(toLength: 11, withPad: " ", startingAt: 0) + "   " + (r.passed ? "ok  " : "FAIL") + String(format: "   %7.1f", r.seconds))
        }
        let failed = results.filter { !$0.passed }
        if failed.isEmpty {
            print("all \(results.count) components within \(tolerance)")
        } else {
            note("\(failed.count) of \(results.count) components exceed \(tolerance): " + failed.map(\.component).joined(separator: ", "))
            throw ExitCode(1)
        }
    }
}
