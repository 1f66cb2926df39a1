import Foundation
import Testing
@testable import Tensors

@Suite("Gradients of element-wise, matmul, reduce, shape and softmax ops")
struct CoreOpGradientTests {
    @Test("broadcast add/sub/mul/div", arguments: [
        ([2, 3, 4], [2, 3, 4]), ([2, 3, 4], [4]), ([2, 3, 4], [3, 1]), ([1, 3, 1], [2, 1, 4]), ([2, 3, 4], [1]),
    ])
    func broadcastBinary(a: [Int], b: [Int]) {
        let x = randomTensor(a, seed: 1), y = randomTensor(b, seed: 2) + 3  // keep the divisor away from 0
        checkGradients([x, y]) { $0[0] + $0[1] }
        checkGradients([x, y]) { $0[0] - $0[1] }
        checkGradients([x, y]) { $0[0] * $0[1] }
        checkGradients([x, y]) { $0[0] / $0[1] }
    }

    @Test func scalarAndUnary() {
        let x = randomTensor([3, 5], seed: 3)
        checkGradients([x]) { ($0[0] * 2.5 + 1) - 0.5 }
        checkGradients([x]) { 3 - $0[0] }
        checkGradients([x]) { -$0[0] }
        checkGradients([x]) { $0[0].exp() }
        checkGradients([x]) { $0[0].square() }
        checkGradients([x]) { $0[0].tanh() }
        checkGradients([x]) { $0[0].sigmoid() }
        let pos = randomTensor([3, 5], seed: 4).abs() + 0.5
        checkGradients([pos]) { $0[0].log() }
        checkGradients([pos]) { $0[0].sqrt() }
        checkGradients([pos]) { $0[0].pow(1.7) }
        // clamp/abs: inputs kept away from the kinks at ±0.5 and 0
        let away = Tensor([-2, -1, -0.3, 0.2, 0.9, 1.8], shape: [2, 3])
        checkGradients([away]) { $0[0].clamped(-0.5, 0.5) }
        checkGradients([away]) { $0[0].abs() }
    }

    @Test func activations() {
        let x = Tensor([-2.1, -1.3, -0.4, -0.15, 0.12, 0.5, 1.1, 2.7], shape: [2, 4])
        checkGradients([x]) { $0[0].silu() }
        checkGradients([x]) { $0[0].gelu() }
        checkGradients([x]) { $0[0].gelu(approximate: true) }
        checkGradients([x]) { $0[0].relu() }
        checkGradients([x]) { $0[0].leakyRelu(0.1) }
    }

    /// The fused GEGLU gate: finite differences (widths with and without a partial 8-lane tail) and
    /// the chunk → gelu → multiply chain it replaces, values and gradients.
    @Test func gegluMatchesTheChain() {
        for width in [3, 8, 13] {
            var rng = RNG(seed: UInt64(width))
            let x = Tensor.randn([2, 3, 2 * width], rng: &rng)
            checkGradients([x]) { $0[0].geglu() }
            x.requiresGrad = true
            x.grad = nil
            let r = Tensor.randn([2, 3, width], rng: &rng)
            (x.geglu() * r).sum().backward()
            let fused = x.grad!.array
            x.grad = nil
            let parts = x.chunked(2, axis: -1)
            let chain = parts[0] * parts[1].gelu()
            (chain * r).sum().backward()
            #expect(zip(noGrad { x.geglu() }.array, chain.array).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) })
            #expect(zip(fused, x.grad!.array).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
        }
    }

    @Test("matmul", arguments: [
        ([3, 4], [4, 5], false), ([2, 3, 4], [4, 5], false), ([2, 3, 4], [2, 4, 5], false),
        ([2, 3, 4], [1, 4, 5], false), ([1, 3, 4], [2, 4, 5], false), ([2, 2, 3, 4], [2, 2, 5, 4], true),
        ([2, 3, 4], [5, 4], true),
    ])
    func matmul(a: [Int], b: [Int], transposed: Bool) {
        let x = randomTensor(a, seed: 5), y = randomTensor(b, seed: 6)
        checkGradients([x, y]) { $0[0].matmul($0[1], transposeOther: transposed) }
    }

    @Test func linearLayer() {
        let x = randomTensor([2, 3, 4], seed: 7), w = randomTensor([5, 4], seed: 8), b = randomTensor([5], seed: 9)
        checkGradients([x, w, b]) { linear($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients([x, w]) { linear($0[0], weight: $0[1], bias: nil) }
    }

    @Test func reductions() {
        let x = randomTensor([2, 3, 4], seed: 10)
        checkGradients([x]) { $0[0].sum(axes: [1]) }
        checkGradients([x]) { $0[0].sum(axes: [0, 2], keepDims: true) }
        checkGradients([x]) { $0[0].mean(axes: [-1]) }
        checkGradients([x]) { $0[0].sum() }
        checkGradients([x]) { $0[0].mean() }
        checkGradients([randomTensor([3, 1], seed: 11)]) { $0[0].expanded(to: [2, 3, 4]) }
    }

    @Test func shapeOps() {
        let x = randomTensor([2, 3, 4], seed: 12), y = randomTensor([2, 2, 4], seed: 13)
        checkGradients([x]) { $0[0].reshaped([6, -1]) }
        checkGradients([x]) { $0[0].permuted([2, 0, 1]) }
        checkGradients([x]) { $0[0].transposed(0, 1) }
        checkGradients([x]) { $0[0].sliced(axis: 1, 1..<3) }
        checkGradients([x, y]) { Tensor.concat([$0[0], $0[1]], axis: 1) }
        checkGradients([x, x.copy()]) { Tensor.stack([$0[0], $0[1]], axis: 1) }
        checkGradients([x]) { $0[0].chunked(2, axis: 2)[1] }
    }

    @Test func softmaxFamily() {
        let x = randomTensor([3, 6], seed: 14)
        checkGradients([x]) { $0[0].softmax() }
        checkGradients([x]) { $0[0].logSoftmax() }
        checkGradients([x]) { crossEntropy($0[0], targets: [0, 5, 2]) }
    }

    @Test func attention() {
        let q = randomTensor([2, 2, 5, 4], seed: 15), k = randomTensor([2, 2, 3, 4], seed: 16)
        let v = randomTensor([2, 2, 3, 6], seed: 17)
        checkGradients([q, k, v]) { scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2]).output }
        checkGradients([q, k, v]) {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], returnProbabilities: true).probabilities!
        }
    }

    /// The flash kernel (online softmax over key blocks, probabilities recomputed in the backward
    /// pass) has its own finite-difference check with tiles smaller than the sequence, so several query
    /// and key blocks, ragged last blocks and the running-max rescale are all exercised; with a mask too.
    @Test func flashAttentionGradients() {
        let q = randomTensor([2, 2, 5, 4], seed: 31), k = randomTensor([2, 2, 7, 4], seed: 32)
        let v = randomTensor([2, 2, 7, 3], seed: 33), mask = randomTensor([5, 7], seed: 34)
        for tiles in [FlashTiles(rows: 2, keys: 3), FlashTiles(rows: 5, keys: 7), FlashTiles(rows: 1, keys: 1)] {
            checkGradients([q, k, v]) { flashAttention($0[0], $0[1], $0[2], scale: 0.7, mask: nil, tiles: tiles) }
            checkGradients([q, k, v]) { flashAttention($0[0], $0[1], $0[2], scale: 0.7, mask: mask, tiles: tiles) }
        }
    }

    /// Flash and the probability-keeping fused op agree in value and in every gradient, also under a
    /// causal (−∞) mask where whole key blocks of a row are masked.
    @Test func flashAttentionMatchesTheFusedOp() {
        let q = randomTensor([3, 2, 19, 8], seed: 41), k = randomTensor([3, 2, 19, 8], seed: 42)
        let v = randomTensor([3, 2, 19, 6], seed: 43), g = randomTensor([3, 2, 19, 6], seed: 44)
        for mask in [nil, causalMask(19), randomTensor([19, 19], seed: 45)] {
            func run(_ f: (Tensor, Tensor, Tensor) -> Tensor) -> [[Float]] {
                for t in [q, k, v] { t.grad = nil; t.requiresGrad = true }
                let y = f(q, k, v)
                y.backward(seed: g)
                defer { for t in [q, k, v] { t.grad = nil; t.requiresGrad = false } }
                return [y.array, q.grad!.array, k.grad!.array, v.grad!.array]
            }
            let reference = run { fusedAttention($0, $1, $2, scale: 0.35, mask: mask).0 }
            for tiles in [FlashTiles(rows: 4, keys: 5), FlashTiles(rows: 64, keys: 8), FlashTiles(rows: 7, keys: 64)] {
                let flash = run { flashAttention($0, $1, $2, scale: 0.35, mask: mask, tiles: tiles) }
                for (a, b) in zip(reference, flash) {
                    let err = zip(a, b).map { abs($0 - $1) }.max()!
                    #expect(err < 2e-5, "tiles \(tiles.rows)×\(tiles.keys): error \(err)")
                }
            }
        }
    }

    /// Regression: the backward pass recomputes scores with the mask, so the op must keep the mask
    /// alive itself — a causal mask made per call (CLIP's) is freed before backward, and its reused
    /// memory turned training losses into NaN.
    @Test func flashAttentionKeepsItsMaskAlive() {
        let q = randomTensor([2, 2, 9, 4], seed: 51), k = randomTensor([2, 2, 9, 4], seed: 52)
        let v = randomTensor([2, 2, 9, 3], seed: 53), g = randomTensor([2, 2, 9, 3], seed: 54)
        for t in [q, k, v] { t.requiresGrad = true }
        var y: Tensor
        do { y = flashAttention(q, k, v, scale: 0.5, mask: causalMask(9), tiles: FlashTiles(rows: 4, keys: 4)) }
        let junk = (0..<256).map { _ in Storage(count: 81, repeating: .nan) }   // takes over freed memory
        y.backward(seed: g)
        withExtendedLifetime(junk) {}
        let flash = [q.grad!.array, k.grad!.array, v.grad!.array]
        for t in [q, k, v] { t.grad = nil }
        fusedAttention(q, k, v, scale: 0.5, mask: causalMask(9)).0.backward(seed: g)
        for (a, b) in zip([q.grad!.array, k.grad!.array, v.grad!.array], flash) {
            #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-5 })
        }
    }

    /// The no-grad path scores query chunks in scratch blocks; it must give the fused op's output, with a
    /// ragged last chunk, a broadcast mask and one-row chunks.
    @Test func chunkedInferenceAttentionMatchesTheFusedOp() {
        let q = randomTensor([2, 3, 37, 8], seed: 21), k = randomTensor([2, 3, 29, 8], seed: 22), v = randomTensor([2, 3, 29, 5], seed: 23)
        let mask = randomTensor([37, 29], seed: 24)
        for m in [nil, mask] {
            let (fused, _) = fusedAttention(q, k, v, scale: 0.3, mask: m)
            for rows in [1, 5, 16, 37, 100] {
                let chunked = chunkedAttention(q, k, v, scale: 0.3, mask: m, chunkRows: rows)
                let err = zip(fused.array, chunked.array).map { abs($0 - $1) }.max()!
                #expect(err < 1e-6, "chunk rows \(rows): error \(err)")
            }
        }
        // scaledDotProductAttention takes the chunked path without grad and gives the same values.
        let plain = GradMode.withoutGrad { scaledDotProductAttention(query: q, key: k, value: v).output }
        #expect(zip(plain.array, fusedAttention(q, k, v, scale: 1 / Float(8).squareRoot(), mask: nil).0.array).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    @Test func dropoutMasksAndScales() {
        var rng = RNG(seed: 1)
        let x = Tensor(ones: [1000])
        let y = x.dropout(0.25, training: true, rng: &rng)
        let zeros = y.array.filter { $0 == 0 }.count
        #expect(zeros > 180 && zeros < 320)
        #expect(y.array.allSatisfy { $0 == 0 || abs($0 - 1 / 0.75) < 1e-6 })
        #expect(x.dropout(0.25, training: false, rng: &rng) === x)
        // The same seed gives the same mask on every call, so finite differences see one function.
        checkGradients([randomTensor([4, 5], seed: 18)]) { t in
            var r = RNG(seed: 2)
            return t[0].dropout(0.3, training: true, rng: &r)
        }
    }
}

@Suite struct AutogradTests {
    @Test func noGradBuildsNoTape() {
        let w = randomTensor([3, 3], seed: 1)
        w.requiresGrad = true
        let y = noGrad { w * 2 }
        #expect(y.node == nil)
        #expect((w * 2).node != nil)
    }

    @Test func gradientWrtPlainInput() {
        let x = Tensor([1, 2, 3])
        let (value, grads) = valueAndGradients(at: [x]) { ($0[0] * $0[0]).sum() }
        let g = grads[0]
        #expect(value.item == 14)
        #expect(g.array == [2, 4, 6])
        #expect(x.grad == nil && !x.requiresGrad)
    }

    @Test func reusedTensorAccumulates() {
        let x = Tensor([1, 2])
        x.requiresGrad = true
        ((x * x) + x * 3).sum().backward()
        #expect(x.grad!.array == [5, 7])
    }

    @Test func detachStopsGradient() {
        let x = Tensor([1, 2])
        x.requiresGrad = true
        ((x.detached() * x)).sum().backward()
        #expect(x.grad!.array == [1, 2])
    }

    @Test func rngIsReproducible() {
        var a = RNG(seed: 42), b = RNG(seed: 42)
        #expect(Tensor.randn([100], rng: &a).array == Tensor.randn([100], rng: &b).array)
        var c = RNG(seed: 43)
        #expect(Tensor.randn([100], rng: &c).array != Tensor.randn([100], rng: &a).array)
        var d = RNG(seed: 7)
        let n = Tensor.randn([100_000], rng: &d)
        let mean = n.mean().item, sd = (n.square().mean().item - mean * mean).squareRoot()
        #expect(abs(mean) < 0.02 && abs(sd - 1) < 0.02)
    }
}

@Suite struct FastMathTests {
    @Test func vectorExpMatchesLibm() {
        let xs = stride(from: Float(-90), through: 88, by: 0.0137).map { $0 }
        let ys = fastExp(xs)
        for (x, y) in zip(xs, ys) {
            let ref = Foundation.exp(Double(x))
            if ref < 1e-37 { #expect(y < 1e-36); continue }
            #expect(abs(Double(y) - ref) / ref < 5e-7, "exp(\(x)) = \(y), libm \(ref)")
        }
        #expect(fastExp([-.infinity, 0])[1] == 1)
        #expect(fastExp([-.infinity])[0] < 1e-37)
        #expect(fastExp([.nan, 1])[0].isNaN, "NaN in, NaN out")
        #expect(fastExp([.infinity])[0] > 1e38)
        // Lengths around the vector widths (8 and 16 lanes) exercise the C kernel's tails.
        for n in [1, 7, 8, 9, 15, 16, 17, 33] {
            let x = (0..<n).map { Float($0) * 0.37 - 3 }
            #expect(zip(fastExp(x), x).allSatisfy { abs(Double($0) - Foundation.exp(Double($1))) <= 5e-7 * Foundation.exp(Double($1)) })
        }
    }

    /// The C kernels (dispatched per instruction set) against double-precision formulas, on every
    /// CPU the tests run on; on an AVX-512 machine the AVX-512 versions are the ones that run.
    @Test func cKernelsMatchDoublePrecision() {
        let flags = BLAS.cpuFlags()
        if (["avx512f", "avx512bw", "avx512dq", "avx512vl", "fma"] as Set<Substring>).isSubset(of: flags) {
            #expect(elementwiseKernelISA == "avx512")
        }
        var rng = RNG(seed: 5)
        let x = Tensor.randn([3, 37], rng: &rng) * 3
        func sig(_ v: Double) -> Double { 1 / (1 + Foundation.exp(-v)) }
        let y = noGrad { x.silu() }
        for i in 0..<x.count {
            let v = Double(x.pointer[i])
            #expect(abs(Double(y.pointer[i]) - v * sig(v)) <= 1e-6 * max(1, abs(v)))
        }
        x.requiresGrad = true
        x.silu().sum().backward()
        for i in 0..<x.count {
            let v = Double(x.pointer[i]), s = sig(v)
            #expect(abs(Double(x.grad!.pointer[i]) - s * (1 + v * (1 - s))) <= 1e-6)
        }
        let h = Tensor.randn([2, 2 * 19], rng: &rng) * 2
        let out = noGrad { h.geglu() }
        for row in 0..<2 {
            for i in 0..<19 {
                let a = Double(h.pointer[row * 38 + i]), g = Double(h.pointer[row * 38 + 19 + i])
                let ref = a * 0.5 * g * (1 + erf(g / 2.0.squareRoot()))
                #expect(abs(Double(out.pointer[row * 19 + i]) - ref) <= 2e-6 * max(1, abs(ref)))
            }
        }
    }
}
