// The one settings value: everything that decides a steered generation, from the CLI's flags or the
// workbench's keys to the Steerer. It is both the request (`SteeredGenerator.run(_:)`) and the live
// value a UI edits while a run goes on; the run reads a newer one at one point of each step, its
// boundary (see `SteeredGenerator.run`).

import Foundation
import Relations
import Diffusion

public struct GenerationSettings: Sendable, Equatable, Codable {
    /// The sampling request: prompt, negative prompt, seed, steps, guidance, sampler.
    public var sampler: SamplerSettings
    /// How the relations are steered, including whether at all (`mode`).
    public var steering: SteeringSettings
    /// Round-robin order over the prompt graph's edge indices (nil: the graph's own order). Edges that
    /// cannot be steered are passed over.
    public var order: [Int]?
    /// Edge indices switched off; they keep their place in `order`, so switching back restores it.
    public var disabled: Set<Int>

    public init(sampler: SamplerSettings, steering: SteeringSettings = SteeringSettings(), order: [Int]? = nil,
                disabled: Set<Int> = []) {
        self.sampler = sampler
        self.steering = steering
        self.order = order
        self.disabled = disabled
    }

    /// Default settings with an empty prompt (a UI's starting value; it sets the prompt at each run).
    public init() { self.init(sampler: SamplerSettings(prompt: "")) }

    public var prompt: String {
        get { sampler.prompt }
        set { sampler.prompt = newValue }
    }
    public var seed: UInt64 {
        get { sampler.seed }
        set { sampler.seed = newValue }
    }
    public var steps: Int {
        get { sampler.steps }
        set { sampler.steps = newValue }
    }
    public var guidance: Float {
        get { sampler.guidanceScale }
        set { sampler.guidanceScale = newValue }
    }
    /// Whether the relations are steered (false for the read-only half of an A/B pair, or off).
    public var steered: Bool { steering.mode == .steer }

    /// These settings with the fields of `edit` that may change while a run goes on (guidance, the
    /// steering schedule, order and switched-off edges); the prompt, negative prompt, seed, steps,
    /// sampler and steering mode stay the ones the run started with.
    public func applyingLive(_ edit: GenerationSettings) -> GenerationSettings {
        var n = self
        n.sampler.guidanceScale = edit.sampler.guidanceScale
        n.steering = edit.steering
        n.steering.mode = steering.mode
        n.order = edit.order
        n.disabled = edit.disabled
        return n
    }

    /// The edges steered, in turn, for `graph`: the order (or the graph's) minus the switched-off
    /// edges, keeping only edges the graph can steer.
    public func activeOrder(in graph: RelationGraph) -> [Int] {
        let steerable = Set(graph.order)
        return (order ?? graph.order).filter { steerable.contains($0) && !disabled.contains($0) }
    }

    /// The order without a graph: `order` minus the switched-off edges.
    public var activeOrder: [Int] { (order ?? []).filter { !disabled.contains($0) } }

    /// Moves an edge `offset` places later (negative: earlier) in `order`, clamped to the ends.
    /// Returns false, changing nothing, when the edge is not in `order`.
    @discardableResult
    public mutating func move(edge: Int, by offset: Int) -> Bool {
        guard var o = order, let from = o.firstIndex(of: edge) else { return false }
        let to = min(max(from + offset, 0), o.count - 1)
        o.remove(at: from)
        o.insert(edge, at: to)
        order = o
        return true
    }

    /// Switches an edge off (`true`) or back on (`false`); only edges in `order` can be switched.
    @discardableResult
    public mutating func setDisabled(_ isDisabled: Bool, edge: Int) -> Bool {
        guard order?.contains(edge) == true else { return false }
        if isDisabled { disabled.insert(edge) } else { disabled.remove(edge) }
        return true
    }

    /// The first bad value, as a user-facing message (sampler, then steering).
    public func validationError() -> String? {
        sampler.validationError() ?? steering.validationError()
    }
}

/// The settings a run used from step `step` on (the first at step 0; one more for each live edit).
public struct AppliedSettings: Sendable, Equatable, Codable {
    public var step: Int
    public var settings: GenerationSettings
    public init(step: Int, settings: GenerationSettings) { self.step = step; self.settings = settings }
}

extension Array where Element == AppliedSettings {
    /// Records `settings` as in force from `step` on (a later edit at the same step replaces it);
    /// returns the record.
    @discardableResult
    public mutating func record(_ settings: GenerationSettings, at step: Int) -> AppliedSettings {
        let record = AppliedSettings(step: step, settings: settings)
        if last?.step == step { self[count - 1] = record } else { append(record) }
        return record
    }
}
