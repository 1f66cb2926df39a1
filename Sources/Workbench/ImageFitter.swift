// Images for the preview pane: 8-bit RGB pixels, area-averaged to the pixel grid a pane holds
// (cols × 2·rows with half-blocks), never cropped, with palette indices precomputed. This is the heavy
// part of drawing an image, so it runs on the engine's thread or the fitter queue, never the UI thread.

import Foundation
import Imaging

/// An image fitted to a pane, ready to draw in any colour tier.
struct FittedImage: Sendable, Equatable {
    var width: Int
    var height: Int
    var rgb: [UInt8]
    /// Nearest 256-palette index (16–255) per pixel.
    var index256: [UInt8]
    /// Nearest basic colour (0–7) per pixel.
    var index8: [UInt8]
    /// Luminance 0–255 per pixel (for density glyphs).
    var luma: [UInt8]
    /// The image for a true-pixel protocol (kitty, iTerm2, sixel), when the workbench uses one.
    var graphics: GraphicsImage? = nil
}

/// Fitting images into pixel boxes.
public enum ImageFitter {
    /// The size an image of `w`×`h` gets in a `boxW`×`boxH` pixel box: as large as fits with the aspect
    /// ratio kept (area-averaged down, nearest-neighbour up); at least 1×1 when the box is not empty.
    static func fittedSize(width w: Int, height h: Int, boxWidth: Int, boxHeight: Int) -> (Int, Int) {
        guard w > 0, h > 0, boxWidth > 0, boxHeight > 0 else { return (0, 0) }
        let scale = min(Double(boxWidth) / Double(w), Double(boxHeight) / Double(h))
        return (max(1, min(boxWidth, Int((Double(w) * scale).rounded(.down)))),
                max(1, min(boxHeight, Int((Double(h) * scale).rounded(.down)))))
    }

    /// Resampling to exactly `ow`×`oh`: area average when shrinking, nearest neighbour when enlarging
    /// (pixels stay sharp).
    static func resample(_ image: RGBImage, width ow: Int, height oh: Int) -> RGBImage {
        guard ow > 0, oh > 0, image.width > 0, image.height > 0 else { return RGBImage(width: 0, height: 0, pixels: []) }
        if ow == image.width && oh == image.height { return image }
        let sw = image.width, sh = image.height
        if ow >= sw && oh >= sh {
            var out = [UInt8](repeating: 0, count: ow * oh * 3)
            for y in 0..<oh {
                let sy = y * sh / oh
                for x in 0..<ow {
                    let s = 3 * (sy * sw + x * sw / ow), d = 3 * (y * ow + x)
                    out[d] = image.pixels[s]; out[d + 1] = image.pixels[s + 1]; out[d + 2] = image.pixels[s + 2]
                }
            }
            return RGBImage(width: ow, height: oh, pixels: out)
        }
        // Horizontal pass: sh rows × ow columns of Doubles.
        let xWeights = weights(source: sw, output: ow)
        let yWeights = weights(source: sh, output: oh)
        var tmp = [Double](repeating: 0, count: sh * ow * 3)
        image.pixels.withUnsafeBufferPointer { src in
            for y in 0..<sh {
                for ox in 0..<ow {
                    var r = 0.0, g = 0.0, b = 0.0
                    for (sx, wgt) in xWeights[ox] {
                        let i = 3 * (y * sw + sx)
                        r += Double(src[i]) * wgt; g += Double(src[i + 1]) * wgt; b += Double(src[i + 2]) * wgt
                    }
                    let o = 3 * (y * ow + ox)
                    tmp[o] = r; tmp[o + 1] = g; tmp[o + 2] = b
                }
            }
        }
        var out = [UInt8](repeating: 0, count: ow * oh * 3)
        for oy in 0..<oh {
            for ox in 0..<ow {
                var r = 0.0, g = 0.0, b = 0.0
                for (sy, wgt) in yWeights[oy] {
                    let i = 3 * (sy * ow + ox)
                    r += tmp[i] * wgt; g += tmp[i + 1] * wgt; b += tmp[i + 2] * wgt
                }
                let o = 3 * (oy * ow + ox)
                out[o] = UInt8(min(max(r.rounded(), 0), 255))
                out[o + 1] = UInt8(min(max(g.rounded(), 0), 255))
                out[o + 2] = UInt8(min(max(b.rounded(), 0), 255))
            }
        }
        return RGBImage(width: ow, height: oh, pixels: out)
    }

    /// For each output index, the source indices it covers and their weights (summing to 1).
    static func weights(source: Int, output: Int) -> [[(Int, Double)]] {
        let scale = Double(source) / Double(output)
        return (0..<output).map { o in
            let lo = Double(o) * scale, hi = Double(o + 1) * scale
            var list: [(Int, Double)] = []
            var s = Int(lo.rounded(.down))
            while Double(s) < hi && s < source {
                let a = max(lo, Double(s)), b = min(hi, Double(s + 1))
                if b > a { list.append((s, (b - a) / scale)) }
                s += 1
            }
            return list
        }
    }

    /// Fits an image into a `boxW`×`boxH` pixel box and precomputes palette indices.
    static func fit(_ image: RGBImage, boxWidth: Int, boxHeight: Int) -> FittedImage {
        let (w, h) = fittedSize(width: image.width, height: image.height, boxWidth: boxWidth, boxHeight: boxHeight)
        let img = resample(image, width: w, height: h)
        return colorize(img)
    }

    /// Palette indices for every pixel of an image (already at its display size).
    static func colorize(_ img: RGBImage) -> FittedImage {
        let n = img.width * img.height
        var i256 = [UInt8](repeating: 16, count: n), i8 = [UInt8](repeating: 0, count: n), luma = [UInt8](repeating: 0, count: n)
        var cache: [UInt32: (UInt8, UInt8)] = [:]
        for k in 0..<n {
            let r = img.pixels[3 * k], g = img.pixels[3 * k + 1], b = img.pixels[3 * k + 2]
            let key = UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b)
            let pair: (UInt8, UInt8)
            if let c = cache[key] { pair = c } else {
                pair = (Palette.nearest256(r, g, b), Palette.nearest8(r, g, b))
                cache[key] = pair
            }
            i256[k] = pair.0
            i8[k] = pair.1
            luma[k] = Palette.luma(r, g, b)
        }
        return FittedImage(width: img.width, height: img.height, rgb: img.pixels, index256: i256, index8: i8, luma: luma)
    }

    /// A ≤`side`×`side` copy for keeping per-step previews small (area-averaged; never enlarged).
    public static func thumbnail(_ image: RGBImage, maxSide side: Int = 64) -> RGBImage {
        if image.width <= side && image.height <= side { return image }
        let (w, h) = fittedSize(width: image.width, height: image.height, boxWidth: side, boxHeight: side)
        return resample(image, width: w, height: h)
    }
}
