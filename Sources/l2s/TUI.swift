// `l2s` with no subcommand: the terminal workbench (Sources/Workbench) on the embedded toy model, or
// on the scripted demo engine with --demo.

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
    var model: String?
    var assets: String?
    var demo: Bool
    var noColor: Bool
    var ascii: Bool
    var log: String?
}

/// Starts the workbench; exits 2 when there is no terminal or an option is not supported.
func runWorkbench(_ o: TUIOptions) throws {
    if o.model != nil {
        FileHandle.standardError.write(Data("l2s: --model (Stable Diffusion folders) is not supported yet; run `l2s` without it to use the embedded toy model, or `l2s --demo`.\n".utf8))
        throw ExitCode(2)
    }
    guard isatty(0) == 1, isatty(1) == 1 else {
        FileHandle.standardError.write(Data("l2s: the workbench needs an interactive terminal (stdin and stdout must be a tty); see `l2s --help` for the subcommands.\n".utf8))
        throw ExitCode(2)
    }
    let env = ProcessInfo.processInfo.environment
    let engine: WorkbenchEngine
    if o.demo {
        // L2S_DEMO_STEP_MS slows or speeds the scripted engine (the tmux tests use it).
        let ms = env["L2S_DEMO_STEP_MS"].flatMap(Double.init) ?? 120
        engine = ScriptedEngine(stepDelay: max(0, ms) / 1000)
    } else {
        // The shipped relation classifier, when present (without it the centroid loss steers).
        var classifier: RelationClassifier? = nil
        if let dir = AssetLocator.toyDirectory(override: o.assets), FileManager.default.fileExists(atPath: dir + "/classifier.safetensors") {
            do { classifier = try RelationClassifier.load(path: dir + "/classifier.safetensors") } catch {
                FileHandle.standardError.write(Data("l2s: cannot load \(dir)/classifier.safetensors: \(error)\n".utf8))
                throw ExitCode(2)
            }
        }
        engine = LiveEngine(assets: o.assets, classifier: classifier)
    }
    var options = WorkbenchOptions(logPath: o.log ?? WorkbenchOptions.defaultLogPath,
                                   saveDirectory: FileManager.default.currentDirectoryPath + "/l2s-out")
    options.noColor = o.noColor || !(env["NO_COLOR"] ?? "").isEmpty
    options.ascii = o.ascii
    options.testTrap = !(env["L2S_TUI_TEST_TRAP"] ?? "").isEmpty
    let app = App(engine: engine, options: options)
    let status: Int32
    do {
        status = try app.run()
    } catch {
        FileHandle.standardError.write(Data("l2s: \(error)\n".utf8))
        throw ExitCode(2)
    }
    if status != 0 { throw ExitCode(status) }
}
