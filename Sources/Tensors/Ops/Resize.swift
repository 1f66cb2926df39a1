import Foundation

// Spatial resizing of the last two axes ([..., H, W], so NCHW images and bare [H, W] maps alike):
// nearest-neighbour 2× upsampling (the UNet's up blocks) and bilinear resizing with PyTorch's
// `align_corners=False` source mapping (attention maps brought to a common resolution). Every plane
// is independent, so both directions parallelise over planes; backward of each is the transpose of
// its linear map (block sums for nearest, weighted scatter-adds for bilinear).

/// One axis of a bilinear resize: output index o reads i0[o] with weight 1 − l[o] and i1[o] with l[o].
struct LinearAxisTable {
    var i0: [Int], i1: [Int], l: [Float]

    /// PyTorch's `align_corners=False` mapping: src = (dst + 0.5)·in/out − 0.5, clamped at 0 from
    /// below, i0 = ⌊src⌋, i1 = min(i0 + 1, in − 1), l = src − i0.
    init(input: Int, output: Int) {
        let scale = Float(input) / Float(output)
        i0 = []; i1 = []; l = []
        i0.reserveCapacity(output); i1.reserveCapacity(output); l.reserveCapacity(output)
        for o in 0..<output {
            let src = max(scale * (Float(o) + 0.5) - 0.5, 0)
            let lo = min(Int(src), input - 1)
            i0.append(lo)
            i1.append(min(lo + 1, input - 1))
            l.append(min(max(src - Float(lo), 0), 1))
        }
    }
}

extension Tensor {
    /// Nearest-neighbour upsampling by 2 on the last two axes: [..., H, W] → [..., 2H, 2W], as
    /// `F.interpolate(x, scale_factor=2, mode="nearest")`. Backward sums each 2×2 block.
    public func upsampleNearest2x() -> Tensor {
        precondition(rank >= 2, "upsampleNearest2x needs [..., H, W], got \(shape)")
        let h = shape[rank - 2], w = shape[rank - 1]
        let planes = h * w == 0 ? 0 : count / (h * w)
        let out = Tensor(uninitialized: Array(shape.dropLast(2)) + [2 * h, 2 * w])
        let src = pointer, dst = out.pointer
        parallelFor(planes * h, costPerItem: 8 * w, grain: 1 << 15) { range in
            for row in range {   // one input row → two output rows
                let s = src + row * w, d = dst + row * 4 * w
                for x in 0..<w { d[2 * x] = s[x]; d[2 * x + 1] = s[x] }
                (d + 2 * w).update(from: d, count: 2 * w)
            }
        }
        let inShape = shape
        return out.recorded("upsample_nearest2x", [self]) { g in
            let gi = Tensor(uninitialized: inShape)
            let pg = g.pointer, pi = gi.pointer
            parallelFor(planes * h, costPerItem: 8 * w, grain: 1 << 15) { range in
                for row in range {
                    let a = pg + row * 4 * w, b = a + 2 * w, d = pi + row * w
                    for x in 0..<w { d[x] = (a[2 * x] + a[2 * x + 1]) + (b[2 * x] + b[2 * x + 1]) }
                }
            }
            return [gi]
        }
    }

    /// Bilinear resize of the last two axes to `height`×`width`, exactly as PyTorch's
    /// `F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=False)`
    /// (see `LinearAxisTable` for the source mapping). Downscaling by more than 2 therefore samples
    /// rather than averages, as in PyTorch. Differentiable in the input.
    public func resizeBilinear(height: Int, width: Int) -> Tensor {
        precondition(rank >= 2, "resizeBilinear needs [..., H, W], got \(shape)")
        precondition(height >= 1 && width >= 1, "resizeBilinear: output size \(height)×\(width) must be positive")
        let h = shape[rank - 2], w = shape[rank - 1]
        precondition(h >= 1 && w >= 1, "resizeBilinear: input plane \(h)×\(w) is empty")
        let planes = count / (h * w)
        let ty = LinearAxisTable(input: h, output: height), tx = LinearAxisTable(input: w, output: width)
        let out = Tensor(uninitialized: Array(shape.dropLast(2)) + [height, width])
        let src = pointer, dst = out.pointer
        ty.i0.withUnsafeBufferPointer { y0 in ty.i1.withUnsafeBufferPointer { y1 in ty.l.withUnsafeBufferPointer { ly in
        tx.i0.withUnsafeBufferPointer { x0 in tx.i1.withUnsafeBufferPointer { x1 in tx.l.withUnsafeBufferPointer { lx in
            parallelFor(planes * height, costPerItem: 8 * width, grain: 1 << 15) { range in
                for row in range {
                    let plane = row / height, oy = row % height
                    let a = src + (plane * h + y0[oy]) * w, b = src + (plane * h + y1[oy]) * w
                    let wb = ly[oy], wa = 1 - wb
                    let d = dst + row * width
                    for ox in 0..<width {
                        let l1 = lx[ox], l0 = 1 - l1, i = x0[ox], j = x1[ox]
                        d[ox] = wa * (l0 * a[i] + l1 * a[j]) + wb * (l0 * b[i] + l1 * b[j])
                    }
                }
            }
        }}}}}}
        let inShape = shape
        return out.recorded("resize_bilinear", [self]) { g in
            let gi = Tensor(zeros: inShape)
            let pg = g.pointer, pi = gi.pointer
            ty.i0.withUnsafeBufferPointer { y0 in ty.i1.withUnsafeBufferPointer { y1 in ty.l.withUnsafeBufferPointer { ly in
            tx.i0.withUnsafeBufferPointer { x0 in tx.i1.withUnsafeBufferPointer { x1 in tx.l.withUnsafeBufferPointer { lx in
                // Planes are independent: each thread scatters into its own planes only.
                parallelFor(planes, costPerItem: 8 * height * width, grain: 1 << 15) { range in
                    for plane in range {
                        for oy in 0..<height {
                            let a = pi + (plane * h + y0[oy]) * w, b = pi + (plane * h + y1[oy]) * w
                            let wb = ly[oy], wa = 1 - wb
                            let s = pg + (plane * height + oy) * width
                            for ox in 0..<width {
                                let l1 = lx[ox], l0 = 1 - l1, i = x0[ox], j = x1[ox]
                                let ga = wa * s[ox], gb = wb * s[ox]
                                a[i] += l0 * ga; a[j] += l1 * ga
                                b[i] += l0 * gb; b[j] += l1 * gb
                            }
                        }
                    }
                }
            }}}}}}
            return [gi]
        }
    }
}
