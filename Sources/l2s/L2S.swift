import ArgumentParser
import Foundation
import Tensors
import Workbench

/// `l2s`: the LearnToSteer workbench. With no subcommand it opens the terminal UI.
@main
struct L2S: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "l2s",
        abstract: "Steer text-to-image diffusion toward the spatial relations a prompt asks for.",
        discussion: """
        Runs on the CPU with the embedded toy model (no download) or a Stable Diffusion 1.x/2.x diffusers folder.
        Threads: --threads or the L2S_THREADS environment variable (default: all cores).

        With no subcommand `l2s` opens the terminal workbench (`l2s tui`), which takes:
          --demo             the scripted demo engine (no model needed)
          --no-color         no colours (also: a non-empty NO_COLOR)
          --ascii            ASCII glyphs only (also when the locale is not UTF-8)
          --log FILE         log file (default: $XDG_STATE_HOME/l2s/l2s.log or ~/.local/state/l2s/l2s.log)
          --upscale N        enlarge images saved with `s` N times (default: to at least 256 px)
          --graphics MODE    auto (kitty, iTerm2 or sixel when the terminal has it; half-blocks inside tmux), kitty, iterm, sixel, blocks
          --assets DIR       the embedded model's weights (default: $L2S_ASSETS, else Assets/ beside the program)
          --model DIR        a Stable Diffusion diffusers folder instead (with --size, --fp16, --classifier)
          --threads N        worker threads
        See `l2s tui --help` for the details.
        """,
        subcommands: [TUI.self, Replay.self, Generate.self, Eval.self, Parse.self, Invert.self, Verify.self, BuildDataset.self, TrainBase.self, TrainClassifier.self, Bench.self],
        defaultSubcommand: TUI.self)
}

/// `l2s tui` (the default): the terminal workbench.
struct TUI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tui",
        abstract: "The terminal workbench (the default when no subcommand is given).")

    @OptionGroup var common: CommonOptions
    @OptionGroup var models: ModelOptions
    @Flag(help: "Run the workbench on the scripted demo engine (no model needed).")
    var demo = false
    @Flag(help: "No colours (also: a non-empty NO_COLOR environment variable).")
    var noColor = false
    @Flag(help: "ASCII glyphs only (also chosen automatically when the locale is not UTF-8).")
    var ascii = false
    @Option(help: "Log file (default: $XDG_STATE_HOME/l2s/l2s.log or ~/.local/state/l2s/l2s.log).")
    var log: String?
    @Option(help: "Enlarge images saved with `s` this many times, nearest neighbour (default: enough for at least 256 px).")
    var upscale: Int?
    @Option(help: "Images: auto (detect kitty, iTerm2 or sixel; half-blocks inside tmux), kitty, iterm, sixel or blocks.")
    var graphics: GraphicsChoice = .auto

    func validate() throws {
        if let upscale, !(1...64).contains(upscale) { throw ValidationError("--upscale must be in 1…64") }
    }

    func run() throws {
        try common.apply()
        try runWorkbench(TUIOptions(models: models, demo: demo, noColor: noColor, ascii: ascii, log: log, upscale: upscale, graphics: graphics))
    }
}

extension GraphicsChoice: ExpressibleByArgument {}

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
