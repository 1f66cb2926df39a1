import Foundation

// Optimisers, gradient clipping, learning-rate schedules and weight EMA, following PyTorch's
// semantics (torch.optim.AdamW / SGD, clip_grad_norm_, ReduceLROnPlateau) so hyperparameters carry
// over. Updates run as one fused pointer loop per parameter (split across threads for big tensors);
// each element's arithmetic is independent of the split, so runs are bit-reproducible.
//
// Optimiser state is exposed as named tensors keyed by parameter index ("3.exp_avg", "3.step", …,
// plus "lr"), ready for `writeSafetensors`, so checkpoint + resume continues bit-identically.

/// A first-order optimiser over a fixed list of parameters.
public protocol Optimizer: AnyObject {
    /// The tensors updated in place by `step()`.
    var parameters: [Tensor] { get }
    /// The learning rate used by the next `step()` (schedules set it before each step).
    var lr: Float { get set }
    /// Applies one update to every parameter that has a gradient; others are skipped untouched.
    func step()
    /// A snapshot (copies) of the optimiser's state: per-parameter buffers keyed "index.name", and "lr".
    func state() -> [(String, Tensor)]
    /// Replaces the optimiser's state with a snapshot from `state()`; validates everything first.
    func loadState(_ state: [String: Tensor]) throws
}

extension Optimizer {
    /// Clears the gradients of all parameters.
    public func zeroGrad() { for p in parameters { p.grad = nil } }

    /// `loadState` from the pairs `state()` returns.
    public func loadState(_ state: [(String, Tensor)]) throws {
        var dict: [String: Tensor] = [:]
        for (k, v) in state {
            guard dict.updateValue(v, forKey: k) == nil else {
                throw OptimizerStateError.duplicateKey(optimizer: "\(Self.self)", key: k)
            }
        }
        try loadState(dict)
    }
}

/// Why an optimiser (or EMA) state snapshot does not fit. Every case names the key.
public enum OptimizerStateError: Error, CustomStringConvertible, Equatable {
    case unexpectedKey(optimizer: String, key: String, parameterCount: Int)
    case missingKey(optimizer: String, key: String)
    case duplicateKey(optimizer: String, key: String)
    case shapeMismatch(optimizer: String, key: String, expected: [Int], found: [Int])
    case invalidValue(optimizer: String, key: String, reason: String)

    public var description: String {
        switch self {
        case let .unexpectedKey(optimizer, key, count):
            return "\(optimizer) state: unexpected key '\(key)' (this optimiser has \(count) parameters; "
                + "was the state saved for a different model or optimiser?)"
        case let .missingKey(optimizer, key):
            return "\(optimizer) state: missing key '\(key)'"
        case let .duplicateKey(optimizer, key):
            return "\(optimizer) state: key '\(key)' appears twice"
        case let .shapeMismatch(optimizer, key, expected, found):
            return "\(optimizer) state: '\(key)' has shape \(found) but its parameter has shape \(expected)"
        case let .invalidValue(optimizer, key, reason):
            return "\(optimizer) state: '\(key)' \(reason)"
        }
    }
}

/// Sorts a state snapshot into per-parameter fields and global scalars, rejecting unknown keys.
struct StateSnapshot {
    let owner: String
    let parameters: [Tensor]
    var perParameter: [Int: [String: Tensor]] = [:]
    var globals: [String: Tensor] = [:]

    init(owner: String, parameters: [Tensor], state: [String: Tensor], fields: Set<String>, globals names: Set<String>) throws {
        self.owner = owner
        self.parameters = parameters
        for (key, t) in state {
            if names.contains(key) { globals[key] = t; continue }
            guard let dot = key.firstIndex(of: "."), let i = Int(key[..<dot]), i >= 0, i < parameters.count,
                  fields.contains(String(key[key.index(after: dot)...])) else {
                throw OptimizerStateError.unexpectedKey(optimizer: owner, key: key, parameterCount: parameters.count)
            }
            perParameter[i, default: [:]][String(key[key.index(after: dot)...])] = t
        }
    }

    /// The buffer `index.field`, which must have its parameter's shape.
    func buffer(_ index: Int, _ field: String) throws -> Tensor {
        let key = "\(index).\(field)"
        guard let t = perParameter[index]?[field] else { throw OptimizerStateError.missingKey(optimizer: owner, key: key) }
        guard t.shape == parameters[index].shape else {
            throw OptimizerStateError.shapeMismatch(optimizer: owner, key: key, expected: parameters[index].shape, found: t.shape)
        }
        return t
    }

    /// A one-element tensor's value under `key` (nil when absent).
    func scalar(_ key: String, in dict: [String: Tensor]?) throws -> Float? {
        guard let t = dict?[key] else { return nil }
        guard t.count == 1 else {
            throw OptimizerStateError.invalidValue(optimizer: owner, key: key, reason: "must hold one value, has shape \(t.shape)")
        }
        return t.pointer[0]
    }

    /// A step counter: a whole number ≥ 0 stored as Float32 (exact up to 2^24 steps).
    func count(_ index: Int, _ field: String) throws -> Int {
        let key = "\(index).\(field)"
        guard let v = try scalar(field, in: perParameter[index]) else {
            throw OptimizerStateError.missingKey(optimizer: owner, key: key)
        }
        guard v.isFinite, v >= 0, v == v.rounded(), v <= 0x1p24 else {
            throw OptimizerStateError.invalidValue(optimizer: owner, key: key, reason: "must be a whole number ≥ 0, is \(v)")
        }
        return Int(v)
    }

    func learningRate() throws -> Float? {
        guard let lr = try scalar("lr", in: globals) else { return nil }
        guard lr.isFinite, lr >= 0 else {
            throw OptimizerStateError.invalidValue(optimizer: owner, key: "lr", reason: "must be a finite number ≥ 0, is \(lr)")
        }
        return lr
    }
}

private func checkDistinct(_ parameters: [Tensor], _ owner: String) {
    precondition(Set(parameters.map(ObjectIdentifier.init)).count == parameters.count,
                 "\(owner): a parameter appears more than once in the list")
}

// MARK: AdamW

/// AdamW (Loshchilov & Hutter), exactly as torch.optim.AdamW without amsgrad: per parameter with a
/// gradient g, at its own step count t,
///
///     p ← p·(1 − lr·wd);  m ← m + (1−β₁)(g − m);  v ← β₂·v + (1−β₂)·g²
///     p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)
///
/// Moments are created (as zeros) the first time a parameter has a gradient.
public final class AdamW: Optimizer {
    public let parameters: [Tensor]
    public var lr: Float
    /// Decay rates (β₁, β₂) of the first and second moment averages.
    public var betas: (Float, Float)
    /// Added to the denominator for numerical stability.
    public var eps: Float
    /// Decoupled weight decay: each step multiplies parameters by 1 − lr·weightDecay.
    public var weightDecay: Float
    private var expAvg: [Tensor?]
    private var expAvgSq: [Tensor?]
    private var steps: [Int]

    public init(parameters: [Tensor], lr: Float, betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8,
                weightDecay: Float = 0.01) {
        checkDistinct(parameters, "AdamW")
        precondition(lr >= 0 && eps >= 0 && weightDecay >= 0, "AdamW: lr, eps and weightDecay must be ≥ 0")
        precondition((0..<1).contains(betas.0) && (0..<1).contains(betas.1), "AdamW: betas must lie in [0, 1)")
        self.parameters = parameters
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weightDecay = weightDecay
        expAvg = Array(repeating: nil, count: parameters.count)
        expAvgSq = Array(repeating: nil, count: parameters.count)
        steps = Array(repeating: 0, count: parameters.count)
    }

    /// Updates taken so far by parameter `index` (0 until it first has a gradient).
    public func stepCount(_ index: Int) -> Int { steps[index] }

    public func step() {
        let (beta1, beta2) = betas
        let decay = Float(1 - Double(lr) * Double(weightDecay))
        let keep1 = 1 - beta1, keep2 = 1 - beta2, eps = eps
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            precondition(g.count == p.count, "AdamW: gradient \(g.shape) for parameter \(i) of shape \(p.shape)")
            if expAvg[i] == nil {
                expAvg[i] = Tensor(zeros: p.shape)
                expAvgSq[i] = Tensor(zeros: p.shape)
            }
            steps[i] += 1
            let t = Double(steps[i])
            let correction1 = 1 - Foundation.pow(Double(beta1), t)
            let correction2 = 1 - Foundation.pow(Double(beta2), t)
            let stepSize = Float(Double(lr) / correction1)
            let correction2Sqrt = Float(correction2.squareRoot())
            let pp = p.pointer, gp = g.pointer, mp = expAvg[i]!.pointer, vp = expAvgSq[i]!.pointer
            parallelFor(p.count, costPerItem: 8, grain: 1 << 15) { r in
                for j in r {
                    let gj = gp[j]
                    let m = mp[j] + keep1 * (gj - mp[j])
                    let v = vp[j] * beta2 + keep2 * (gj * gj)
                    mp[j] = m
                    vp[j] = v
                    let denom = v.squareRoot() / correction2Sqrt + eps
                    pp[j] = pp[j] * decay - stepSize * (m / denom)
                }
            }
        }
    }

    /// "i.exp_avg", "i.exp_avg_sq", "i.step" for each parameter that has state, and "lr".
    public func state() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = [("lr", Tensor(scalar: lr))]
        for i in parameters.indices {
            guard let m = expAvg[i], let v = expAvgSq[i] else { continue }
            out.append(("\(i).exp_avg", m.copy()))
            out.append(("\(i).exp_avg_sq", v.copy()))
            out.append(("\(i).step", Tensor(scalar: Float(steps[i]))))
        }
        return out
    }

    public func loadState(_ state: [String: Tensor]) throws {
        let s = try StateSnapshot(owner: "AdamW", parameters: parameters, state: state,
                                  fields: ["exp_avg", "exp_avg_sq", "step"], globals: ["lr"])
        var m = [Tensor?](repeating: nil, count: parameters.count)
        var v = m
        var t = [Int](repeating: 0, count: parameters.count)
        for i in s.perParameter.keys {
            m[i] = try s.buffer(i, "exp_avg").copy().reshaped(parameters[i].shape)
            v[i] = try s.buffer(i, "exp_avg_sq").copy().reshaped(parameters[i].shape)
            t[i] = try s.count(i, "step")
        }
        let newLR = try s.learningRate()
        expAvg = m
        expAvgSq = v
        steps = t
        if let newLR { lr = newLR }
    }
}

// MARK: SGD

/// Stochastic gradient descent with optional momentum, dampening, Nesterov and L2 weight decay,
/// exactly as torch.optim.SGD:
///
///     d ← g + wd·p;  b ← d on the first step, else μ·b + (1 − dampening)·d
///     d ← nesterov ? d + μ·b : b   (when μ ≠ 0);  p ← p − lr·d
public final class SGD: Optimizer {
    public let parameters: [Tensor]
    public var lr: Float
    /// Momentum factor μ (0: plain SGD, no buffers).
    public var momentum: Float
    /// Fraction of the new gradient left out of the momentum buffer (after the first step).
    public var dampening: Float
    /// L2 penalty added to the gradient: d = g + weightDecay·p.
    public var weightDecay: Float
    /// Use Nesterov momentum.
    public var nesterov: Bool
    private var buffers: [Tensor?]

    public init(parameters: [Tensor], lr: Float, momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0,
                nesterov: Bool = false) {
        checkDistinct(parameters, "SGD")
        precondition(lr >= 0 && momentum >= 0 && weightDecay >= 0, "SGD: lr, momentum and weightDecay must be ≥ 0")
        precondition(!nesterov || (momentum > 0 && dampening == 0), "SGD: Nesterov needs momentum > 0 and dampening 0")
        self.parameters = parameters
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        buffers = Array(repeating: nil, count: parameters.count)
    }

    public func step() {
        let lr = lr, wd = weightDecay, mu = momentum, keep = 1 - dampening, nesterov = nesterov
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            precondition(g.count == p.count, "SGD: gradient \(g.shape) for parameter \(i) of shape \(p.shape)")
            let pp = p.pointer, gp = g.pointer
            if mu == 0 {
                parallelFor(p.count, costPerItem: 3, grain: 1 << 15) { r in
                    for j in r { pp[j] = pp[j] - lr * (gp[j] + wd * pp[j]) }
                }
                continue
            }
            let first = buffers[i] == nil
            if first { buffers[i] = Tensor(uninitialized: p.shape) }
            let bp = buffers[i]!.pointer
            parallelFor(p.count, costPerItem: 5, grain: 1 << 15) { r in
                for j in r {
                    let d = gp[j] + wd * pp[j]
                    let b = first ? d : mu * bp[j] + keep * d
                    bp[j] = b
                    pp[j] = pp[j] - lr * (nesterov ? d + mu * b : b)
                }
            }
        }
    }

    /// "i.momentum_buffer" for each parameter with a buffer, and "lr".
    public func state() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = [("lr", Tensor(scalar: lr))]
        for (i, b) in buffers.enumerated() { if let b { out.append(("\(i).momentum_buffer", b.copy())) } }
        return out
    }

    public func loadState(_ state: [String: Tensor]) throws {
        let s = try StateSnapshot(owner: "SGD", parameters: parameters, state: state,
                                  fields: ["momentum_buffer"], globals: ["lr"])
        var b = [Tensor?](repeating: nil, count: parameters.count)
        for i in s.perParameter.keys { b[i] = try s.buffer(i, "momentum_buffer").copy().reshaped(parameters[i].shape) }
        let newLR = try s.learningRate()
        buffers = b
        if let newLR { lr = newLR }
    }
}

// MARK: Gradient clipping

/// Σ x² over `count` floats, accumulated in Double, split across threads for long buffers.
func sumOfSquares(_ x: UnsafePointer<Float>, _ count: Int) -> Double {
    let grain = 1 << 15
    let chunks = max(1, min(Threads.count, count / grain))
    let partials = UnsafeMutablePointer<Double>.allocate(capacity: chunks)
    defer { partials.deallocate() }
    parallelFor(chunks, costPerItem: grain, grain: grain) { r in
        for c in r {
            var s = 0.0
            for j in (count * c / chunks)..<(count * (c + 1) / chunks) { s += Double(x[j]) * Double(x[j]) }
            partials[c] = s
        }
    }
    var total = 0.0
    for c in 0..<chunks { total += partials[c] }
    return total
}

/// Scales the gradients of `parameters` together so their global L2 norm is at most `maxNorm`, as
/// torch.nn.utils.clip_grad_norm_ does (coefficient maxNorm / (norm + 1e-6), applied only when
/// below 1). Returns the total norm before clipping; a non-finite norm leaves the gradients as they
/// are, so the caller can skip the step. Parameters without gradients are ignored.
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    var seen = Set<ObjectIdentifier>()
    let grads = parameters.compactMap(\.grad).filter { seen.insert(ObjectIdentifier($0)).inserted }
    var total = 0.0
    for g in grads { total += sumOfSquares(g.pointer, g.count) }
    let norm = Float(total.squareRoot())
    let coefficient = maxNorm / (norm + 1e-6)
    if coefficient < 1 {
        for g in grads {
            let p = g.pointer
            parallelFor(g.count, grain: 1 << 16) { r in for j in r { p[j] *= coefficient } }
        }
    }
    return norm
}

// MARK: Learning-rate schedules

/// Linear warmup from 0 to `peak` over `warmupSteps`, then a half cosine down to `minLR` at
/// `totalSteps` (constant after). Step `s` is the number of updates already taken, so the first
/// update uses `lr(at: 0)` (0 when there is a warmup), as in diffusers' cosine schedule.
public struct WarmupCosineSchedule: Sendable, Equatable, Codable {
    /// The rate reached at the end of warmup.
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minLR: Float

    public init(peak: Float, warmupSteps: Int, totalSteps: Int, minLR: Float = 0) {
        precondition(warmupSteps >= 0 && totalSteps >= warmupSteps, "WarmupCosineSchedule: need 0 ≤ warmupSteps ≤ totalSteps")
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minLR = minLR
    }

    /// The learning rate for the update after `step` updates.
    public func lr(at step: Int) -> Float {
        let step = max(0, step)
        if step < warmupSteps { return Float(Double(peak) * Double(step) / Double(warmupSteps)) }
        let progress = min(1, Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps)))
        return Float(Double(minLR) + Double(peak - minLR) * 0.5 * (1 + cos(Double.pi * progress)))
    }
}

/// Lowers the learning rate when a metric to be minimised stops improving, as
/// torch.optim.lr_scheduler.ReduceLROnPlateau (mode "min", relative threshold): a metric is an
/// improvement when below best·(1 − threshold); after more than `patience` non-improving steps the
/// rate becomes max(lr·factor, minLR) (changes smaller than `eps` are ignored), then `cooldown`
/// steps pass before bad steps count again. Codable, so it can be checkpointed.
public struct ReduceLROnPlateau: Sendable, Equatable, Codable {
    /// Multiplier applied to the rate on a plateau (in [0, 1)).
    public var factor: Float
    /// Non-improving steps tolerated before the rate drops.
    public var patience: Int
    /// Relative improvement needed to count as better (0: any decrease).
    public var threshold: Float
    /// Steps after a drop during which bad steps are not counted.
    public var cooldown: Int
    /// The rate never drops below this.
    public var minLR: Float
    /// Drops smaller than this are skipped.
    public var eps: Float
    /// The current learning rate.
    public private(set) var lr: Float
    /// The best metric so far (+∞ before the first step).
    public private(set) var best: Float = .infinity
    /// Consecutive steps without improvement.
    public private(set) var badSteps = 0
    /// Steps of cooldown left.
    public private(set) var cooldownLeft = 0

    public init(lr: Float, factor: Float = 0.1, patience: Int = 10, threshold: Float = 0, cooldown: Int = 0,
                minLR: Float = 0, eps: Float = 1e-8) {
        precondition(factor < 1 && factor >= 0, "ReduceLROnPlateau: factor must lie in [0, 1)")
        precondition(patience >= 0 && cooldown >= 0, "ReduceLROnPlateau: patience and cooldown must be ≥ 0")
        self.lr = lr
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.cooldown = cooldown
        self.minLR = minLR
        self.eps = eps
    }

    /// Records one metric value (e.g. a validation loss) and returns the learning rate to use next.
    @discardableResult
    public mutating func step(_ metric: Float) -> Float {
        if metric < best * (1 - threshold) {
            best = metric
            badSteps = 0
        } else {
            badSteps += 1
        }
        if cooldownLeft > 0 {
            cooldownLeft -= 1
            badSteps = 0
        }
        if badSteps > patience {
            let newLR = max(lr * factor, minLR)
            if lr - newLR > eps { lr = newLR }
            cooldownLeft = cooldown
            badSteps = 0
        }
        return lr
    }
}

// MARK: EMA

/// An exponential moving average of parameters ("shadow" weights, as diffusers' EMAModel without
/// decay warmup): after each optimiser step, `update()` sets s ← s − (1 − decay)(s − p).
public final class EMA {
    /// The tracked parameters.
    public let parameters: [Tensor]
    /// The averaged copies, one per parameter (same shapes).
    public let shadow: [Tensor]
    /// Weight kept by the average at each update (e.g. 0.999).
    public var decay: Float
    /// How many times `update()` has run.
    public private(set) var updates = 0

    /// Starts the average at the parameters' current values.
    public init(parameters: [Tensor], decay: Float) {
        precondition((0...1).contains(decay), "EMA: decay must lie in [0, 1]")
        self.parameters = parameters
        self.shadow = parameters.map { $0.copy() }
        self.decay = decay
    }

    /// Moves every shadow tensor toward its parameter.
    public func update() {
        let rate = 1 - decay
        for (s, p) in zip(shadow, parameters) {
            let sp = s.pointer, pp = p.pointer
            parallelFor(s.count, costPerItem: 2, grain: 1 << 15) { r in
                for j in r { sp[j] -= rate * (sp[j] - pp[j]) }
            }
        }
        updates += 1
    }

    /// Writes the averaged values into `parameters` (e.g. a copy of the model used for sampling).
    public func copyTo(_ parameters: [Tensor]) {
        precondition(parameters.count == shadow.count, "EMA.copyTo: \(parameters.count) tensors for \(shadow.count) shadows")
        for (p, s) in zip(parameters, shadow) {
            precondition(p.shape == s.shape, "EMA.copyTo: shape \(p.shape) for a shadow of shape \(s.shape)")
            p.assign(s)
        }
    }

    /// "i.shadow" for each parameter and "updates" (copies).
    public func state() -> [(String, Tensor)] {
        [("updates", Tensor(scalar: Float(updates)))] + shadow.enumerated().map { ("\($0.offset).shadow", $0.element.copy()) }
    }

    /// Restores a snapshot from `state()`; every shadow must be present.
    public func loadState(_ state: [String: Tensor]) throws {
        let s = try StateSnapshot(owner: "EMA", parameters: parameters, state: state, fields: ["shadow"], globals: ["updates"])
        let values = try shadow.indices.map { try s.buffer($0, "shadow") }
        guard let n = try s.scalar("updates", in: s.globals) else { throw OptimizerStateError.missingKey(optimizer: "EMA", key: "updates") }
        guard n.isFinite, n >= 0, n == n.rounded() else {
            throw OptimizerStateError.invalidValue(optimizer: "EMA", key: "updates", reason: "must be a whole number ≥ 0, is \(n)")
        }
        for (t, v) in zip(shadow, values) { t.assign(v) }
        updates = Int(n)
    }
}
