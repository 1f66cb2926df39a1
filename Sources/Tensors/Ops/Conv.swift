import CKernels
import Foundation

// 2-D convolution (NCHW, PyTorch weight layout [Cout, Cin, kh, kw], zero padding), two built-in ways
// and oneDNN's.
//
// Shifted taps (stride 1, kernel > 1×1, Cin ≥ 16, ≥ 1024 output pixels per call: the 3×3 convs inside
// the UNets and the VAE at training batches and larger latents): per image the input is zero-padded
// once to [Cin, H+2p, W+2p]; with the output laid on a grid as wide as the padded input, tap (i, j)
// reads the padded image shifted by i·(W+2p) + j, so the conv is kh·kw GEMMs W_ij [Cout, Cin] ·
// shifted input accumulated on the grid, whose extra columns are dropped. No column matrix: it moves
// 1× the input instead of kh·kw×, and needs Cin·(H+2p)·(W+2p) floats of scratch instead of
// Cin·kh·kw·Ho·Wo (an SD 64×64 conv at 320 channels: 5.6 MB instead of 47 MB). Measured on the
// embedded model's training step: 496–506 ms against 526–534 ms unfolded.
//
// Unfolded (strided, thin-input and small convs), per image: the input is unfolded into a column
// matrix col [Cin·kh·kw, Ho·Wo] and out[n] = W[Cout, K] · col, written straight into the NCHW result
// (bias pre-filled, beta = 1), so no output permute is needed. A 1×1 kernel with stride 1 and no
// padding skips the unfolding: the image itself is the [Cin, H·W] column matrix. Backward, per image:
// dW += dY[n] · colᵀ, dcol = Wᵀ · dY[n] folded back onto dx (col2im), db = Σ dY over batch and space.
//
// oneDNN (where libdnnl.so.2 is installed): the large spatial convs go to its JIT primitives first
// (`OneDNNConv`, which says which and why); the two paths above run wherever it declines.
//
// Threading: when there are at least as many images as threads, each thread takes whole images and
// runs its unfolding and single-threaded GEMMs on its own buffers (dW partials are summed at the
// end), which keeps every column matrix in that core's cache and needs no synchronisation. With
// fewer images (sampling one latent) the images run one after another with the unfolding split over
// channels and OpenBLAS threading each GEMM.

/// Shapes of one conv2d call.
struct ConvGeometry {
    let n, cin, h, w, cout, kh, kw, stride, pad, ho, wo: Int
    /// Rows of the column matrix: Cin·kh·kw.
    var k: Int { cin * kh * kw }
    /// Columns of the column matrix: output pixels per image.
    var spatialOut: Int { ho * wo }
    var spatialIn: Int { h * w }
    /// 1×1, stride 1, no padding: the input image already is the column matrix.
    var isPointwise: Bool { kh == 1 && kw == 1 && stride == 1 && pad == 0 }
    /// Input channels from which a stride-1 conv runs as one GEMM per tap (inner dimension Cin) rather
    /// than one over the unfolded columns (inner dimension Cin·kh·kw): below it the per-tap GEMMs are
    /// too thin (the RGB or latent input conv).
    static let minShiftedChannels = 16
    /// Output pixels per call (over the batch) from which the shifted-tap path pays for regrouping the
    /// weights per tap (a copy of Cout·Cin·kh·kw floats each call, as long as a GEMM over ~1/1000 of
    /// its columns): a 16×16 CFG pair or an 8×8 latent stays unfolded.
    static let minShiftedPixels = 1024
    /// Stride 1, a kernel larger than 1×1, at least `minShiftedChannels` inputs and `minShiftedPixels`
    /// output pixels: the shifted-tap path.
    var usesShiftedTaps: Bool {
        stride == 1 && kh * kw > 1 && cin >= ConvGeometry.minShiftedChannels && n * ho * wo >= ConvGeometry.minShiftedPixels
    }

    /// Floor division for possibly negative numerators.
    @inline(__always) static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }

    /// Output columns `ox` whose input column ox·stride − pad + j lies inside [0, w).
    @inline(__always) func validColumns(_ j: Int) -> Range<Int> {
        let lo = max(0, ConvGeometry.floorDiv(pad - j + stride - 1, stride))
        let hi = min(wo, ConvGeometry.floorDiv(w - 1 + pad - j, stride) + 1)
        return lo < hi ? lo..<hi : 0..<0
    }
}

/// Unfolds channels `channels` of one image x [Cin, H, W] into the matching rows of
/// col [Cin·kh·kw, Ho·Wo]: col[(c·kh + i)·kw + j][oy·Wo + ox] = x[c][oy·s − p + i][ox·s − p + j] (0 outside).
@inline(__always)
func im2col(_ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, _ g: ConvGeometry, channels: Range<Int>) {
    let ho = g.ho, wo = g.wo, s = g.stride, p = g.pad, h = g.h, w = g.w
    for c in channels {
        let plane = x + c * h * w
        for i in 0..<g.kh {
            for j in 0..<g.kw {
                let row = col + ((c * g.kh + i) * g.kw + j) * ho * wo
                let valid = g.validColumns(j)
                for oy in 0..<ho {
                    let d = row + oy * wo
                    let iy = oy * s - p + i
                    if iy < 0 || iy >= h || valid.isEmpty {
                        d.update(repeating: 0, count: wo)
                        continue
                    }
                    for ox in 0..<valid.lowerBound { d[ox] = 0 }
                    let src = plane + iy * w - p + j
                    if s == 1 {
                        for ox in valid { d[ox] = src[ox] }
                    } else {
                        for ox in valid { d[ox] = src[ox * s] }
                    }
                    for ox in valid.upperBound..<wo { d[ox] = 0 }
                }
            }
        }
    }
}

/// The adjoint of `im2col` for channels `channels`: adds every column entry back onto the input pixel
/// it was read from. `dx` [Cin, H, W] must be zeroed (or hold a gradient to add to) beforehand.
@inline(__always)
func col2im(_ col: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ g: ConvGeometry, channels: Range<Int>) {
    let ho = g.ho, wo = g.wo, s = g.stride, p = g.pad, h = g.h, w = g.w
    for c in channels {
        let plane = dx + c * h * w
        for i in 0..<g.kh {
            for j in 0..<g.kw {
                let row = col + ((c * g.kh + i) * g.kw + j) * ho * wo
                let valid = g.validColumns(j)
                if valid.isEmpty { continue }
                for oy in 0..<ho {
                    let iy = oy * s - p + i
                    if iy < 0 || iy >= h { continue }
                    let src = row + oy * wo
                    let dst = plane + iy * w - p + j
                    if s == 1 {
                        for ox in valid { dst[ox] += src[ox] }
                    } else {
                        for ox in valid { dst[ox * s] += src[ox] }
                    }
                }
            }
        }
    }
}

/// Whether a batch of `n` images is split whole across threads (else: images in turn, each split).
/// An uneven split of a small batch (3 images on 2 threads) would idle a core, so those go in turn.
@inline(__always)
func convSplitsImages(_ n: Int) -> Bool {
    let threads = Threads.count
    return threads > 1 && n >= threads && (n % threads == 0 || n >= 4 * threads)
}

/// Runs `body(images, slot)` over all `n` images. When `convSplitsImages(n)`, each thread takes a
/// contiguous block of whole images (slot = thread index) inside a parallel region, so the GEMMs it
/// runs stay on that thread (OpenBLAS is always single-threaded; see `Threads`). Otherwise
/// `body(0..<n, 0)` runs inline and should parallelise inside each image.
@inline(__always)
private func forEachImageBlock(_ n: Int, _ body: (Range<Int>, Int) -> Void) {
    guard convSplitsImages(n) else {
        body(0..<n, 0)
        return
    }
    let threads = Threads.count
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let lo = n * t / threads, hi = n * (t + 1) / threads
            if lo < hi { ParallelRegion.run { body(lo..<hi, t) } }
        }
    }
}

/// 2-D cross-correlation as PyTorch's `F.conv2d`: `x` [N, Cin, H, W], `weight` [Cout, Cin, kh, kw],
/// optional `bias` [Cout], equal stride and zero padding on both axes. Result [N, Cout, Ho, Wo] with
/// Ho = (H + 2·padding − kh) / stride + 1. Differentiable in x, weight and bias.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) -> Tensor {
    precondition(x.rank == 4, "conv2d: input must be [N, C, H, W], got \(x.shape)")
    precondition(weight.rank == 4, "conv2d: weight must be [Cout, Cin, kh, kw], got \(weight.shape)")
    precondition(x.shape[1] == weight.shape[1],
                 "conv2d: input has \(x.shape[1]) channels, weight \(weight.shape) expects \(weight.shape[1])")
    precondition(stride >= 1 && padding >= 0, "conv2d: stride \(stride) must be ≥ 1 and padding \(padding) ≥ 0")
    let n = x.shape[0], cin = x.shape[1], h = x.shape[2], w = x.shape[3]
    let cout = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    let ho = (h + 2 * padding - kh) / stride + 1, wo = (w + 2 * padding - kw) / stride + 1
    precondition(h + 2 * padding >= kh && w + 2 * padding >= kw,
                 "conv2d: kernel \(kh)×\(kw) larger than padded input \(h + 2 * padding)×\(w + 2 * padding)")
    if let bias { precondition(bias.count == cout, "conv2d: bias \(bias.shape) for \(cout) output channels") }
    let g = ConvGeometry(n: n, cin: cin, h: h, w: w, cout: cout, kh: kh, kw: kw, stride: stride, pad: padding,
                         ho: ho, wo: wo)
    let out = Tensor(uninitialized: [n, cout, ho, wo])
    convForward(x.pointer, weight.pointer, bias?.pointer, out.pointer, g)
    let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
    return out.recorded("conv2d", inputs) { gy in
        let gx = x.requiresGrad ? Tensor(uninitialized: x.shape) : nil
        let gw = weight.requiresGrad ? Tensor(uninitialized: weight.shape) : nil
        convBackward(gy.pointer, x.pointer, weight.pointer, gx?.pointer, gw?.pointer, g)
        var gb: Tensor? = nil
        if let bias, bias.requiresGrad {
            let r = Tensor(uninitialized: bias.shape)
            convBiasGradient(gy.pointer, r.pointer, g)
            gb = r
        }
        return bias == nil ? [gx, gw] : [gx, gw, gb]
    }
}

/// The column matrix of one image: the image itself for a pointwise conv, else unfolded into `col`
/// (split over channels across threads when `split`).
@inline(__always)
private func columns(_ src: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, _ g: ConvGeometry,
                     split: Bool) -> UnsafePointer<Float> {
    if g.isPointwise { return src }
    if split {
        parallelFor(g.cin, costPerItem: g.kh * g.kw * g.spatialOut, grain: 1 << 14) { r in
            im2col(src, col, g, channels: r)
        }
    } else {
        im2col(src, col, g, channels: 0..<g.cin)
    }
    return UnsafePointer(col)
}

/// Weights [Cout, Cin, kh, kw] regrouped per tap: taps[i·kw + j] = W[:, :, i, j] as a [Cout, Cin] matrix.
func convTapWeights(_ wt: UnsafePointer<Float>, _ g: ConvGeometry) -> Storage {
    let taps = g.kh * g.kw, cout = g.cout, cin = g.cin
    let r = Storage(uninitializedCount: taps * cout * cin)
    let dst = r.pointer
    parallelFor(cout, costPerItem: cin * taps, grain: 1 << 14) { range in
        for co in range {
            for ci in 0..<cin {
                let src = wt + (co * cin + ci) * taps
                for t in 0..<taps { dst[(t * cout + co) * cin + ci] = src[t] }
            }
        }
    }
    return r
}

/// Calls `body(row in the image, row in xpad)` for each of the Cin·H rows of an image [Cin, H, W] and
/// its place inside the zero-bordered xpad [Cin, H+2p, W+2p] (offsets in floats; each row W long).
@inline(__always)
private func forEachPaddedRow(_ g: ConvGeometry, _ body: (Int, Int) -> Void) {
    let hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad
    for c in 0..<g.cin {
        for y in 0..<g.h { body((c * g.h + y) * g.w, (c * hp + y + g.pad) * wp + g.pad) }
    }
}

/// Stride-1 forward without unfolding: the image is zero-padded once to [Cin, Hp, Wp] and each
/// tap (i, j) is one GEMM W_ij [Cout, Cin] · xpad shifted by i·Wp + j, accumulated on an output grid
/// Wp wide whose last Wp − Wo columns are dropped.
func convForwardShifted(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                        _ out: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
    let cin = g.cin, cout = g.cout, hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad, ho = g.ho, wo = g.wo
    let taps = convTapWeights(wt, g)
    let perThread = convSplitsImages(g.n)
    let slots = perThread ? Threads.count : 1
    let padCount = cin * hp * wp, gridCount = cout * ho * wp
    let scratch = Storage(uninitializedCount: (padCount + gridCount) * slots)
    let n = (ho - 1) * wp + wo
    forEachImageBlock(g.n) { images, t in
        let xp = scratch.pointer + t * (padCount + gridCount), grid = xp + padCount
        xp.update(repeating: 0, count: padCount)
        for img in images {
            let src = x + img * cin * g.h * g.w
            forEachPaddedRow(g) { row, padded in (xp + padded).update(from: src + row, count: g.w) }
            for i in 0..<g.kh {
                for j in 0..<g.kw {
                    let tap = i * g.kw + j
                    sgemm(transA: false, transB: false, m: cout, n: n, k: cin, a: taps.pointer + tap * cout * cin, lda: cin,
                          b: xp + i * wp + j, ldb: hp * wp, beta: tap == 0 ? 0 : 1, c: grid, ldc: ho * wp)
                }
            }
            let dst = out + img * cout * ho * wo
            for c in 0..<cout {
                let bc = bias?[c] ?? 0
                for oy in 0..<ho {
                    let from = grid + c * ho * wp + oy * wp, to = dst + (c * ho + oy) * wo
                    for ox in 0..<wo { to[ox] = from[ox] + bc }
                }
            }
        }
    }
}

/// Stride-1 backward without unfolding (the adjoint of `convForwardShifted`): dY is laid on the
/// Wp-wide grid (zeros in the dropped columns); per tap, dW_ij += dY_grid · (xpad shifted)ᵀ and
/// dxpad shifted += W_ijᵀ · dY_grid; dx is dxpad's interior.
func convBackwardShifted(_ gy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>,
                         _ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?, _ g: ConvGeometry) {
    let cin = g.cin, cout = g.cout, h = g.h, w = g.w, pad = g.pad
    let hp = h + 2 * pad, wp = w + 2 * pad, ho = g.ho, wo = g.wo, tapCount = g.kh * g.kw
    // Regrouped again rather than kept from the forward: a tape holding every conv's regrouped
    // weights until the backward would double the conv weights' memory for a copy the size
    // threshold (`minShiftedPixels`) already makes cheap.
    let taps = gx != nil ? convTapWeights(wt, g) : nil
    let perThread = convSplitsImages(g.n)
    let slots = perThread ? Threads.count : 1
    let padCount = cin * hp * wp, gridCount = cout * ho * wp, tapWCount = tapCount * cout * cin
    // Per slot: xpad (for dW), dY on the grid, dxpad (for dx), dW per tap (at `tapWOffset`).
    let tapWOffset = padCount + gridCount + padCount, perSlot = tapWOffset + tapWCount
    let scratch = Storage(uninitializedCount: perSlot * slots)
    let n = (ho - 1) * wp + wo
    forEachImageBlock(g.n) { images, t in
        let xp = scratch.pointer + t * perSlot, dyg = xp + padCount, dxp = dyg + gridCount, dwt = xp + tapWOffset
        if gw != nil {
            xp.update(repeating: 0, count: padCount)
            dwt.update(repeating: 0, count: tapWCount)
        }
        dyg.update(repeating: 0, count: gridCount)
        for img in images {
            let dy = gy + img * cout * ho * wo
            for c in 0..<cout {
                for oy in 0..<ho { (dyg + c * ho * wp + oy * wp).update(from: dy + (c * ho + oy) * wo, count: wo) }
            }
            if gw != nil {
                let src = x + img * cin * h * w
                forEachPaddedRow(g) { row, padded in (xp + padded).update(from: src + row, count: w) }
                for i in 0..<g.kh {
                    for j in 0..<g.kw {
                        let tap = i * g.kw + j
                        sgemm(transA: false, transB: true, m: cout, n: cin, k: n, a: dyg, lda: ho * wp,
                              b: xp + i * wp + j, ldb: hp * wp, beta: 1, c: dwt + tap * cout * cin, ldc: cin)
                    }
                }
            }
            guard let gx, let taps else { continue }
            dxp.update(repeating: 0, count: padCount)
            for i in 0..<g.kh {
                for j in 0..<g.kw {
                    let tap = i * g.kw + j
                    sgemm(transA: true, transB: false, m: cin, n: n, k: cout, a: taps.pointer + tap * cout * cin, lda: cin,
                          b: dyg, ldb: ho * wp, beta: 1, c: dxp + i * wp + j, ldc: hp * wp)
                }
            }
            let dxi = gx + img * cin * h * w
            forEachPaddedRow(g) { row, padded in (dxi + row).update(from: dxp + padded, count: w) }
        }
    }
    guard let gw else { return }
    // dW[co][ci][i][j] = Σ over slots of dwt[tap][co][ci].
    parallelFor(cout, costPerItem: cin * tapCount * slots, grain: 1 << 12) { r in
        for co in r {
            for ci in 0..<cin {
                let dst = gw + (co * cin + ci) * tapCount
                for tap in 0..<tapCount {
                    var v: Float = 0
                    for s in 0..<slots { v += scratch.pointer[s * perSlot + tapWOffset + (tap * cout + co) * cin + ci] }
                    dst[tap] = v
                }
            }
        }
    }
}

/// out = conv(x, W) + b for the whole batch: oneDNN where it takes the call, else `convForwardBuiltin`.
func convForward(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                 _ out: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
    if OneDNNConv.forward(x, wt, bias, out, g) { return }
    convForwardBuiltin(x, wt, bias, out, g)
}

/// dx (if `gx` is non-nil) and dW (if `gw` is non-nil) from dY: oneDNN where it takes the call, else
/// `convBackwardBuiltin` (each gradient independently).
func convBackward(_ gy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>,
                  _ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?, _ g: ConvGeometry) {
    let dxDone = gx.map { OneDNNConv.backwardData(gy, wt, $0, g) } ?? true
    let dwDone = gw.map { OneDNNConv.backwardWeights(gy, x, $0, g) } ?? true
    if dxDone && dwDone { return }
    convBackwardBuiltin(gy, x, wt, dxDone ? nil : gx, dwDone ? nil : gw, g)
}

/// oneDNN's JIT convolutions (Sources/CKernels/onednn.c), opened at run time where libdnnl.so.2 is
/// installed (Debian's libdnnl2). Each call returns false where oneDNN is absent, `L2S_CONV=builtin`
/// is set, or it has no JIT implementation for the shape; the engine's own paths then run.
///
/// Offered only where it measured faster (Zen 5, 2 threads; forward, oneDNN ÷ built-in): every call
/// reorders the weights into oneDNN's blocked layout, which pays off only over enough output pixels
/// — SD 1.5's 64×64 and 32×32 latents at batch 2 0.81–0.94×, its 16×16 and 8×8 levels (≤ 512 output
/// pixels, up to 2560 × 1280 × 9 weights) 1.07–2.20×; 1×1 convs 1.13–1.17× and the 4-channel input
/// conv 5.4× lose too. Small calls (a sampling step of the embedded model) hand work to OpenMP threads
/// that have gone to sleep between them: its 100-step generation took 2.00 s against 1.35 s when
/// every conv went to oneDNN. The training batches' convs (75 M multiply-adds and up) gain: bench_vs_torch's
/// C128 16×16 forward 6.8 → 5.5 ms. Splitting the batch over the engine's threads (one OpenMP
/// thread each) instead of handing calls to OpenMP measured slower on both the training step
/// (374–380 against 314–350 ms) and SD 512².
///
/// Within the policy, 3×3 stride-1 calls of batches ≥ 8 run oneDNN's Winograd F(4×4, 3×3) where it has a JIT one
/// (onednn.c `build_entry`; `L2S_CONV_ALGO=direct` keeps them direct). The thresholds above were
/// measured with direct convolutions and have not been re-measured with Winograd.
enum OneDNNConv {
    /// Multiply-adds per call from which oneDNN is asked.
    static let minMultiplyAdds = 50_000_000
    /// Output pixels per call (over the batch) from which oneDNN is asked.
    static let minOutputPixels = 2048
    /// `L2S_CONV=onednn`: every conv is offered to oneDNN (for measuring the policy below).
    static let everyCall = ProcessInfo.processInfo.environment["L2S_CONV"] == "onednn"

    /// Whether a conv of geometry `g` is offered to oneDNN: a spatial kernel over ≥ 16 input channels,
    /// ≥ `minOutputPixels` output pixels and ≥ `minMultiplyAdds` multiply-adds.
    @inline(__always)
    static func offered(_ g: ConvGeometry) -> Bool {
        everyCall || g.kh * g.kw > 1 && g.cin >= 16 && g.n * g.spatialOut >= minOutputPixels
            && g.n * g.cout * g.k * g.spatialOut >= minMultiplyAdds
    }

    /// The call's shapes, with the engine's thread count for oneDNN's OpenMP threads (one inside a
    /// parallel region).
    @inline(__always)
    static func shape(_ g: ConvGeometry) -> l2s_conv_shape {
        l2s_conv_shape(n: g.n, cin: g.cin, h: g.h, w: g.w, cout: g.cout, kh: g.kh, kw: g.kw, stride: g.stride,
                       pad: g.pad, threads: ParallelRegion.isInside ? 1 : Threads.count)
    }

    static func forward(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                        _ out: UnsafeMutablePointer<Float>, _ g: ConvGeometry, always: Bool = false) -> Bool {
        guard always || offered(g) else { return false }
        var s = shape(g)
        return l2s_dnnl_conv_forward(&s, x, wt, bias, out) == 1
    }

    static func backwardData(_ gy: UnsafePointer<Float>, _ wt: UnsafePointer<Float>,
                             _ gx: UnsafeMutablePointer<Float>, _ g: ConvGeometry, always: Bool = false) -> Bool {
        guard always || offered(g) else { return false }
        var s = shape(g)
        return l2s_dnnl_conv_backward_data(&s, gy, wt, gx) == 1
    }

    static func backwardWeights(_ gy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                _ gw: UnsafeMutablePointer<Float>, _ g: ConvGeometry, always: Bool = false) -> Bool {
        guard always || offered(g) else { return false }
        var s = shape(g)
        return l2s_dnnl_conv_backward_weights(&s, gy, x, gw) == 1
    }

    /// Whether oneDNN is loaded and enabled.
    static var isAvailable: Bool { l2s_dnnl_available() == 1 }

    /// Whether 3×3 stride-1 convolutions may take oneDNN's Winograd (not under L2S_CONV_ALGO=direct).
    static var winogradAllowed: Bool { ProcessInfo.processInfo.environment["L2S_CONV_ALGO"] != "direct" }

    /// The algorithm oneDNN runs for `g` (built and cached if it was not), ignoring the policy.
    enum Algorithm: Equatable { case declined, direct, winograd }
    static func algorithm(_ g: ConvGeometry, kind: Int) -> Algorithm {
        var s = shape(g)
        switch l2s_dnnl_conv_algorithm(&s, Int32(kind)) {
        case 1: return .direct
        case 2: return .winograd
        default: return .declined
        }
    }
}

/// The convolution backend, for benchmark reports.
public var convolutionBackend: String {
    if OneDNNConv.isAvailable {
        if OneDNNConv.everyCall { return "oneDNN for every conv it takes (L2S_CONV=onednn)" }
        let algorithm = OneDNNConv.winogradAllowed ? "Winograd F(4×4,3×3) for 3×3 stride 1 at batch ≥ 8 where it has one, direct otherwise" : "direct (L2S_CONV_ALGO=direct)"
        return "oneDNN for spatial convs of ≥ \(OneDNNConv.minOutputPixels) output pixels and \(OneDNNConv.minMultiplyAdds / 1_000_000) M multiply-adds (\(algorithm)), built-in otherwise"
    }
    if ProcessInfo.processInfo.environment["L2S_CONV"] == "builtin" { return "built-in (L2S_CONV=builtin)" }
    return "built-in (libdnnl.so.2 not found: apt-get install libdnnl-dev)"
}

/// The engine's own forward: by shifted taps where `g.usesShiftedTaps`, else unfolded.
func convForwardBuiltin(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                        _ out: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
    if g.usesShiftedTaps {
        convForwardShifted(x, wt, bias, out, g)
    } else {
        convForwardUnfolded(x, wt, bias, out, g)
    }
}

/// The engine's own backward: dx (if `gx` is non-nil) and dW (if `gw` is non-nil) from dY, by the same
/// path as `convForwardBuiltin`.
func convBackwardBuiltin(_ gy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>,
                  _ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?, _ g: ConvGeometry) {
    if gx == nil && gw == nil { return }
    if g.usesShiftedTaps {
        convBackwardShifted(gy, x, wt, gx, gw, g)
    } else {
        convBackwardUnfolded(gy, x, wt, gx, gw, g)
    }
}

/// out = conv(x, W) + b for the whole batch, through im2col column matrices.
func convForwardUnfolded(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                         _ out: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
    let k = g.k, so = g.spatialOut, si = g.spatialIn, cout = g.cout
    let perThread = convSplitsImages(g.n)
    let colCount = g.isPointwise ? 0 : k * so
    let cols = Storage(uninitializedCount: colCount * (perThread ? Threads.count : 1))
    forEachImageBlock(g.n) { images, t in
        let col = cols.pointer + t * colCount
        for img in images {
            let dst = out + img * cout * so
            if let bias {
                for c in 0..<cout { (dst + c * so).update(repeating: bias[c], count: so) }
            }
            let b = columns(x + img * g.cin * si, col, g, split: !perThread)
            sgemm(transA: false, transB: false, m: cout, n: so, k: k, a: wt, lda: k, b: b, ldb: so,
                  beta: bias == nil ? 0 : 1, c: dst, ldc: so)
        }
    }
}

/// dx (if `gx` is non-nil) and dW (if `gw` is non-nil) from dY, recomputing the column matrices.
func convBackwardUnfolded(_ gy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>,
                          _ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?, _ g: ConvGeometry) {
    if gx == nil && gw == nil { return }
    let k = g.k, so = g.spatialOut, si = g.spatialIn, cout = g.cout, cin = g.cin
    let perThread = convSplitsImages(g.n)
    let slots = perThread ? Threads.count : 1
    let colCount = g.isPointwise ? 0 : k * so
    let cols = Storage(uninitializedCount: colCount * slots)
    // One dW partial per slot: slot 0 accumulates into the result, the others are added at the end.
    let wCount = cout * k
    if let gw { gw.update(repeating: 0, count: wCount) }
    let partials = gw != nil && slots > 1 ? Storage(count: wCount * (slots - 1), repeating: 0) : nil
    forEachImageBlock(g.n) { images, t in
        let col = cols.pointer + t * colCount
        let dw: UnsafeMutablePointer<Float>? = gw.map { t == 0 ? $0 : partials!.pointer + (t - 1) * wCount }
        for img in images {
            let dy = gy + img * cout * so
            if let dw {
                // dW += dY[n] · colᵀ
                let b = columns(x + img * cin * si, col, g, split: !perThread)
                sgemm(transA: false, transB: true, m: cout, n: k, k: so, a: dy, lda: so, b: b, ldb: so,
                      beta: 1, c: dw, ldc: k)
            }
            guard let gx else { continue }
            let dxi = gx + img * cin * si
            if g.isPointwise {
                // dx[n] = Wᵀ · dY[n]
                sgemm(transA: true, transB: false, m: cin, n: so, k: cout, a: wt, lda: k, b: dy, ldb: so,
                      c: dxi, ldc: so)
                continue
            }
            // dcol = Wᵀ · dY[n], folded back onto dx[n].
            sgemm(transA: true, transB: false, m: k, n: so, k: cout, a: wt, lda: k, b: dy, ldb: so, c: col, ldc: so)
            if perThread {
                dxi.update(repeating: 0, count: cin * si)
                col2im(col, dxi, g, channels: 0..<cin)
            } else {
                parallelFor(cin, costPerItem: g.kh * g.kw * so, grain: 1 << 14) { r in
                    (dxi + r.lowerBound * si).update(repeating: 0, count: r.count * si)
                    col2im(col, dxi, g, channels: r)
                }
            }
        }
    }
    if let gw, let partials {
        let p = partials.pointer
        parallelFor(wCount, grain: 1 << 15) { r in
            for s in 0..<(slots - 1) {
                let q = p + s * wCount
                for i in r { gw[i] += q[i] }
            }
        }
    }
}

/// db[c] = Σ over batch and output pixels of dY[n, c, ·].
func convBiasGradient(_ gy: UnsafePointer<Float>, _ db: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
    let so = g.spatialOut, cout = g.cout
    parallelFor(cout, costPerItem: g.n * so, grain: 1 << 16) { range in
        for c in range {
            var s: Double = 0
            for img in 0..<g.n {
                s += Double(vsum(gy + (img * cout + c) * so, so))
            }
            db[c] = Float(s)
        }
    }
}
