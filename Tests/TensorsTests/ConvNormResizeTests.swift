import Foundation
import Testing
@testable import Tensors

/// Direct-loop reference convolution in Double (NCHW, weight [Cout, Cin, kh, kw], zero padding).
private func naiveConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride s: Int, padding p: Int) -> [Double] {
    let n = x.shape[0], cin = x.shape[1], h = x.shape[2], wd = x.shape[3]
    let cout = w.shape[0], kh = w.shape[2], kw = w.shape[3]
    let ho = (h + 2 * p - kh) / s + 1, wo = (wd + 2 * p - kw) / s + 1
    let px = x.pointer, pw = w.pointer
    var out = [Double](repeating: 0, count: n * cout * ho * wo)
    for img in 0..<n {
        for co in 0..<cout {
            for oy in 0..<ho {
                for ox in 0..<wo {
                    var acc = Double(b?.pointer[co] ?? 0)
                    for ci in 0..<cin {
                        for i in 0..<kh {
                            let iy = oy * s - p + i
                            if iy < 0 || iy >= h { continue }
                            for j in 0..<kw {
                                let ix = ox * s - p + j
                                if ix < 0 || ix >= wd { continue }
                                acc += Double(px[((img * cin + ci) * h + iy) * wd + ix])
                                    * Double(pw[((co * cin + ci) * kh + i) * kw + j])
                            }
                        }
                    }
                    out[((img * cout + co) * ho + oy) * wo + ox] = acc
                }
            }
        }
    }
    return out
}

private func maxDifference(_ a: [Float], _ b: [Double]) -> Double {
    zip(a, b).reduce(0) { max($0, abs(Double($1.0) - $1.1)) }
}

private func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

private func dot(_ a: Tensor, _ b: Tensor) -> Double {
    var s = 0.0
    for i in 0..<a.count { s += Double(a.pointer[i]) * Double(b.pointer[i]) }
    return s
}

@Suite("conv2d")
struct ConvTests {
    // (batch, cin, cout, h, w, kh, kw, stride, padding)
    static let cases: [[Int]] = [
        [2, 3, 4, 5, 6, 3, 3, 1, 1],
        [2, 2, 3, 7, 5, 3, 3, 2, 1],
        [1, 3, 2, 6, 5, 3, 3, 1, 0],
        [3, 2, 2, 6, 6, 3, 3, 2, 0],
        [3, 2, 3, 5, 4, 1, 1, 1, 0],   // pointwise: plain GEMM, no unfolding
        [2, 3, 2, 6, 7, 1, 1, 2, 0],   // 1×1 with stride goes through im2col
        [2, 2, 2, 4, 5, 1, 1, 1, 1],   // 1×1 with padding
        [4, 2, 2, 5, 6, 2, 3, 1, 1],   // rectangular kernel
    ]

    @Test("gradients", arguments: cases)
    func gradients(c: [Int]) {
        let x = randomTensor([c[0], c[1], c[3], c[4]], seed: 1)
        let w = randomTensor([c[2], c[1], c[5], c[6]], seed: 2, std: 0.5)
        let b = randomTensor([c[2]], seed: 3)
        checkGradients([x, w, b]) { conv2d($0[0], weight: $0[1], bias: $0[2], stride: c[7], padding: c[8]) }
        checkGradients([x, w]) { conv2d($0[0], weight: $0[1], bias: nil, stride: c[7], padding: c[8]) }
    }

    @Test("matches a direct loop", arguments: cases)
    func matchesDirectLoop(c: [Int]) {
        let x = randomTensor([c[0], c[1], c[3], c[4]], seed: 4)
        let w = randomTensor([c[2], c[1], c[5], c[6]], seed: 5)
        let b = randomTensor([c[2]], seed: 6)
        let y = conv2d(x, weight: w, bias: b, stride: c[7], padding: c[8])
        let ho = (c[3] + 2 * c[8] - c[5]) / c[7] + 1, wo = (c[4] + 2 * c[8] - c[6]) / c[7] + 1
        #expect(y.shape == [c[0], c[2], ho, wo])
        #expect(maxDifference(y.array, naiveConv(x, w, b, stride: c[7], padding: c[8])) < 1e-4)
        let y0 = conv2d(x, weight: w, bias: nil, stride: c[7], padding: c[8])
        #expect(maxDifference(y0.array, naiveConv(x, w, nil, stride: c[7], padding: c[8])) < 1e-4)
    }

    /// Sizes big enough for the threaded paths (whole images per thread, and one image split over
    /// channels): the forward matches the direct loop and the backward is its exact adjoint,
    /// ⟨conv(x, W), g⟩ = ⟨x, dx⟩ = ⟨W, dW⟩ for a bias-free conv.
    @Test("threaded paths: values and adjoint identity", arguments: [1, 2, 3, 4])
    func threadedPaths(batch: Int) {
        for (k, s, p) in [(3, 1, 1), (3, 2, 1), (1, 1, 0)] {
            let x = randomTensor([batch, 8, 16, 18], seed: 7), w = randomTensor([6, 8, k, k], seed: 8, std: 0.2)
            let g = randomTensor([batch, 6, (16 + 2 * p - k) / s + 1, (18 + 2 * p - k) / s + 1], seed: 9)
            x.requiresGrad = true; w.requiresGrad = true
            let y = conv2d(x, weight: w, bias: nil, stride: s, padding: p)
            #expect(maxDifference(y.array, naiveConv(x, w, nil, stride: s, padding: p)) < 1e-3)
            y.backward(seed: g)
            let yg = dot(y, g)
            #expect(abs(yg - dot(x, x.grad!)) < 1e-3 * max(1, abs(yg)))
            #expect(abs(yg - dot(w, w.grad!)) < 1e-3 * max(1, abs(yg)))
        }
    }

    /// 3×3 stride-1 convolutions of batches ≥ 8 take oneDNN's Winograd where it has one (the training
    /// batches on AVX-512), every other kind direct (SD's CFG batch of 2 measured slower with it);
    /// `L2S_CONV_ALGO=direct` turns Winograd off.
    @Test("oneDNN takes Winograd for 3×3 stride-1 convolutions", arguments: [
        [32, 128, 128, 16, 16, 3, 3, 1, 1], [32, 64, 64, 32, 32, 3, 3, 1, 1], [2, 128, 64, 8, 8, 1, 1, 1, 0],
        [2, 32, 64, 32, 32, 3, 3, 2, 1], [2, 320, 320, 64, 64, 3, 3, 1, 1],
    ])
    func oneDNNTakesWinograd(c: [Int]) {
        guard OneDNNConv.isAvailable, elementwiseKernelISA.hasPrefix("avx512") else { return }
        let (n, cin, cout, h, w, kh, kw, s, p) = (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8])
        let g = ConvGeometry(n: n, cin: cin, h: h, w: w, cout: cout, kh: kh, kw: kw, stride: s, pad: p,
                             ho: (h + 2 * p - kh) / s + 1, wo: (w + 2 * p - kw) / s + 1)
        let expected: OneDNNConv.Algorithm = kh == 3 && s == 1 && n >= 8 && OneDNNConv.winogradAllowed ? .winograd : .direct
        for kind in 0..<3 { #expect(OneDNNConv.algorithm(g, kind: kind) == expected, "\(c) kind \(kind)") }
    }

    /// oneDNN's primitives (where libdnnl.so.2 is installed) against the engine's own paths on the same
    /// data: forward with and without bias, dx and dW, over the small cases (odd sizes, strides,
    /// paddings, 1×1, rectangular kernels) and the embedded model's and SD's kinds of shapes.
    @Test("oneDNN agrees with the built-in paths", arguments: cases + [
        [32, 64, 64, 16, 16, 3, 3, 1, 1], [2, 32, 64, 32, 32, 3, 3, 2, 1], [1, 3, 32, 32, 32, 3, 3, 1, 1],
        [2, 128, 64, 8, 8, 1, 1, 1, 0], [3, 16, 8, 9, 7, 3, 3, 1, 1],
        [32, 128, 128, 16, 16, 3, 3, 1, 1], [2, 320, 320, 64, 64, 3, 3, 1, 1],
    ])
    func oneDNNMatchesBuiltin(c: [Int]) {
        let installed = ["/usr/lib/x86_64-linux-gnu/libdnnl.so.2", "/usr/lib/aarch64-linux-gnu/libdnnl.so.2"]
            .contains { FileManager.default.fileExists(atPath: $0) }
        guard installed && ProcessInfo.processInfo.environment["L2S_CONV"] != "builtin" else { return }
        #expect(OneDNNConv.isAvailable, "libdnnl.so.2 is installed but did not load")
        let (n, cin, cout, h, w, kh, kw, s, p) = (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8])
        let ho = (h + 2 * p - kh) / s + 1, wo = (w + 2 * p - kw) / s + 1
        let g = ConvGeometry(n: n, cin: cin, h: h, w: w, cout: cout, kh: kh, kw: kw, stride: s, pad: p, ho: ho, wo: wo)
        let x = randomTensor([n, cin, h, w], seed: 31), wt = randomTensor([cout, cin, kh, kw], seed: 32, std: 0.2)
        let b = randomTensor([cout], seed: 33), dy = randomTensor([n, cout, ho, wo], seed: 34)
        func scale(_ t: Tensor) -> Float { max(1, t.array.map { abs($0) }.max()!) }
        for bias in [b, nil] {
            let y1 = Tensor(uninitialized: [n, cout, ho, wo]), y2 = Tensor(uninitialized: [n, cout, ho, wo])
            let took = OneDNNConv.forward(x.pointer, wt.pointer, bias?.pointer, y1.pointer, g, always: true)
            if c == [32, 64, 64, 16, 16, 3, 3, 1, 1] { #expect(took, "oneDNN declined a training-batch 3×3 conv") }
            guard took else { continue }
            convForwardBuiltin(x.pointer, wt.pointer, bias?.pointer, y2.pointer, g)
            #expect(maxDifference(y1.array, y2.array) < 1e-4 * scale(y2), "forward \(c) bias \(bias != nil)")
        }
        let dx1 = Tensor(uninitialized: x.shape), dx2 = Tensor(uninitialized: x.shape)
        let dw1 = Tensor(uninitialized: wt.shape), dw2 = Tensor(uninitialized: wt.shape)
        convBackwardBuiltin(dy.pointer, x.pointer, wt.pointer, dx2.pointer, dw2.pointer, g)
        if OneDNNConv.backwardData(dy.pointer, wt.pointer, dx1.pointer, g, always: true) {
            #expect(maxDifference(dx1.array, dx2.array) < 1e-4 * scale(dx2), "dx \(c)")
        }
        if OneDNNConv.backwardWeights(dy.pointer, x.pointer, dw1.pointer, g, always: true) {
            #expect(maxDifference(dw1.array, dw2.array) < 1e-4 * scale(dw2), "dW \(c)")
        }
    }

    /// Which convs go to oneDNN: the training batches' and SD's large latents, not a sampling step of the
    /// embedded model, SD's 16×16 and 8×8 levels, 1×1 convs or a 4-channel input conv.
    @Test func oneDNNPolicy() {
        func g(_ n: Int, _ cin: Int, _ cout: Int, _ h: Int, _ k: Int = 3, _ s: Int = 1) -> ConvGeometry {
            let ho = (h + 2 * (k / 2) - k) / s + 1
            return ConvGeometry(n: n, cin: cin, h: h, w: h, cout: cout, kh: k, kw: k, stride: s, pad: k / 2, ho: ho, wo: ho)
        }
        #expect(OneDNNConv.offered(g(32, 64, 64, 16)) && OneDNNConv.offered(g(32, 64, 64, 8)))
        #expect(OneDNNConv.offered(g(2, 320, 320, 64)) && OneDNNConv.offered(g(2, 640, 640, 32)))
        #expect(!OneDNNConv.offered(g(2, 32, 32, 32)) && !OneDNNConv.offered(g(2, 64, 64, 16)))
        #expect(!OneDNNConv.offered(g(2, 1280, 1280, 16)) && !OneDNNConv.offered(g(2, 640, 640, 32, 3, 2)))
        #expect(!OneDNNConv.offered(g(2, 320, 320, 64, 1)) && !OneDNNConv.offered(g(2, 4, 320, 64)))
    }

    /// Several threads calling oneDNN at once (each with its own stream, scratchpad and buffers) get
    /// what the built-in path computes.
    @Test func oneDNNConcurrentCalls() {
        guard OneDNNConv.isAvailable else { return }
        let g = ConvGeometry(n: 4, cin: 32, h: 16, w: 16, cout: 48, kh: 3, kw: 3, stride: 1, pad: 1, ho: 16, wo: 16)
        let x = randomTensor([4, 32, 16, 16], seed: 41), wt = randomTensor([48, 32, 3, 3], seed: 42, std: 0.2)
        let b = randomTensor([48], seed: 43)
        let expected = Tensor(uninitialized: [4, 48, 16, 16])
        convForwardBuiltin(x.pointer, wt.pointer, b.pointer, expected.pointer, g)
        let outs = (0..<6).map { _ in Tensor(uninitialized: [4, 48, 16, 16]) }
        let took = Storage(count: 6, repeating: 0)
        DispatchQueue.concurrentPerform(iterations: 6) { i in
            ParallelRegion.run {
                for _ in 0..<5 {
                    if OneDNNConv.forward(x.pointer, wt.pointer, b.pointer, outs[i].pointer, g, always: true) { took.pointer[i] += 1 }
                }
            }
        }
        for i in 0..<6 {
            #expect(took.pointer[i] == 5)
            #expect(maxDifference(outs[i].array, expected.array) < 1e-4)
        }
    }

    /// The shifted-tap path (stride 1, ≥ 16 input channels, ≥ 1024 output pixels) against the unfolded
    /// one on the same data: forward, dx and dW, with both thread splits (one image; whole images per
    /// thread) and several kernels and paddings.
    @Test("shifted taps agree with the unfolded path", arguments: [1, 2, 5])
    func shiftedTapsMatchUnfolded(batch: Int) {
        for (kh, kw, p, h, w) in [(3, 3, 1, 32, 34), (3, 3, 0, 34, 36), (3, 3, 2, 32, 32), (2, 3, 1, 33, 31), (5, 5, 2, 32, 33)] {
            let cin = 16, cout = 12
            let ho = h + 2 * p - kh + 1, wo = w + 2 * p - kw + 1
            let g = ConvGeometry(n: batch, cin: cin, h: h, w: w, cout: cout, kh: kh, kw: kw, stride: 1, pad: p, ho: ho, wo: wo)
            #expect(g.usesShiftedTaps, "\(g) should take the shifted path")
            let x = randomTensor([batch, cin, h, w], seed: 21), wt = randomTensor([cout, cin, kh, kw], seed: 22, std: 0.2)
            let b = randomTensor([cout], seed: 23), dy = randomTensor([batch, cout, ho, wo], seed: 24)
            let y1 = Tensor(uninitialized: [batch, cout, ho, wo]), y2 = Tensor(uninitialized: [batch, cout, ho, wo])
            convForwardShifted(x.pointer, wt.pointer, b.pointer, y1.pointer, g)
            convForwardUnfolded(x.pointer, wt.pointer, b.pointer, y2.pointer, g)
            #expect(maxDifference(y1.array, y2.array) < 1e-4, "forward \(kh)×\(kw) pad \(p)")
            let dx1 = Tensor(uninitialized: x.shape), dx2 = Tensor(uninitialized: x.shape)
            let dw1 = Tensor(uninitialized: wt.shape), dw2 = Tensor(uninitialized: wt.shape)
            convBackwardShifted(dy.pointer, x.pointer, wt.pointer, dx1.pointer, dw1.pointer, g)
            convBackwardUnfolded(dy.pointer, x.pointer, wt.pointer, dx2.pointer, dw2.pointer, g)
            #expect(maxDifference(dx1.array, dx2.array) < 1e-4, "dx \(kh)×\(kw) pad \(p)")
            #expect(maxDifference(dw1.array, dw2.array) < 1e-3 * max(1, dw2.array.map { abs($0) }.max()!), "dW \(kh)×\(kw) pad \(p)")
            // Only one of the two gradients.
            let dxOnly = Tensor(uninitialized: x.shape), dwOnly = Tensor(uninitialized: wt.shape)
            convBackwardShifted(dy.pointer, x.pointer, wt.pointer, dxOnly.pointer, nil, g)
            convBackwardShifted(dy.pointer, x.pointer, wt.pointer, nil, dwOnly.pointer, g)
            #expect(dxOnly.array == dx1.array && dwOnly.array == dw1.array)
        }
    }

    /// conv2d through the shifted path: finite differences and the direct loop.
    @Test func shiftedTapsGradientsAndValues() {
        let x = randomTensor([1, 16, 32, 32], seed: 25), w = randomTensor([2, 16, 3, 3], seed: 26, std: 0.3)
        let b = randomTensor([2], seed: 27)
        #expect(ConvGeometry(n: 1, cin: 16, h: 32, w: 32, cout: 2, kh: 3, kw: 3, stride: 1, pad: 1, ho: 32, wo: 32).usesShiftedTaps)
        #expect(maxDifference(conv2d(x, weight: w, bias: b, padding: 1).array, naiveConv(x, w, b, stride: 1, padding: 1)) < 1e-4)
        checkGradients([w, b], eps: 1e-2, tolerance: 2e-2) { conv2d(x, weight: $0[0], bias: $0[1], padding: 1) }
        // dx by finite differences on a sample of pixels (all 16 384 would take long): the adjoint identity covers the rest.
        x.requiresGrad = true
        let r = randomTensor([1, 2, 32, 32], seed: 28)
        (conv2d(x, weight: w, bias: b, padding: 1) * r).sum().backward()
        for i in stride(from: 0, to: x.count, by: 997) {
            let old = x.pointer[i]
            func loss() -> Double { Double(dot(noGrad { conv2d(x, weight: w, bias: b, padding: 1) }, r)) }
            x.pointer[i] = old + 1e-2; let lp = loss()
            x.pointer[i] = old - 1e-2; let lm = loss()
            x.pointer[i] = old
            let numeric = Float((lp - lm) / 2e-2)
            #expect(abs(numeric - x.grad!.pointer[i]) <= 2e-2 * max(1, abs(numeric)), "dx[\(i)]")
        }
    }

    @Test func onlyWeightNeedsGradient() {
        let x = randomTensor([2, 2, 5, 5], seed: 10), w = randomTensor([3, 2, 3, 3], seed: 11)
        w.requiresGrad = true
        conv2d(x, weight: w, bias: nil, padding: 1).sum().backward()
        #expect(w.grad != nil && x.grad == nil)
        // Each weight tap sums the input pixels it meets; the centre tap meets every pixel.
        let total = x.array.reduce(0, +)
        let channel1 = x.array[25..<50].reduce(0, +) + x.array[75..<100].reduce(0, +)
        #expect(abs(w.grad![0, 1, 1, 1] - channel1) < 1e-4)
        #expect(abs(w.grad![2, 0, 1, 1] + w.grad![2, 1, 1, 1] - total) < 1e-4)
    }
}

@Suite("groupNorm and layerNorm")
struct NormTests {
    @Test("groupNorm gradients", arguments: [
        ([2, 4, 3, 3], 1), ([2, 4, 3, 3], 2), ([2, 6, 5], 3), ([1, 4, 2, 3], 4), ([3, 4], 2),
    ])
    func groupNormGradients(shape: [Int], groups: Int) {
        let x = randomTensor(shape, seed: 1)
        let w = randomTensor([shape[1]], seed: 2) + 1, b = randomTensor([shape[1]], seed: 3)
        checkGradients([x, w, b]) { groupNorm($0[0], groups: groups, weight: $0[1], bias: $0[2]) }
        checkGradients([x]) { groupNorm($0[0], groups: groups, weight: nil, bias: nil) }
        checkGradients([x, w]) { groupNorm($0[0], groups: groups, weight: $0[1], bias: nil) }
    }

    @Test func groupNormValues() {
        // A large common offset must not spoil the variance (shifted one-pass statistics).
        let x = randomTensor([2, 6, 4, 5], seed: 4) * 3 + 1000
        let w = randomTensor([6], seed: 5), b = randomTensor([6], seed: 6)
        let y = groupNorm(x, groups: 3, weight: w, bias: b, eps: 1e-5)
        let group = 2 * 20
        var worst = 0.0
        for img in 0..<2 {
            for gi in 0..<3 {
                let base = (img * 6 + gi * 2) * 20
                let vals = (0..<group).map { Double(x.pointer[base + $0]) }
                let m = vals.reduce(0, +) / Double(group)
                let v = vals.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(group)
                for i in 0..<group {
                    let ch = gi * 2 + i / 20
                    let expected = (vals[i] - m) / (v + 1e-5).squareRoot() * Double(w[ch]) + Double(b[ch])
                    worst = max(worst, abs(Double(y.pointer[base + i]) - expected))
                }
            }
        }
        #expect(worst < 2e-3)  // x ≈ 1000 is stored to float32 precision (≈6e-5), scaled by 1/σ ≈ 1/3
    }

    /// Groups large enough for the vector loops and the 512-value statistics blocks (odd spatial sizes,
    /// groups of 646 and 1,024 values): forward and backward against the formulas in Double.
    @Test("groupNorm on vector-sized groups", arguments: [([2, 8, 17, 19], 4), ([3, 32, 16, 16], 8), ([2, 4, 33], 2)])
    func groupNormLargeGroups(shape: [Int], groups: Int) {
        let n = shape[0], c = shape[1], spatial = shape.dropFirst(2).reduce(1, *), cpg = c / groups
        let x = randomTensor(shape, seed: 11) * 2 + 5, w = randomTensor([c], seed: 12) + 1, b = randomTensor([c], seed: 13)
        let dy = randomTensor(shape, seed: 14)
        x.requiresGrad = true; w.requiresGrad = true; b.requiresGrad = true
        let y = groupNorm(x, groups: groups, weight: w, bias: b)
        y.backward(seed: dy)
        var worstY = 0.0, worstDx = 0.0
        var dw = [Double](repeating: 0, count: c), db = [Double](repeating: 0, count: c)
        for img in 0..<n {
            for gi in 0..<groups {
                let base = (img * c + gi * cpg) * spatial, size = cpg * spatial
                let xs = (0..<size).map { Double(x.pointer[base + $0]) }
                let m = xs.reduce(0, +) / Double(size)
                let r = 1 / ((xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(size)) + 1e-5).squareRoot()
                let xh = xs.map { ($0 - m) * r }
                let gh = (0..<size).map { Double(dy.pointer[base + $0]) * Double(w.pointer[gi * cpg + $0 / spatial]) }
                let meanG = gh.reduce(0, +) / Double(size)
                let meanGX = zip(gh, xh).map { $0 * $1 }.reduce(0, +) / Double(size)
                for i in 0..<size {
                    let ch = gi * cpg + i / spatial
                    worstY = max(worstY, abs(Double(y.pointer[base + i]) - (xh[i] * Double(w.pointer[ch]) + Double(b.pointer[ch]))))
                    worstDx = max(worstDx, abs(Double(x.grad!.pointer[base + i]) - r * (gh[i] - meanG - xh[i] * meanGX)))
                    dw[ch] += Double(dy.pointer[base + i]) * xh[i]
                    db[ch] += Double(dy.pointer[base + i])
                }
            }
        }
        #expect(worstY < 1e-4 && worstDx < 1e-4, "y \(worstY), dx \(worstDx)")
        let worstW = (0..<c).map { abs(Double(w.grad!.pointer[$0]) - dw[$0]) }.max()!
        let worstB = (0..<c).map { abs(Double(b.grad!.pointer[$0]) - db[$0]) }.max()!
        #expect(worstW < 1e-3 && worstB < 1e-3, "dW \(worstW), dB \(worstB)")
    }

    @Test("layerNorm gradients", arguments: [[3, 5], [2, 3, 6], [7]])
    func layerNormGradients(shape: [Int]) {
        let x = randomTensor(shape, seed: 7)
        let w = randomTensor([shape.last!], seed: 8) + 1, b = randomTensor([shape.last!], seed: 9)
        checkGradients([x, w, b]) { layerNorm($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients([x]) { layerNorm($0[0], weight: nil, bias: nil) }
        checkGradients([x, b]) { layerNorm($0[0], weight: nil, bias: $0[1]) }
    }

    @Test func layerNormValues() {
        let x = Tensor([1, 2, 3, 4, -2, 0, 2, 4], shape: [2, 4])
        let y = layerNorm(x, weight: Tensor([1, 2, 1, 1]), bias: Tensor([0, 0, 0, 1]), eps: 0)
        // Row 0: mean 2.5, var 1.25; row 1: mean 1, var 5.
        let r0 = [-1.5, -0.5, 0.5, 1.5].map { $0 / 1.25.squareRoot() }, r1 = [-3.0, -1, 1, 3].map { $0 / 5.0.squareRoot() }
        let expected = [r0[0], 2 * r0[1], r0[2], r0[3] + 1, r1[0], 2 * r1[1], r1[2], r1[3] + 1]
        #expect(maxDifference(y.array, expected) < 1e-5)
    }
}

@Suite("resize")
struct ResizeTests {
    @Test func nearestValuesAndGradient() {
        let x = Tensor([1, 2, 3, 4, 5, 6], shape: [1, 2, 3])
        let y = x.upsampleNearest2x()
        #expect(y.shape == [1, 4, 6])
        #expect(y.array == [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6])
        checkGradients([randomTensor([2, 3, 4, 5], seed: 1)]) { $0[0].upsampleNearest2x() }
    }

    @Test("bilinear gradients", arguments: [
        ([1, 2, 8, 8], 16, 16), ([1, 1, 32, 32], 16, 16), ([1, 1, 64, 64], 16, 16), ([2, 3, 5, 5], 3, 3),
        ([2, 7, 5], 4, 9), ([6, 4], 3, 8), ([3, 3], 3, 3),
    ])
    func bilinearGradients(shape: [Int], height: Int, width: Int) {
        checkGradients([randomTensor(shape, seed: 2)]) { $0[0].resizeBilinear(height: height, width: width) }
    }

    @Test func bilinearHalvingIsTwoByTwoAveraging() {
        let x = randomTensor([2, 3, 32, 32], seed: 3)
        let y = x.resizeBilinear(height: 16, width: 16)
        var expected: [Double] = []
        for plane in 0..<6 {
            for oy in 0..<16 {
                for ox in 0..<16 {
                    let p = x.pointer + plane * 1024
                    let s = Double(p[2 * oy * 32 + 2 * ox]) + Double(p[2 * oy * 32 + 2 * ox + 1])
                        + Double(p[(2 * oy + 1) * 32 + 2 * ox]) + Double(p[(2 * oy + 1) * 32 + 2 * ox + 1])
                    expected.append(s / 4)
                }
            }
        }
        #expect(y.shape == [2, 3, 16, 16])
        #expect(maxDifference(y.array, expected) < 1e-5)
    }

    @Test func bilinearQuarteringAveragesTheCentreOfEachBlock() {
        // 64 → 16: src = 4·d + 1.5, so each output averages the central 2×2 of its 4×4 block.
        let x = randomTensor([1, 64, 64], seed: 4)
        let y = x.resizeBilinear(height: 16, width: 16)
        var expected: [Double] = []
        for oy in 0..<16 {
            for ox in 0..<16 {
                var s = 0.0
                for dy in 1...2 { for dx in 1...2 { s += Double(x[0, 4 * oy + dy, 4 * ox + dx]) } }
                expected.append(s / 4)
            }
        }
        #expect(maxDifference(y.array, expected) < 1e-5)
    }

    @Test func bilinearUpsamplingAndOddSizes() {
        // 4 → 8 along a row: src = d/2 − 0.25, clamped at 0; the last outputs clamp to the last input.
        let row = Tensor([0, 4, 8, 16], shape: [1, 4])
        #expect(maxDifference(row.resizeBilinear(height: 1, width: 8).array, [0, 1, 3, 5, 7, 10, 14, 16]) < 1e-5)
        // 5 → 3: scale 5/3; src = 1/3, 2, 11/3.
        let r5 = Tensor([0, 3, 6, 9, 12], shape: [1, 5])
        #expect(maxDifference(r5.resizeBilinear(height: 1, width: 3).array, [1, 6, 11]) < 1e-4)
        // Same size is the identity; a non-square resize keeps the leading axes.
        let x = randomTensor([2, 5, 7], seed: 5)
        #expect(x.resizeBilinear(height: 5, width: 7).array == x.array)
        #expect(x.resizeBilinear(height: 3, width: 11).shape == [2, 3, 11])
    }
}

@Suite("embedding")
struct EmbeddingTests {
    @Test func gatherAndScatterAdd() {
        let table = Tensor((0..<15).map(Float.init), shape: [5, 3])
        let y = embedding(table, indices: [4, 0, 4])
        #expect(y.shape == [3, 3])
        #expect(y.array == [12, 13, 14, 0, 1, 2, 12, 13, 14])
        table.requiresGrad = true
        embedding(table, indices: [4, 0, 4]).sum().backward()
        #expect(table.grad!.array == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2])
        checkGradients([randomTensor([5, 3], seed: 1)]) { embedding($0[0], indices: [1, 3, 1, 0, 1]) }
    }

    @Test func indexOutOfRangeTraps() async {
        await #expect(processExitsWith: .failure) {
            _ = embedding(Tensor(zeros: [3, 2]), indices: [0, 3])
        }
    }
}

/// Two layers and an array of layers: parameter names must come out dotted like a state dict.
private final class TinyBlock: Module {
    var conv1: Conv2d
    var norm: GroupNorm
    var heads: [Linear]
    var _scratch: Tensor? = nil

    init(rng: inout RNG) {
        conv1 = Conv2d(2, 4, kernelSize: 3, padding: 1, rng: &rng)
        norm = GroupNorm(groups: 2, channels: 4)
        heads = [Linear(4, 3, rng: &rng), Linear(3, 1, bias: false, rng: &rng)]
        super.init()
    }
}

@Suite("layers")
struct LayerTests {
    @Test func linearAndConvParameters() {
        var rng = RNG(seed: 1)
        let lin = Linear(6, 4, rng: &rng)
        #expect(lin.namedParameters().map(\.name) == ["weight", "bias"])
        #expect(lin.weight.shape == [4, 6] && lin.bias!.shape == [4])
        let bound = 1 / Float(6).squareRoot()
        #expect(lin.weight.maxAbs <= bound && lin.bias!.maxAbs <= bound && lin.weight.maxAbs > bound / 2)
        #expect(lin.parameters.allSatisfy { $0.requiresGrad })
        #expect(Linear(6, 4, bias: false, rng: &rng).namedParameters().map(\.name) == ["weight"])
        #expect(lin(randomTensor([2, 5, 6], seed: 2)).shape == [2, 5, 4])

        let conv = Conv2d(3, 8, kernelSize: 3, stride: 2, padding: 1, rng: &rng)
        #expect(conv.namedParameters().map(\.name) == ["weight", "bias"])
        #expect(conv.weight.shape == [8, 3, 3, 3])
        #expect(conv.weight.maxAbs <= 1 / Float(27).squareRoot())
        #expect(conv.parameters.allSatisfy { $0.requiresGrad })
        #expect(conv(randomTensor([2, 3, 9, 9], seed: 3)).shape == [2, 8, 5, 5])
    }

    @Test func normsAndEmbedding() {
        let gn = GroupNorm(groups: 2, channels: 4)
        #expect(gn.namedParameters().map(\.name) == ["weight", "bias"])
        #expect(gn.weight.array == [1, 1, 1, 1] && gn.bias.array == [0, 0, 0, 0])
        let x = randomTensor([2, 4, 3, 3], seed: 4)
        #expect(maxDifference(gn(x).array, groupNorm(x, groups: 2, weight: nil, bias: nil).array.map(Double.init)) < 1e-6)
        let ln = LayerNorm(5)
        #expect(ln.namedParameters().map(\.name) == ["weight", "bias"])
        #expect(ln(randomTensor([3, 5], seed: 5)).shape == [3, 5])
        var rng = RNG(seed: 6)
        let emb = Embedding(10, 4, rng: &rng)
        #expect(emb.namedParameters().map(\.name) == ["weight"])
        #expect(emb([2, 2, 9]).shape == [3, 4])
        #expect(emb.weight.requiresGrad && gn.parameters.allSatisfy { $0.requiresGrad })
    }

    @Test func nestedModuleNames() {
        var rng = RNG(seed: 7)
        let block = TinyBlock(rng: &rng)
        #expect(block.namedParameters().map(\.name) == [
            "conv1.weight", "conv1.bias", "norm.weight", "norm.bias", "heads.0.weight", "heads.0.bias", "heads.1.weight",
        ])
        #expect(block.parameterCount == 4 * 2 * 9 + 4 + 4 + 4 + 12 + 3 + 3)
    }
}
