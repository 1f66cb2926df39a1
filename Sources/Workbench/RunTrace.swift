// A recorded run, for `l2s replay`: the `--trace` JSON of `l2s generate` and the `.trace.json` the
// workbench's `s` writes beside a saved image share one format — the prompt, seed and settings, and
// the event stream (the parse, every steering iteration with its 16×16 maps, every step with its x̂₀
// preview and, for the embedded toy model, what the detector reads on it; the final image). Reading
// turns it back into the engine events the workbench draws.

import Foundation
import Relations
import Imaging
import Steering
import ToyWorld

/// Reading and writing recorded runs.
public enum RunTrace {
    /// Why a file cannot be replayed.
    struct ReadError: Error, CustomStringConvertible {
        var description: String
    }

    /// What a recording holds, ready for the workbench.
    public struct Recording: Sendable {
        public internal(set) var settings: GenerationSettings
        public var prompt: String { settings.prompt }
        var graph: RelationGraph?
        var steerable: [Int]
        var iterations: [IterationRecord]
        var steps: [StepRecord]
        var final: RGBImage?
        var seconds: Double
        var source: String
    }

    // MARK: Writing

    /// An image as JSON: width, height and base64 RGB bytes.
    public static func imageJSON(_ img: RGBImage) -> [String: Any] {
        ["width": img.width, "height": img.height, "rgb": Data(img.pixels).base64EncodedString()]
    }

    /// The `iteration` event of the trace format (`edge` indexes the prompt graph's edges).
    public static func iterationJSON(step: Int, iteration: Int, edge: Int, probabilities: [Float], targetProbability: Float,
                                     loss: Float, gradientNorm: Float, seconds: Double, note: String?,
                                     subjectMap: [Float], objectMap: [Float], peaks: [Float] = []) -> [String: Any] {
        var e: [String: Any] = ["event": "iteration", "step": step, "iteration": iteration, "edge": edge,
                                "probabilities": probabilities, "p_target": targetProbability, "loss": loss, "grad_norm": gradientNorm,
                                "seconds": seconds, "note": note ?? "", "subject_map": subjectMap, "object_map": objectMap]
        // The subject's and object's attention peaks (`AttentionMaps.peak`), where the engine reads them.
        if !peaks.isEmpty { e["peaks"] = peaks }
        return e
    }

    /// The `step` event of the trace format: x̂₀'s preview and, for the embedded toy model, what the
    /// detector reads on it (`detector`: objects with counts, unasked objects, relation verdicts).
    public static func stepJSON(step: Int, totalSteps: Int, timestep: Int, seconds: Double, preview: RGBImage,
                                detector: DetectorReading?) -> [String: Any] {
        var e: [String: Any] = ["event": "step", "step": step, "total_steps": totalSteps, "timestep": timestep,
                                "seconds": seconds, "preview": imageJSON(preview)]
        if let detector { e["detector"] = detector.json }
        return e
    }

    /// The header fields of the trace format.
    public static func header(_ settings: GenerationSettings) -> [String: Any] {
        var h: [String: Any] = ["prompt": settings.prompt, "seed": settings.seed, "steps": settings.steps, "guidance": settings.guidance,
                                "steered": settings.steered, "disabled": settings.disabled.sorted()]
        if let order = settings.order { h["order"] = order }
        if let data = try? JSONEncoder().encode(settings.steering), let s = try? JSONSerialization.jsonObject(with: data) { h["schedule"] = s }
        return h
    }

    /// The trace of a run the workbench holds.
    static func json(_ run: RunView, graph: RelationGraph?) -> Data {
        var events: [[String: Any]] = []
        if let g = run.graph ?? graph, let obj = try? JSONSerialization.jsonObject(with: Data(g.jsonString().utf8)) {
            events.append(["event": "parsed", "graph": obj, "steerable": run.steerable])
        }
        var byStep: [Int: [IterationRecord]] = [:]
        for it in run.iterations { byStep[it.step, default: []].append(it) }
        for rec in run.steps {
            for it in byStep[rec.step] ?? [] {
                events.append(iterationJSON(step: it.step, iteration: it.iteration, edge: it.edge,
                                            probabilities: it.probabilities, targetProbability: it.targetProbability, loss: it.loss,
                                            gradientNorm: it.gradientNorm, seconds: 0, note: it.note,
                                            subjectMap: it.subjectMap, objectMap: it.objectMap))
            }
            events.append(stepJSON(step: rec.step, totalSteps: rec.totalSteps, timestep: rec.timestep, seconds: rec.seconds,
                                   preview: rec.preview, detector: rec.detector))
        }
        if let f = run.final { events.append(["event": "final", "image": imageJSON(f), "seconds": run.seconds ?? 0]) }
        var top = header(run.settings)
        top["events"] = events
        return (try? JSONSerialization.data(withJSONObject: top, options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    // MARK: Reading

    /// Reads a trace file, or the `.trace.json` beside a saved image's sidecar (`<base>.json`).
    public static func load(path: String) throws -> Recording {
        var file = path
        if !path.hasSuffix(".trace.json") {
            let sibling = (path as NSString).deletingPathExtension + ".trace.json"
            if FileManager.default.fileExists(atPath: sibling) { file = sibling }
        }
        guard let data = FileManager.default.contents(atPath: file) else { throw ReadError(description: "cannot read \(file)") }
        guard let top = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ReadError(description: "\(file) is not JSON")
        }
        guard let events = top["events"] as? [[String: Any]] else {
            throw ReadError(description: "\(file) has no recorded events (write one with `l2s generate --trace FILE` or `s` in the workbench)")
        }
        return try recording(top, events: events, source: file)
    }

    static func recording(_ top: [String: Any], events: [[String: Any]], source: String) throws -> Recording {
        guard let prompt = top["prompt"] as? String else { throw ReadError(description: "\(source) names no prompt") }
        var settings = GenerationSettings()
        settings.seed = (top["seed"] as? NSNumber)?.uint64Value ?? 0
        settings.guidance = (top["guidance"] as? NSNumber)?.floatValue ?? settings.guidance
        settings.prompt = prompt
        if let s = top["schedule"], let d = try? JSONSerialization.data(withJSONObject: s),
           let schedule = try? JSONDecoder().decode(SteeringSettings.self, from: d) { settings.steering = schedule }
        // Recordings from before `mode` say "steered": false for the read-only half of an A/B pair.
        if top["steered"] as? Bool == false && settings.steering.mode == .steer { settings.steering.mode = .observe }
        var graph: RelationGraph?
        var steerable: [Int] = []
        var iterations: [IterationRecord] = []
        var steps: [StepRecord] = []
        var final: RGBImage?
        var seconds = 0.0
        for e in events {
            switch e["event"] as? String {
            case "parsed":
                if let g = e["graph"], let d = try? JSONSerialization.data(withJSONObject: g) { graph = try? JSONDecoder().decode(RelationGraph.self, from: d) }
                steerable = (e["steerable"] as? [Int]) ?? graph?.order ?? []
            case "iteration":
                // Recordings from before edge indices everywhere also (or only) carry `relation`, an
                // index into the steerable edges.
                let target = e["relation"] as? Int ?? 0
                let edge = e["edge"] as? Int ?? (steerable.indices.contains(target) ? steerable[target] : target)
                iterations.append(IterationRecord(
                    step: e["step"] as? Int ?? 0, iteration: e["iteration"] as? Int ?? 0, edge: edge,
                    probabilities: floats(e["probabilities"]), targetProbability: float(e["p_target"]), loss: float(e["loss"]),
                    gradientNorm: float(e["grad_norm"]), subjectMap: floats(e["subject_map"]), objectMap: floats(e["object_map"]),
                    note: (e["note"] as? String).flatMap { $0.isEmpty ? nil : $0 }))
            case "step":
                guard let preview = image(e["preview"]) else {
                    throw ReadError(description: "\(source): step \(e["step"] ?? "?") has no x̂₀ preview (a trace written before replay existed; record it again)")
                }
                let seconds = (e["seconds"] as? NSNumber)?.doubleValue ?? 0
                steps.append(StepRecord(step: e["step"] as? Int ?? steps.count, totalSteps: e["total_steps"] as? Int ?? (top["steps"] as? Int ?? 0),
                                        timestep: e["timestep"] as? Int ?? 0, seconds: seconds, preview: preview,
                                        detector: DetectorReading(json: e["detector"])))
            case "final":
                final = image(e["image"])
                seconds = (e["seconds"] as? NSNumber)?.doubleValue ?? 0
            default:
                continue
            }
        }
        guard !steps.isEmpty else { throw ReadError(description: "\(source) records no steps") }
        settings.steps = top["steps"] as? Int ?? steps.count
        settings.order = (top["order"] as? [Int]) ?? graph?.order
        settings.disabled = Set((top["disabled"] as? [Int]) ?? [])
        return Recording(settings: settings, graph: graph, steerable: steerable, iterations: iterations,
                         steps: steps, final: final, seconds: seconds, source: source)
    }

    static func float(_ v: Any?) -> Float { (v as? NSNumber)?.floatValue ?? .nan }
    static func floats(_ v: Any?) -> [Float] { (v as? [NSNumber])?.map(\.floatValue) ?? [] }

    static func image(_ v: Any?) -> RGBImage? {
        guard let d = v as? [String: Any], let w = d["width"] as? Int, let h = d["height"] as? Int,
              let b = d["rgb"] as? String, let bytes = Data(base64Encoded: b), bytes.count == w * h * 3 else { return nil }
        return RGBImage(width: w, height: h, pixels: [UInt8](bytes))
    }
}
