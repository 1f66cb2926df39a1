// Deterministic view states for snapshot and reducer tests, built by playing the scripted engine's
// pure `ScriptedRun` into the reducer (no threads, no clock).

import Foundation
import Relations
import ToyBench
import Imaging
import Steering
import ToyWorld
@testable import Workbench

enum Fixture {
    static let demoName = "scripted demo engine (no model)"
    static var defaults: GenerationSettings { ScriptedEngine(stepDelay: 0).defaults }
    static var toyVocabulary: ObjectVocabulary { ModelProfile.toyVocabulary }

    static func state(tier: ColorTier = .palette256, ascii: Bool = false, vocabulary: ObjectVocabulary? = nil) -> ViewState {
        var s = ViewState(theme: Theme(tier: tier, ascii: ascii), engineName: demoName, defaults: defaults, vocabulary: vocabulary)
        s.apply(.status(.ready("\(demoName) ready")))
        s.unwrittenLog.removeAll()
        return s
    }

    /// Types `prompt`, presses Enter and plays `steps` steps of the scripted run (all of them finishes
    /// the run). Fits the preview images for `size` the way the App's fitter queue would.
    static func running(_ prompt: String, steps: Int, size: Size = Size(width: 120, height: 40),
                        tier: ColorTier = .palette256, ascii: Bool = false, vocabulary: ObjectVocabulary? = nil,
                        configure: (inout ViewState) -> Void = { _ in }) -> ViewState {
        var s = state(tier: tier, ascii: ascii, vocabulary: vocabulary)
        configure(&s)
        _ = s.apply(.insert(prompt))
        let effects = s.apply(.run)
        guard case .start(let request)? = effects.first else { return s }
        play(&s, request: request, steps: steps, vocabulary: vocabulary)
        fit(&s, size: size)
        return s
    }

    /// Plays a scripted run into the state as the engine would post it.
    static func play(_ s: inout ViewState, request: RunRequest, steps: Int, vocabulary: ObjectVocabulary? = nil) {
        guard let graph = try? PromptParser(vocabulary: vocabulary).parse(request.prompt) else { return }
        s.apply(.parsed(run: request.id, graph: graph, steerable: graph.order))
        var run = ScriptedRun(prompt: request.prompt, graph: graph, settings: request.settings)
        var last: RGBImage?
        for k in 0..<min(steps, request.settings.steps) {
            let (its, rec) = run.step(k)
            for it in its { s.apply(.iteration(run: request.id, it)) }
            var r = rec
            r.seconds = 0.1
            s.apply(.step(run: request.id, r))
            last = rec.preview
        }
        if steps >= request.settings.steps, let last {
            s.apply(.finished(run: request.id, image: last, seconds: 5.0))
        }
    }

    /// Supplies every fitted image a frame of this size asks for.
    static func fit(_ s: inout ViewState, size: Size) {
        for _ in 0..<2 {
            let frame = Screen.render(s, size: size)
            for w in frame.wants {
                s.apply(.fitted(w.key, ImageFitter.fit(w.source, boxWidth: w.key.box.width, boxHeight: w.key.box.height)))
            }
        }
    }

    /// Renders a whole screen.
    static func screen(_ s: ViewState, _ size: Size) -> CellGrid {
        Screen.render(s, size: size).grid
    }

    /// Renders one pane into a grid of its own size.
    static func pane(_ size: Size, _ draw: (inout CellGrid, Rect) -> Void, ascii: Bool = false) -> CellGrid {
        var g = CellGrid(width: size.width, height: size.height, ascii: ascii)
        draw(&g, g.bounds)
        return g
    }
}
