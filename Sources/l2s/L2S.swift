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

    /// Runs the command line. A failure is exactly one line on stderr (`Error: …`); bad input (exit 64)
    /// ends with a pointer to the subcommand's `--help`, as git and cargo do, instead of the usage block.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            fail(error, arguments: arguments)
        }
    }

    static func fail(_ error: Error, arguments: [String]) -> Never {
        if let e = error as? RuntimeError {
            note("Error: \(oneLine(e.message))")
            Foundation.exit(e.exitCode)
        }
        let code = exitCode(for: error)
        if code == .success { exit(withError: error) }  // --help, --version: ArgumentParser prints them on stdout
        let message = oneLine(self.message(for: error))
        if !message.isEmpty {
            note("Error: \(message)" + (code == .validationFailure ? " (see '\(helpCommand(arguments)) --help')" : ""))
        }
        Foundation.exit(code.rawValue)
    }

    /// "l2s eval run" for `eval run --shard x`: the deepest subcommand the arguments name.
    static func helpCommand(_ arguments: [String]) -> String {
        var command: ParsableCommand.Type = L2S.self
        var names = ["l2s"]
        for a in arguments {
            guard let sub = command.configuration.subcommands.first(where: { $0._commandName == a }) else { break }
            names.append(a)
            command = sub
        }
        return names.joined(separator: " ")
    }

    /// Messages are printed as one line: line breaks become "; ", and a leading "Error: " is dropped.
    static func oneLine(_ text: String) -> String {
        var t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if t.hasPrefix("Error: ") { t.removeFirst(7) }
        return t.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .joined(separator: "; ")
    }
}

/// A failure while running (not bad input): one line on stderr and `exitCode` (1 unless said).
struct RuntimeError: Error, CustomStringConvertible {
    let message: String
    let exitCode: Int32
    init(_ message: String, exitCode: Int32 = 1) { self.message = message; self.exitCode = exitCode }
    var description: String { message }
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
    @Option(parsing: .unconditional, help: "Worker threads for BLAS and element-wise loops (default: L2S_THREADS or all cores).")
    var threads: Int?

    func apply() throws {
        _ = Threads.count   // reads L2S_THREADS now, so a warning about it comes before any screen opens
        if let threads {
            guard threads >= 1 && threads <= 256 else { throw ValidationError("--threads must be in 1…256") }
            Threads.set(threads)
        }
    }
}
