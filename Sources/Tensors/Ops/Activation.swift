import Foundation

// Point-wise non-linearities: SiLU, GELU (exact erf and tanh forms), ReLU, LeakyReLU, sigmoid, tanh,
// and dropout. Each backward is the closed-form derivative applied to the saved input.

@inline(__always) func sigmoidScalar(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }

extension Tensor {
    /// x · sigmoid(x).
    public func silu() -> Tensor {
        let out = Tensor(uninitialized: shape)
        let px = pointer, po = out.pointer
        parallelFor(count, grain: 1 << 15) { r in vsilu(px + r.lowerBound, po + r.lowerBound, r.count) }
        return out.recorded("silu", [self]) { g in
            precondition(g.shape == self.shape, "silu: gradient \(g.shape) for input \(self.shape)")
            return [zipLanes(g, self) { gy, x in
                let s = 1 / (1 + simdExp(-x))
                return gy * s * (1 + x * (1 - s))
            }]
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
        let invSqrt2: Float = 0.7071067811865476, invSqrt2Pi: Float = 0.3989422804014327
        @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int, _ n: Int) -> SIMD8<Float> {
            if i + 8 <= n { return UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) }
            var v = SIMD8<Float>()
            for j in 0..<(n - i) { v[j] = p[i + j] }
            return v
        }
        @inline(__always) func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ n: Int) {
            if i + 8 <= n { UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD8<Float>.self); return }
            for j in 0..<(n - i) { p[i + j] = v[j] }
        }
        parallelFor(rows, costPerItem: width * 16, grain: 1 << 14) { r in
            for row in r {
                let a = UnsafePointer(px + row * 2 * width), g = a + width, o = po + row * width
                var i = 0
                while i < width {
                    let gv = load(g, i, width)
                    store(load(a, i, width) * (0.5 * gv * (1 + simdErf(gv * invSqrt2))), o, i, width)
                    i += 8
                }
            }
        }
        return out.recorded("geglu", [self]) { gy in
            precondition(gy.shape == out.shape, "geglu: gradient \(gy.shape) for output \(out.shape)")
            let dx = Tensor(uninitialized: self.shape)
            let pg = gy.pointer, pd = dx.pointer
            parallelFor(rows, costPerItem: width * 24, grain: 1 << 14) { r in
                for row in r {
                    let a = UnsafePointer(px + row * 2 * width), g = a + width, dy = UnsafePointer(pg + row * width)
                    let da = pd + row * 2 * width, dg = da + width
                    var i = 0
                    while i < width {
                        let gv = load(g, i, width), av = load(a, i, width), yv = load(dy, i, width)
                        let cdf = 0.5 * (1 + simdErf(gv * invSqrt2))
                        store(yv * gv * cdf, da, i, width)
                        store(yv * av * (cdf + gv * invSqrt2Pi * simdExp(-0.5 * gv * gv)), dg, i, width)
                        i += 8
                    }
                }
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
