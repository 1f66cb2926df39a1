// A deterministic stand-in for the sampler: no model, plausible numbers. Objects are discs whose
// positions are the "latent"; steering iterations push them toward the asked-for arrangement, so the
// target probability rises over steered steps; unsteered runs drift toward where the seed put them.
// Used by the tests, the tmux end-to-end tests and `l2s --demo`.

import Foundation
import Relations
import Imaging
import Steering
import Tensors

/// The scripted run as a pure value: feed it steps, get iteration and step records.
struct ScriptedRun: Sendable {
    let prompt: String
    let graph: RelationGraph
    private(set) var settings: GenerationSettings
    /// Object centres in [0, 1]² (x right, y down).
    private(set) var positions: [(Double, Double)]
    private var drift: [(Double, Double)]
    private var rng: SplitMix
    /// The product's refinement policy (its turn counter runs across steps).
    private var loop = RefinementLoop()
    let colors: [(Double, Double, Double)]
    static let mapSide = 16
    static let imageSide = 32

    init(prompt: String, graph: RelationGraph, settings: GenerationSettings) {
        self.prompt = prompt
        self.graph = graph
        self.settings = settings
        var rng = SplitMix(seed: settings.seed &+ 0x5EED)
        // Seeded start and a seeded "natural" place each object drifts to; for a seed-dependent share
        // of prompts the natural arrangement is the wrong one, as with real models.
        positions = graph.objects.indices.map { _ in (0.25 + 0.5 * rng.unit(), 0.25 + 0.5 * rng.unit()) }
        drift = graph.objects.indices.map { _ in (0.2 + 0.6 * rng.unit(), 0.2 + 0.6 * rng.unit()) }
        colors = graph.objects.enumerated().map { i, o in ScriptedRun.color(for: o.name, index: i) }
        self.rng = rng
    }

    /// Replaces the settings (as a live edit would at a step boundary); steps, seed and the steering
    /// mode stay as the run started.
    mutating func update(_ s: GenerationSettings) {
        settings = settings.applyingLive(s)
    }

    /// Runs step `k`: the steering iterations (if the step is in range) and the step record.
    mutating func step(_ k: Int) -> (iterations: [IterationRecord], step: StepRecord) {
        let total = settings.steps
        let progress = Double(k + 1) / Double(max(total, 1))
        var its: [IterationRecord] = []
        let sched = settings.steering
        let active = settings.activeOrder(in: graph)
        var loop = self.loop
        var pusher = DiscPusher(run: self, progress: progress)
        loop.refine(&pusher, step: k, active: active, schedule: sched, onIteration: { it in
            var rec = it.evaluation
            rec.iteration = it.iteration
            rec.note = it.note
            its.append(rec)
        })
        self = pusher.run
        self.loop = loop
        // Unguided drift toward the seed's natural places, slowing as the image settles.
        for i in positions.indices {
            let rate = 0.08 * (1 - progress)
            positions[i].0 += (drift[i].0 - positions[i].0) * rate + 0.01 * (rng.unit() - 0.5)
            positions[i].1 += (drift[i].1 - positions[i].1) * rate + 0.01 * (rng.unit() - 0.5)
            positions[i].0 = min(max(positions[i].0, 0.1), 0.9)
            positions[i].1 = min(max(positions[i].1, 0.1), 0.9)
        }
        let image = render(progress: progress, step: k)
        let rec = StepRecord(step: k, totalSteps: total, timestep: max(0, 999 - k * 1000 / max(total, 1)),
                             seconds: 0, preview: image)
        return (its, rec)
    }

    /// Class probabilities from the discs' arrangement (above, below, is, left of, right of).
    func probabilities(edge e: Int, progress: Double) -> [Float] {
        let edge = graph.edges[e]
        let s = positions[edge.subject], o = positions[edge.object]
        let dx = s.0 - o.0, dy = s.1 - o.1
        let sharp = 6 + 10 * progress
        let logits = [-dy * sharp, dy * sharp, -1.5 - 4 * (abs(dx) + abs(dy)), -dx * sharp, dx * sharp]
        let m = logits.max()!
        let ex = logits.map { Foundation.exp($0 - m) }
        let sum = ex.reduce(0, +)
        return ex.map { Float($0 / sum) }
    }

    /// The scripted run as the refinement loop's evaluator: judging an edge reads the discs'
    /// arrangement; descending pushes them. Its "gradient" is one number, `gradientNorm`, along the
    /// relation's axis, so the normalised update pushes by the step size itself.
    struct DiscPusher: RelationEvaluator {
        var run: ScriptedRun
        let progress: Double

        mutating func evaluate(edge: Int, step: Int, needsGradient: Bool) -> IterationRecord? {
            run.evaluate(edge: edge, step: step, iteration: 0, progress: progress)
        }

        mutating func descend(along evaluation: IterationRecord, scale: Float) {
            run.push(edge: evaluation.edge, by: Double(scale * evaluation.gradientNorm))
        }
    }

    mutating func evaluate(edge e: Int, step: Int, iteration: Int, progress: Double) -> IterationRecord {
        let p = probabilities(edge: e, progress: progress)
        let target = graph.edges[e].relation!.classIndex
        let pt = max(p[target], 1e-6)
        let edge = graph.edges[e]
        let sigma = 0.22 - 0.1 * progress
        let sm = map(center: positions[edge.subject], ghost: positions[edge.object], sigma: sigma)
        let om = map(center: positions[edge.object], ghost: positions[edge.subject], sigma: sigma)
        return IterationRecord(step: step, iteration: iteration, edge: e, probabilities: p, targetProbability: pt,
                               loss: -Foundation.log(pt), gradientNorm: Float(3 * (1 - Double(pt)) + 0.05 + 0.02 * rng.unit()),
                               subjectMap: sm, objectMap: om, subjectStack: Self.stack(sm), objectStack: Self.stack(om))
    }

    /// A made-up per-layer/head stack around a mean map: two layers (8 px down, 16 px up) of two heads,
    /// each channel the map shifted by a different pixel offset (no RNG, so the demo's other values stay put).
    static func stack(_ map: [Float]) -> MapStack {
        let n = ScriptedRun.mapSide
        let layers = [MapLayer(name: "down_blocks.1.attentions.0.transformer_blocks.0.attn2", place: .down, resolution: 8, heads: 2),
                      MapLayer(name: "up_blocks.1.attentions.0.transformer_blocks.0.attn2", place: .up, resolution: 16, heads: 2)]
        var values: [Float] = []
        for (dx, dy) in [(-2, 0), (2, 0), (0, -2), (0, 2)] {
            for y in 0..<n { for x in 0..<n { values.append(map[min(max(y + dy, 0), n - 1) * n + min(max(x + dx, 0), n - 1)]) } }
        }
        return MapStack(side: n, layers: layers, values: values)
    }

    /// One steering iteration: move subject and object apart along the relation's axis.
    mutating func push(edge e: Int, by stepSize: Double) {
        guard let rel = graph.edges[e].relation, stepSize > 0 else { return }
        let edge = graph.edges[e]
        let d = min(0.08, 0.04 * stepSize / 0.1)
        var (sx, sy) = positions[edge.subject], (ox, oy) = positions[edge.object]
        switch rel {
        case .leftOf: sx -= d; ox += d
        case .rightOf: sx += d; ox -= d
        case .above: sy -= d; oy += d
        case .below: sy += d; oy -= d
        }
        positions[edge.subject] = (min(max(sx, 0.1), 0.9), min(max(sy, 0.1), 0.9))
        if edge.object != edge.subject { positions[edge.object] = (min(max(ox, 0.1), 0.9), min(max(oy, 0.1), 0.9)) }
        // Steering also moves where the objects would drift to (the layout is being decided).
        drift[edge.subject] = positions[edge.subject]
        drift[edge.object] = positions[edge.object]
    }

    mutating func map(center: (Double, Double), ghost: (Double, Double), sigma: Double) -> [Float] {
        let n = ScriptedRun.mapSide
        var out = [Float](repeating: 0, count: n * n)
        for y in 0..<n {
            for x in 0..<n {
                let px = (Double(x) + 0.5) / Double(n), py = (Double(y) + 0.5) / Double(n)
                func g(_ c: (Double, Double)) -> Double {
                    let d2 = (px - c.0) * (px - c.0) + (py - c.1) * (py - c.1)
                    return Foundation.exp(-d2 / (2 * sigma * sigma))
                }
                out[y * n + x] = Float(g(center) + 0.25 * g(ghost) + 0.05 * rng.unit())
            }
        }
        // Peak about 0.3 early, 0.6 late, like the mean cross-attention of a well-placed token.
        let peak = out.max() ?? 1
        let scale = Float(0.3 + 0.3 * (0.22 - sigma) / 0.1) / max(peak, 1e-6)
        return out.map { $0 * scale }
    }

    /// x̂₀: the discs on a dark ground, noisy and soft early, crisp late.
    mutating func render(progress: Double, step: Int) -> RGBImage {
        let n = ScriptedRun.imageSide
        var px = [UInt8](repeating: 0, count: n * n * 3)
        let noise = 0.45 * (1 - progress)
        let radius = 0.13
        let soft = 0.02 + 0.1 * (1 - progress)
        for y in 0..<n {
            for x in 0..<n {
                let fx = (Double(x) + 0.5) / Double(n), fy = (Double(y) + 0.5) / Double(n)
                var c = (0.07 + 0.05 * fy, 0.07 + 0.04 * fy, 0.10 + 0.06 * fy)
                for (i, p) in positions.enumerated() {
                    let d = ((fx - p.0) * (fx - p.0) + (fy - p.1) * (fy - p.1)).squareRoot()
                    let a = min(max((radius + soft - d) / (2 * soft), 0), 1)
                    c.0 += (colors[i].0 - c.0) * a
                    c.1 += (colors[i].1 - c.1) * a
                    c.2 += (colors[i].2 - c.2) * a
                }
                let k = 3 * (y * n + x)
                let jitter = noise * (rng.unit() - 0.5)
                px[k] = UInt8(min(max((c.0 + jitter) * 255, 0), 255))
                px[k + 1] = UInt8(min(max((c.1 + jitter) * 255, 0), 255))
                px[k + 2] = UInt8(min(max((c.2 + jitter) * 255, 0), 255))
            }
        }
        return RGBImage(width: n, height: n, pixels: px)
    }

    /// A colour for an object: its colour word if it has one, else a fixed palette by index.
    static func color(for name: String, index: Int) -> (Double, Double, Double) {
        let words: [(String, (Double, Double, Double))] = [
            ("red", (0.92, 0.12, 0.12)), ("blue", (0.15, 0.30, 1.0)), ("green", (0.1, 0.75, 0.15)),
            ("yellow", (0.98, 0.92, 0.1)), ("purple", (0.62, 0.18, 0.88)), ("orange", (1.0, 0.52, 0.0)),
            ("white", (0.96, 0.96, 0.96)), ("cyan", (0.05, 0.88, 0.92)), ("pink", (1.0, 0.5, 0.7)),
            ("brown", (0.55, 0.35, 0.18)), ("black", (0.2, 0.2, 0.2)), ("gray", (0.55, 0.55, 0.55)),
        ]
        for (w, c) in words where name.split(separator: " ").contains(Substring(w)) { return c }
        let fallback: [(Double, Double, Double)] = [(0.85, 0.55, 0.25), (0.35, 0.6, 0.95), (0.45, 0.85, 0.4), (0.9, 0.4, 0.7)]
        return fallback[index % fallback.count]
    }
}


/// The scripted engine: `ScriptedRun` on a worker thread with a per-step delay, honouring pause,
/// cancel and live settings exactly like `LiveEngine`.
final class ScriptedEngine: WorkbenchEngine, @unchecked Sendable {
    let name: String
    let vocabulary: ObjectVocabulary?
    var defaults: GenerationSettings
    /// Seconds each step takes (split over its iterations).
    let stepDelay: Double
    /// Seconds before the engine reports ready (a pretend model load).
    let startDelay: Double
    private var worker: WorkerThread?
    private var sink: (@Sendable (EngineEvent) -> Void)?
    private let current = CurrentRun()

    init(stepDelay: Double = 0.1, startDelay: Double = 0.3, vocabulary: ObjectVocabulary? = nil,
                name: String = "scripted demo engine (no model)") {
        self.stepDelay = stepDelay
        self.startDelay = startDelay
        self.vocabulary = vocabulary
        self.name = name
        var d = GenerationSettings()
        d.steps = 50
        d.seed = 1234
        d.guidance = 4
        d.steering.startStep = 0
        d.steering.endStep = 25
        d.steering.maxIterations = 3
        d.steering.stepSizes = [0.1]
        d.steering.probabilityTarget = 0.9
        defaults = d
    }

    func start(sink: @escaping @Sendable (EngineEvent) -> Void) {
        self.sink = sink
        let delay = startDelay
        let name = self.name
        worker = WorkerThread(name: "l2s-scripted") {
            sink(.status(.starting("starting the scripted engine")))
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            sink(.status(.ready("\(name) ready")))
        }
        worker?.start()
    }

    func submit(_ request: RunRequest, control: RunControl) {
        current.replace(with: control)
        guard let sink else { return }
        let parser = PromptParser(vocabulary: vocabulary)
        let delay = stepDelay
        worker?.submit {
            ScriptedEngine.run(request, control: control, parser: parser, stepDelay: delay, sink: sink)
        }
    }

    static func run(_ request: RunRequest, control: RunControl, parser: PromptParser, stepDelay: Double,
                    sink: @Sendable (EngineEvent) -> Void) {
        let id = request.id
        let start = Date()
        guard !control.isCancelled else { sink(.cancelled(run: id, step: 0)); return }
        let graph: RelationGraph
        do { graph = try parser.parse(request.prompt, reusing: request.graph) } catch {
            sink(.failed(run: id, message: "\(error)"))
            return
        }
        sink(.parsed(run: id, graph: graph, steerable: graph.order))
        var run = ScriptedRun(prompt: request.prompt, graph: graph, settings: request.settings)
        var applied = request.version
        var final: RGBImage?
        for k in 0..<request.settings.steps {
            control.waitAtBoundary(run: id, step: k, sink: sink)
            if control.isCancelled { sink(.cancelled(run: id, step: k)); return }
            if let s = control.newerSettings(than: &applied, run: id, step: k, sink: sink) { run.update(s) }
            let t0 = Date()
            let (its, rec) = run.step(k)
            let per = its.isEmpty ? stepDelay : stepDelay / Double(its.count + 1)
            for it in its {
                control.sleep(per)
                sink(.iteration(run: id, it))
            }
            control.sleep(per)
            if control.isCancelled { sink(.cancelled(run: id, step: k)); return }
            var record = rec
            record.seconds = Date().timeIntervalSince(t0)
            final = rec.preview
            sink(.step(run: id, control.fittingPreview(record)))
        }
        if let final { sink(.finished(run: id, image: final, seconds: Date().timeIntervalSince(start))) }
    }

    func shutdown(timeout: Double) -> Bool {
        current.cancel()
        return worker?.shutdown(timeout: timeout) ?? true
    }
}
