// `l2s` with no subcommand: the terminal workbench (Sources/Workbench) on the embedded toy model, a
// Stable Diffusion folder (--model), or the scripted demo engine (--demo).

import ArgumentParser
import Foundation
import Workbench
import Steering
import ToyWorld
#if canImport(Glibc)
import Glibc
#endif

/// The root command's workbench options.
struct TUIOptions {
    /// The model to open (nil for a replay, which needs none).
    var models: ModelOptions?
    var demo: Bool
    var noColor: Bool
    var ascii: Bool
    var log: String?
    var upscale: Int?
    var graphics: GraphicsChoice = .auto
}

/// Starts the workbench (on `replay`'s recording instead of a model when given); exits 2 when there
/// is no terminal or an option is not supported.
func runWorkbench(_ o: TUIOptions, replay: RunTrace.Recording? = nil) throws {
    if let path = o.models?.model { try checkDiffusersFolder(path) }
    guard isatty(0) == 1, isatty(1) == 1 else {
        FileHandle.standardError.write(Data("l2s: the workbench needs an interactive terminal (stdin and stdout must be a tty); see `l2s --help` for the subcommands.\n".utf8))
        throw ExitCode(2)
    }
    let env = ProcessInfo.processInfo.environment
    let engine: EngineChoice
    if let replay {
        engine = .replay(replay)
    } else if o.demo {
        // L2S_DEMO_STEP_MS slows or speeds the scripted engine (the tmux tests use it).
        let ms = env["L2S_DEMO_STEP_MS"].flatMap(Double.init) ?? 120
        engine = .demo(stepDelay: max(0, ms) / 1000)
    } else {
        // Every caller but replay passes its model options.
        guard let models = o.models else { throw ExitCode(2) }
        // --classifier, else the toy model's shipped one; without one the centroid loss steers.
        let classifier: RelationClassifier?
        do { classifier = try models.loadClassifier(required: false) } catch {
            FileHandle.standardError.write(Data("l2s: cannot load the relation classifier: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if models.model == nil && (models.size != nil || models.fp16) {
            FileHandle.standardError.write(Data("l2s: --size and --fp16 apply to --model folders; the embedded model is 32×32\n".utf8))
            throw ExitCode(2)
        }
        engine = .model(models.source, classifier: classifier)
    }
    var options = WorkbenchOptions(logPath: o.log ?? WorkbenchOptions.defaultLogPath,
                                   saveDirectory: FileManager.default.currentDirectoryPath + "/l2s-out")
    options.noColor = o.noColor || !(env["NO_COLOR"] ?? "").isEmpty
    options.ascii = o.ascii
    options.saveUpscale = o.upscale
    options.graphics = o.graphics
    if let replay { options.initialRun = (replay.prompt, replay.settings.steered) }
    options.testTrap = !(env["L2S_TUI_TEST_TRAP"] ?? "").isEmpty
    let app = App(engine, options: options)
    let status: Int32
    do {
        status = try app.run()
    } catch {
        FileHandle.standardError.write(Data("l2s: \(error)\n".utf8))
        throw ExitCode(2)
    }
    if status != 0 { throw ExitCode(status) }
}


/// One clear error (exit 2) for a --model path that is not a Stable Diffusion diffusers folder.
func checkDiffusersFolder(_ path: String) throws {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
        FileHandle.standardError.write(Data("l2s: --model \(path): no such directory (expected a diffusers folder with unet/, text_encoder/, tokenizer/, vae/, scheduler/)\n".utf8))
        throw ExitCode(2)
    }
    for part in ["unet/config.json", "text_encoder/config.json", "tokenizer/vocab.json", "vae/config.json"]
    where !FileManager.default.fileExists(atPath: path + "/" + part) {
        FileHandle.standardError.write(Data("l2s: --model \(path): missing \(part) (not a Stable Diffusion diffusers folder)\n".utf8))
        throw ExitCode(2)
    }
}
