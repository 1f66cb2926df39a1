import CKernels
import Foundation

// Normalisation layers: GroupNorm over [N, C, ...spatial] and LayerNorm over the last axis, both with
// optional per-channel affine and PyTorch's biased variance. The forward computes each row's mean and
// variance in one pass (shifted sums accumulated in Double, so float32 rounding and a large mean do
// not spoil the variance) and normalises in a second. Backward is analytic: with x̂ = (x − μ)·r,
// r = 1/√(σ² + ε) and ĝ = dy·γ, dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) over each normalised row;
// dγ = Σ dy·x̂ and dβ = Σ dy over everything but the channel.

/// Mean and 1/√(var + eps) of `p[0..<n]` in one pass: sums of (x − x₀) and (x − x₀)² (x₀ = the first
/// element keeps the shifted sums small), eight float lanes over blocks of 512 elements whose block
/// sums are added in Double, so float32 rounding stays at the block level even for SD's 40,960-value
/// groups, while the inner loop runs at vector speed.
@inline(__always)
func meanAndInverseStd(_ p: UnsafePointer<Float>, _ n: Int, eps: Float) -> (mean: Float, rstd: Float) {
    if n == 0 { return (0, 1 / eps.squareRoot()) }
    let shift = p[0], sv = SIMD8<Float>(repeating: shift)
    var sum = 0.0, squares = 0.0
    var i = 0
    while i + 8 <= n {
        let end = min(n - (n - i) % 8, i + 512)
        var s = SIMD8<Float>(), q = SIMD8<Float>()
        while i < end {
            let d = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) - sv
            s += d; q += d * d
            i += 8
        }
        sum += Double(s.sum()); squares += Double(q.sum())
    }
    while i < n {
        let d = Double(p[i] - shift)
        sum += d; squares += d * d
        i += 1
    }
    let m = sum / Double(n)
    let v = max(0, squares / Double(n) - m * m)
    return (Float(Double(shift) + m), Float(1 / (v + Double(eps)).squareRoot()))
}

/// (Σ g, Σ g·(x − m)) over n elements, eight lanes at a time.
@inline(__always)
func sumAndCentredDot(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, mean m: Float) -> (Float, Float) {
    var a = SIMD8<Float>(), b = SIMD8<Float>()
    let mv = SIMD8<Float>(repeating: m)
    var i = 0
    while i + 8 <= n {
        let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
        a += gv
        b += gv * (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - mv)
        i += 8
    }
    var sa = a.sum(), sb = b.sum()
    while i < n { sa += g[i]; sb += g[i] * (x[i] - m); i += 1 }
    return (sa, sb)
}

/// Group normalisation as PyTorch's `F.group_norm`: `x` [N, C, ...] is normalised over each group of
/// C/groups channels and all trailing (spatial) axes, then scaled and shifted per channel by
/// `weight` [C] and `bias` [C] when given. Differentiable in x, weight and bias.
public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
    precondition(x.rank >= 2, "groupNorm: input must be [N, C, ...], got \(x.shape)")
    let n = x.shape[0], c = x.shape[1]
    precondition(groups >= 1 && c % groups == 0, "groupNorm: \(c) channels do not split into \(groups) groups")
    if let weight { precondition(weight.count == c, "groupNorm: weight \(weight.shape) for \(c) channels") }
    if let bias { precondition(bias.count == c, "groupNorm: bias \(bias.shape) for \(c) channels") }
    let spatial = x.shape.dropFirst(2).reduce(1, *)
    let cpg = c / groups, groupSize = cpg * spatial, rows = n * groups
    let out = Tensor(uninitialized: x.shape)
    let stats = Storage(uninitializedCount: 2 * rows)   // mean, rstd per (n, group)
    let px = x.pointer, po = out.pointer, mean = stats.pointer, rstd = stats.pointer + rows
    let pw = weight?.pointer, pb = bias?.pointer
    parallelFor(rows, costPerItem: groupSize * 3, grain: 1 << 15) { range in
        // The same loops in C with AVX-512 where the CPU has it (CKernels).
        if l2s_group_norm_forward(px, po, mean, rstd, range.lowerBound, range.upperBound, groups, cpg, spatial,
                                  pw, pb, eps) == 1 { return }
        for r in range {
            let base = r * groupSize
            let (m, s) = meanAndInverseStd(px + base, groupSize, eps: eps)
            mean[r] = m; rstd[r] = s
            for cc in 0..<cpg {
                let ch = (r % groups) * cpg + cc
                let scale = s * (pw?[ch] ?? 1), shift = (pb?[ch] ?? 0) - m * scale
                let src = px + base + cc * spatial, dst = po + base + cc * spatial
                for i in 0..<spatial { dst[i] = src[i] * scale + shift }
            }
        }
    }
    let inputs = [x] + [weight, bias].compactMap { $0 }
    return out.recorded("group_norm", inputs) { g in
        let mean = stats.pointer, rstd = stats.pointer + rows   // the closure keeps `stats` alive
        let pg = g.pointer
        let needX = x.requiresGrad
        let needW = weight?.requiresGrad ?? false, needB = bias?.requiresGrad ?? false
        let gx = needX ? Tensor(uninitialized: x.shape) : nil
        let pgx = gx?.pointer
        // Per (n, channel) partial sums of dy·x̂ and dy; summed over n afterwards (deterministic).
        let partial = (needW || needB) ? Storage(uninitializedCount: 2 * n * c) : nil
        let sumDyXhat = partial?.pointer, sumDy = partial.map { $0.pointer + n * c }
        parallelFor(rows, costPerItem: groupSize * 4, grain: 1 << 15) { range in
            if l2s_group_norm_backward(px, pg, pgx, mean, rstd, range.lowerBound, range.upperBound, groups, cpg,
                                       spatial, pw, sumDy, sumDyXhat) == 1 { return }
            for r in range {
                let base = r * groupSize, m = mean[r], s = rstd[r]
                let img = r / groups
                // Σ ĝ and Σ ĝ·x̂ over the group, with ĝ = dy·γ.
                var a = 0.0, b = 0.0
                for cc in 0..<cpg {
                    let ch = (r % groups) * cpg + cc
                    let gamma = pw?[ch] ?? 1
                    let src = px + base + cc * spatial, gy = pg + base + cc * spatial
                    let (sd, centred) = sumAndCentredDot(gy, src, spatial, mean: m)
                    let sdx = centred * s
                    if let sumDy, let sumDyXhat {
                        sumDy[img * c + ch] = sd; sumDyXhat[img * c + ch] = sdx
                    }
                    a += Double(sd * gamma); b += Double(sdx * gamma)
                }
                guard let pgx else { continue }
                let meanG = Float(a / Double(groupSize)), meanGX = Float(b / Double(groupSize))
                for cc in 0..<cpg {
                    let ch = (r % groups) * cpg + cc
                    let gamma = pw?[ch] ?? 1
                    let src = px + base + cc * spatial, gy = pg + base + cc * spatial, dst = pgx + base + cc * spatial
                    for i in 0..<spatial {
                        let xh = (src[i] - m) * s
                        dst[i] = s * (gy[i] * gamma - meanG - xh * meanGX)
                    }
                }
            }
        }
        var gw: Tensor? = nil, gb: Tensor? = nil
        if let sumDyXhat, let sumDy {
            if needW {
                let t = Tensor(uninitialized: [c])
                reduceAxisKernel(sumDyXhat, outer: 1, n: n, inner: c, into: t.pointer)
                gw = t.reshaped(weight!.shape)
            }
            if needB {
                let t = Tensor(uninitialized: [c])
                reduceAxisKernel(sumDy, outer: 1, n: n, inner: c, into: t.pointer)
                gb = t.reshaped(bias!.shape)
            }
        }
        var grads: [Tensor?] = [gx]
        if weight != nil { grads.append(gw) }
        if bias != nil { grads.append(gb) }
        return grads
    }
}

/// Layer normalisation over the last axis as PyTorch's `F.layer_norm(x, [D])`: each row of D values is
/// normalised, then scaled by `weight` [D] and shifted by `bias` [D] when given. Differentiable in x,
/// weight and bias.
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
    precondition(x.rank >= 1, "layerNorm: input must have at least one axis")
    let d = x.shape[x.rank - 1]
    if let weight { precondition(weight.count == d, "layerNorm: weight \(weight.shape) for last axis \(d)") }
    if let bias { precondition(bias.count == d, "layerNorm: bias \(bias.shape) for last axis \(d)") }
    let rows = d == 0 ? 0 : x.count / d
    let out = Tensor(uninitialized: x.shape)
    let stats = Storage(uninitializedCount: 2 * rows)
    let px = x.pointer, po = out.pointer, mean = stats.pointer, rstd = stats.pointer + rows
    let pw = weight?.pointer, pb = bias?.pointer
    parallelFor(rows, costPerItem: d * 3, grain: 1 << 15) { range in
        for r in range {
            let src = px + r * d, dst = po + r * d
            let (m, s) = meanAndInverseStd(src, d, eps: eps)
            mean[r] = m; rstd[r] = s
            if let pw, let pb {
                for i in 0..<d { dst[i] = (src[i] - m) * s * pw[i] + pb[i] }
            } else if let pw {
                for i in 0..<d { dst[i] = (src[i] - m) * s * pw[i] }
            } else if let pb {
                for i in 0..<d { dst[i] = (src[i] - m) * s + pb[i] }
            } else {
                for i in 0..<d { dst[i] = (src[i] - m) * s }
            }
        }
    }
    let inputs = [x] + [weight, bias].compactMap { $0 }
    return out.recorded("layer_norm", inputs) { g in
        let mean = stats.pointer, rstd = stats.pointer + rows   // the closure keeps `stats` alive
        let pg = g.pointer
        let needW = weight?.requiresGrad ?? false, needB = bias?.requiresGrad ?? false
        var gx: Tensor? = nil
        if x.requiresGrad {
            let t = Tensor(uninitialized: x.shape)
            let pgx = t.pointer
            let ones = pw == nil ? Storage(count: d, repeating: 1) : nil
            let gamma = UnsafePointer(pw ?? ones!.pointer)
            parallelFor(rows, costPerItem: d * 4, grain: 1 << 15) { range in
                for r in range {
                    let src = px + r * d, gy = pg + r * d, dst = pgx + r * d, m = mean[r], s = rstd[r]
                    var a: Float = 0, b: Float = 0
                    for i in 0..<d {
                        let gh = gy[i] * gamma[i]
                        a += gh; b += gh * (src[i] - m) * s
                    }
                    let meanG = a / Float(d), meanGX = b / Float(d)
                    for i in 0..<d {
                        let xh = (src[i] - m) * s
                        dst[i] = s * (gy[i] * gamma[i] - meanG - xh * meanGX)
                    }
                }
            }
            withExtendedLifetime(ones) {}
            gx = t
        }
        var gw: Tensor? = nil, gb: Tensor? = nil
        if needW || needB {
            // Row blocks accumulate their own partial sums; the partials are added in order.
            let blocks = min(rows, max(1, Threads.count * 4))
            let partial = Storage(count: 2 * blocks * d, repeating: 0)
            let pp = partial.pointer
            parallelFor(blocks, costPerItem: rows / max(blocks, 1) * d * 2, grain: 1 << 15) { range in
                for blk in range {
                    let sw = pp + blk * d, sb = pp + (blocks + blk) * d
                    for r in (rows * blk / blocks)..<(rows * (blk + 1) / blocks) {
                        let src = px + r * d, gy = pg + r * d, m = mean[r], s = rstd[r]
                        for i in 0..<d {
                            sw[i] += gy[i] * (src[i] - m) * s
                            sb[i] += gy[i]
                        }
                    }
                }
            }
            if needW {
                let t = Tensor(uninitialized: [d])
                reduceAxisKernel(pp, outer: 1, n: blocks, inner: d, into: t.pointer)
                gw = t.reshaped(weight!.shape)
            }
            if needB {
                let t = Tensor(uninitialized: [d])
                reduceAxisKernel(pp + blocks * d, outer: 1, n: blocks, inner: d, into: t.pointer)
                gb = t.reshaped(bias!.shape)
            }
        }
        var grads: [Tensor?] = [gx]
        if weight != nil { grads.append(gw) }
        if bias != nil { grads.append(gb) }
        return grads
    }
}
