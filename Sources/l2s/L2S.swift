import ArgumentParser
import Foundation
import Tensors

/// `l2s`: the LearnToSteer workbench. With no subcommand it opens the terminal UI.
@main
struct L2S: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "l2s",
        abstract: "Steer text-to-image diffusion toward the spatial relations a prompt asks for.",
        discussion: """
        Runs on the CPU with the embedded toy model (no download) or a Stable Diffusion 1.x/2.x diffusers folder.
        Threads: --threads or the L2S_THREADS environment variable (default: all cores).
        """,
        subcommands: [Generate.self, Eval.self, Parse.self, BuildDataset.self, TrainBase.self, TrainClassifier.self, Bench.self])

    func run() throws {
        print(L2S.helpMessage())
    }
}

/// Options every subcommand shares.
struct CommonOptions: ParsableArguments {
    @Option(help: "Worker threads for BLAS and element-wise loops (default: L2S_THREADS or all cores).")
    var threads: Int?

    func apply() throws {
        if let threads {
            guard threads >= 1 && threads <= 256 else { throw ValidationError("--threads must be in 1…256") }
            Threads.set(threads)
        }
    }
}
