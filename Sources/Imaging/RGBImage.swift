// 8-bit RGB images: the one conversion from the models' CHW floats in [−1, 1], the value every
// consumer (PNG files, the workbench's previews, traces) takes.

import Foundation
import Tensors

/// An 8-bit RGB image, row-major HWC.
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGBImage: expected \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A CHW float image in [−1, 1] (`[3, H, W]` values; see `imageToRGB8`).
    public init(chw: [Float], width: Int, height: Int) {
        self.init(width: width, height: height, pixels: imageToRGB8(chw, width: width, height: height))
    }

    /// The first image of a [B, 3, H, W] (or [3, H, W]) tensor in [−1, 1]; empty for anything else.
    public init(firstImageOf t: Tensor) {
        let s = t.shape
        guard s.count >= 3, s[s.count - 3] == 3 else { self.init(width: 0, height: 0, pixels: []); return }
        let h = s[s.count - 2], w = s[s.count - 1]
        self.init(chw: Array(t.array.prefix(3 * h * w)), width: w, height: h)
    }
}
