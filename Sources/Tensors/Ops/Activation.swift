import Foundation
import CKernels

// Point-wise non-linearities: SiLU, GELU (exact erf and tanh forms), ReLU, LeakyReLU, sigmoid, tanh,
// and dropout. Each backward is the closed-form derivative applied to the saved input.

@inline(__always) func sigmoidScalar(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }

extension Tensor {
    /// x · sigmoid(x).
    public func silu() -> Tensor {
        let out = Tensor(uninitialized: shape)
        let px = pointer, po = out.pointer
        parallelFor(count, grain: 1 << 15) { r in l2s_silu(px + r.lowerBound, po + r.lowerBound, r.count) }
        return out.recorded("silu", [self]) { g in
            precondition(g.shape == self.shape, "silu: gradient \(g.shape) for input \(self.shape)")
            let gx = Tensor(uninitialized: self.shape)
            let pg = g.pointer, pd = gx.pointer
            parallelFor(self.count, grain: 1 << 15) { r in
                l2s_silu_backward(pg + r.lowerBound, px + r.lowerBound, pd + r.lowerBound, r.count)
            }
            return [gx]
        }
    }

    /// Logistic sigmoid.
    public func sigmoid() -> Tensor {
        let y = mapUnary(self, sigmoidScalar)
        return y.recorded("sigmoid", [self]) { g in [broadcastBinary(g, y) { gy, s in gy * s * (1 - s) }] }
    }

    /// Hyperbolic tangent.
    public func tanh() -> Tensor {
        let y = mapUnary(self) { Foundation.tanh($0) }
        return y.recorded("tanh", [self]) { g in [broadcastBinary(g, y) { gy, t in gy * (1 - t * t) }] }
    }

    /// GELU. `approximate: false` is the exact x·Φ(x) (PyTorch's default); `true` is the tanh form.
    public func gelu(approximate: Bool = false) -> Tensor {
        if approximate {
            let c: Float = 0.7978845608028654  // √(2/π)
            return mapUnary(self) { x in 0.5 * x * (1 + Foundation.tanh(c * (x + 0.044715 * x * x * x))) }
                .recorded("gelu_tanh", [self]) { g in
                    [broadcastBinary(g, self) { gy, x in
                        let u = c * (x + 0.044715 * x * x * x)
                        let t = Foundation.tanh(u)
                        let du = c * (1 + 3 * 0.044715 * x * x)
                        return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
                    }]
                }
        }
        let invSqrt2: Float = 0.7071067811865476, invSqrt2Pi: Float = 0.3989422804014327
        return mapLanes(self) { x in 0.5 * x * (1 + simdErf(x * invSqrt2)) }.recorded("gelu", [self]) { g in
            precondition(g.shape == self.shape, "gelu: gradient \(g.shape) for input \(self.shape)")
            return [zipLanes(g, self) { gy, x in
                gy * (0.5 * (1 + simdErf(x * invSqrt2)) + x * invSqrt2Pi * simdExp(-0.5 * x * x))
            }]
        }
    }

    /// GEGLU's gate in one pass: the last axis [2I] holds (a, g) halves and the result [I] is
    /// a · gelu(g) with the exact GELU, as diffusers' `hidden_states, gate = proj(x).chunk(2, dim=-1);
    /// hidden_states * gelu(gate)`. Forward and backward each read and write every element once
    /// (the chunk → gelu → multiply chain made two slice copies and three temporaries, and its
    /// backward two zero-filled full-width gradients).
    public func geglu() -> Tensor {
        precondition(rank >= 1 && shape[rank - 1] % 2 == 0, "geglu: last axis of \(shape) must be even")
        let width = shape[rank - 1] / 2, rows = count / max(2 * width, 1)
        let out = Tensor(uninitialized: Array(shape.dropLast()) + [width])
        let px = pointer, po = out.pointer
        parallelFor(rows, costPerItem: width * 16, grain: 1 << 14) { r in
            l2s_geglu(px + r.lowerBound * 2 * width, po + r.lowerBound * width, r.count, width)
        }
        return out.recorded("geglu", [self]) { gy in
            precondition(gy.shape == out.shape, "geglu: gradient \(gy.shape) for output \(out.shape)")
            let dx = Tensor(uninitialized: self.shape)
            let pg = gy.pointer, pd = dx.pointer
            parallelFor(rows, costPerItem: width * 24, grain: 1 << 14) { r in
                l2s_geglu_backward(px + r.lowerBound * 2 * width, pg + r.lowerBound * width, pd + r.lowerBound * 2 * width,
                                   r.count, width)
            }
            return [dx]
        }
    }

    /// max(x, 0).
    public func relu() -> Tensor {
        mapUnary(self) { Swift.max($0, 0) }.recorded("relu", [self]) { g in
            [broadcastBinary(g, self) { gy, x in x > 0 ? gy : 0 }]
        }
    }

    /// x for x > 0, slope·x otherwise.
    public func leakyRelu(_ slope: Float = 0.01) -> Tensor {
        mapUnary(self) { $0 > 0 ? $0 : slope * $0 }.recorded("leaky_relu", [self]) { g in
            [broadcastBinary(g, self) { gy, x in x > 0 ? gy : slope * gy }]
        }
    }

    /// Inverted dropout: zeroes each element with probability `p` and scales the rest by 1/(1−p).
    /// Identity when `training` is false or p is 0.
    public func dropout(_ p: Float, training: Bool, rng: inout RNG) -> Tensor {
        guard training, p > 0 else { return self }
        precondition(p < 1, "dropout probability must be < 1")
        let mask = Tensor(uninitialized: shape)
        let scale = 1 / (1 - p)
        for i in 0..<count { mask.pointer[i] = rng.uniform() < p ? 0 : scale }
        return broadcastBinary(self, mask, *).recorded("dropout", [self]) { g in [broadcastBinary(g, mask, *)] }
    }
}
