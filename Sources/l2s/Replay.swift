import ArgumentParser
import Foundation
import Workbench

/// `l2s replay RUN.json`: the workbench on a recorded run, without the model.
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open the workbench on a recorded run (no model): scrub the steps and see, per step, the probabilities, the maps and x̂₀.",
        discussion: """
        RUN.json is a `l2s generate --trace FILE` recording, or a run saved with `s` in the workbench (its \
        .json sidecar or the .trace.json beside it). , and . step back and forward, < and > go to the first \
        step and back to the last.
        """)

    @Argument(help: "The recording: a --trace file, or a saved run's .json / .trace.json.") var recording: String
    @Flag(help: "No colours (also: a non-empty NO_COLOR environment variable).") var noColor = false
    @Flag(help: "ASCII glyphs only (also chosen automatically when the locale is not UTF-8).") var ascii = false
    @Option(help: "Log file (default: $XDG_STATE_HOME/l2s/l2s.log or ~/.local/state/l2s/l2s.log).") var log: String?
    @Option(help: "Enlarge images saved with `s` this many times (default: enough for at least 256 px).") var upscale: Int?
    @Option(help: "Images: auto (detect kitty, iTerm2 or sixel; half-blocks inside tmux), kitty, iterm, sixel or blocks.")
    var graphics: GraphicsChoice = .auto

    func run() throws {
        let rec: RunTrace.Recording
        do { rec = try RunTrace.load(path: recording) } catch {
            FileHandle.standardError.write(Data("l2s: replay: \(error)\n".utf8))
            throw ExitCode(2)
        }
        try runWorkbench(TUIOptions(models: nil, demo: false, noColor: noColor, ascii: ascii, log: log, upscale: upscale, graphics: graphics),
                         replay: rec)
    }
}
