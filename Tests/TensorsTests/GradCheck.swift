import Testing
@testable import Tensors

/// Finite-difference gradient check: compares the tape's gradient of L = Σ f(x)·R (R fixed random)
/// with central differences of L, element by element, for every input that needs a gradient.
/// The loss is accumulated in Double so float32 rounding does not swamp the differences.
func checkGradients(_ inputs: [Tensor], eps: Float = 1e-2, tolerance: Float = 2e-2, seed: UInt64 = 99,
                    sourceLocation: SourceLocation = #_sourceLocation,
                    _ f: ([Tensor]) -> Tensor) {
    for t in inputs { t.requiresGrad = true; t.grad = nil }
    let out = f(inputs)
    var rng = RNG(seed: seed)
    let r = Tensor.randn(out.shape, rng: &rng)
    func loss() -> Double {
        let y = noGrad { f(inputs) }
        var s = 0.0
        for i in 0..<y.count { s += Double(y.pointer[i]) * Double(r.pointer[i]) }
        return s
    }
    (out * r).sum().backward()
    for (n, t) in inputs.enumerated() {
        let g = t.grad ?? Tensor(zeros: t.shape)  // no gradient = the output does not depend on it
        var worst: Float = 0
        var worstAt = 0
        for i in 0..<t.count {
            let old = t.pointer[i]
            t.pointer[i] = old + eps
            let lp = loss()
            t.pointer[i] = old - eps
            let lm = loss()
            t.pointer[i] = old
            let numeric = Float((lp - lm) / Double(2 * eps))
            let err = abs(numeric - g.pointer[i]) / max(1, abs(numeric), abs(g.pointer[i]))
            if err > worst { worst = err; worstAt = i }
        }
        #expect(worst <= tolerance, "input \(n) \(t.shape): worst relative error \(worst) at \(worstAt)",
                sourceLocation: sourceLocation)
    }
}

func randomTensor(_ shape: [Int], seed: UInt64, std: Float = 1) -> Tensor {
    var rng = RNG(seed: seed)
    return Tensor.randn(shape, rng: &rng, std: std)
}
