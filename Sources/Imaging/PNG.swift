import CPNG
import Foundation
import Tensors

/// Why a PNG could not be written or read.
public enum PNGError: Error, Equatable, CustomStringConvertible {
    /// The pixel buffer does not hold width × height × 3 bytes (or a side is not positive).
    case invalidSize(width: Int, height: Int, bytes: Int)
    /// The file could not be created or written (no permission, disk full, a directory in the way…).
    case cannotWrite(path: String, reason: String)
    /// There is no readable file at the path.
    case cannotOpen(path: String)
    /// The file is not a PNG, or its header is damaged.
    case notPNG(path: String, reason: String)
    /// The header was read but the image data could not be decoded.
    case cannotDecode(path: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidSize(w, h, bytes):
            return "cannot write a \(w)×\(h) RGB PNG from \(bytes) bytes (need \(max(w, 0) * max(h, 0) * 3))"
        case let .cannotWrite(path, reason): return "cannot write PNG to \(path): \(reason)"
        case let .cannotOpen(path): return "cannot open \(path): no readable file there"
        case let .notPNG(path, reason): return "\(path) is not a PNG file (\(reason))"
        case let .cannotDecode(path, reason): return "cannot decode PNG \(path): \(reason)"
        }
    }
}

/// libpng's message for a failed simplified-API call.
private func message(of image: png_image) -> String {
    withUnsafeBytes(of: image.message) { raw in
        let bytes = raw.prefix { $0 != 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
}

private func newImage() -> png_image {
    var image = png_image()
    image.version = png_uint_32(PNG_IMAGE_VERSION)
    return image
}

/// Encodes 8-bit RGB pixels (row-major, HWC, `width * height * 3` bytes) as PNG file bytes.
public func encodePNG(rgb: [UInt8], width: Int, height: Int) throws -> Data {
    guard width > 0, height > 0, rgb.count == width * height * 3 else {
        throw PNGError.invalidSize(width: width, height: height, bytes: rgb.count)
    }
    var image = newImage()
    image.width = png_uint_32(width)
    image.height = png_uint_32(height)
    image.format = png_uint_32(PNG_FORMAT_RGB)
    defer { png_image_free(&image) }
    var size: png_alloc_size_t = 0
    // First call sizes the buffer, the second fills it (libpng's simplified write-to-memory API).
    var ok = rgb.withUnsafeBufferPointer { png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, png_int_32(width * 3), nil) }
    guard ok != 0, size > 0 else { throw PNGError.cannotWrite(path: "(memory)", reason: message(of: image)) }
    var out = Data(count: Int(size))
    ok = out.withUnsafeMutableBytes { dst in
        rgb.withUnsafeBufferPointer { png_image_write_to_memory(&image, dst.baseAddress, &size, 0, $0.baseAddress, png_int_32(width * 3), nil) }
    }
    guard ok != 0 else { throw PNGError.cannotWrite(path: "(memory)", reason: message(of: image)) }
    return out.prefix(Int(size))
}

/// Writes 8-bit RGB pixels (row-major, HWC, `width * height * 3` bytes) to a PNG file, atomically:
/// on failure the previous file at `path` is left as it was (see `writeFilesAtomically`).
public func writePNG(rgb: [UInt8], width: Int, height: Int, to path: String) throws {
    let data = try encodePNG(rgb: rgb, width: width, height: height)
    do { try writeFilesAtomically([(path, data)]) } catch let e as OutputWriteError {
        throw PNGError.cannotWrite(path: path, reason: e.reason)
    }
}

/// Reads a PNG file as 8-bit RGB pixels (HWC); grey, palette and 16-bit images are converted, and
/// alpha is composited onto black.
public func readPNG(path: String) throws -> (rgb: [UInt8], width: Int, height: Int) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
          FileManager.default.isReadableFile(atPath: path) else {
        throw PNGError.cannotOpen(path: path)
    }
    var image = newImage()
    guard png_image_begin_read_from_file(&image, path) != 0 else {
        let reason = message(of: image)
        png_image_free(&image)
        throw PNGError.notPNG(path: path, reason: reason)
    }
    defer { png_image_free(&image) }
    image.format = png_uint_32(PNG_FORMAT_RGB)
    let width = Int(image.width), height = Int(image.height)
    var rgb = [UInt8](repeating: 0, count: width * height * 3)
    let ok = rgb.withUnsafeMutableBufferPointer {
        png_image_finish_read(&image, nil, $0.baseAddress, png_int_32(width * 3), nil)
    }
    guard ok != 0 else { throw PNGError.cannotDecode(path: path, reason: message(of: image)) }
    return (rgb, width, height)
}

/// CHW floats in [-1, 1] (`3 * width * height` values) as 8-bit RGB, HWC (clamped, rounded; NaN → 0).
public func imageToRGB8(_ chw: [Float], width: Int, height: Int) -> [UInt8] {
    let plane = width * height
    precondition(chw.count == 3 * plane, "expected 3×\(height)×\(width) values, got \(chw.count)")
    var out = [UInt8](repeating: 0, count: 3 * plane)
    for k in 0..<plane {
        for c in 0..<3 {
            let v = (chw[c * plane + k] + 1) * 127.5
            out[3 * k + c] = v.isNaN ? 0 : UInt8(min(max(v, 0), 255).rounded())  // NaN would trap (or be UB unchecked)
        }
    }
    return out
}

/// A square CHW image in [-1, 1] as 8-bit RGB, HWC (the side is inferred from the count).
public func imageToRGB8(_ chw: [Float]) -> [UInt8] {
    let side = Int(Double(chw.count / 3).squareRoot().rounded())
    precondition(3 * side * side == chw.count, "\(chw.count) values are not a square RGB image")
    return imageToRGB8(chw, width: side, height: side)
}

/// A [3, H, W] tensor in [-1, 1] as 8-bit RGB, HWC.
public func imageToRGB8(_ image: Tensor) -> [UInt8] {
    precondition(image.rank == 3 && image.shape[0] == 3, "expected an image of shape [3, H, W]")
    return imageToRGB8(image.array, width: image.shape[2], height: image.shape[1])
}

/// Nearest-neighbour enlargement of an RGB (HWC) image by an integer `factor`, for viewing.
public func upscaleNearest(rgb: [UInt8], width: Int, height: Int, factor: Int) -> [UInt8] {
    precondition(factor >= 1 && rgb.count == width * height * 3, "bad image or factor")
    let ow = width * factor
    var out = [UInt8](repeating: 0, count: ow * height * factor * 3)
    for y in 0..<(height * factor) {
        let sy = y / factor
        for x in 0..<ow {
            let s = 3 * (sy * width + x / factor), d = 3 * (y * ow + x)
            out[d] = rgb[s]; out[d + 1] = rgb[s + 1]; out[d + 2] = rgb[s + 2]
        }
    }
    return out
}

/// Equal-sized RGB (HWC) images laid out in a grid, `columns` wide, separated by `padding`
/// pixels of `padColour`.
public func tileRGB(_ images: [[UInt8]], width: Int, height: Int, columns: Int, padding: Int = 1,
                    padColour: UInt8 = 40) -> (rgb: [UInt8], width: Int, height: Int) {
    precondition(!images.isEmpty && columns >= 1, "nothing to tile")
    precondition(images.allSatisfy { $0.count == width * height * 3 }, "images must share a size")
    let rows = (images.count + columns - 1) / columns
    let gw = columns * width + (columns + 1) * padding, gh = rows * height + (rows + 1) * padding
    var out = [UInt8](repeating: padColour, count: gw * gh * 3)
    for (n, image) in images.enumerated() {
        let ox = padding + (n % columns) * (width + padding), oy = padding + (n / columns) * (height + padding)
        for y in 0..<height {
            let d = 3 * ((oy + y) * gw + ox)
            out.replaceSubrange(d..<(d + 3 * width), with: image[(3 * y * width)..<(3 * (y + 1) * width)])
        }
    }
    return (out, gw, gh)
}

/// Why a generated image is not a usable result, or nil: "non-finite" when any value is NaN or Inf
/// (a diverged run), "constant" when every pixel of `rgb` has the same colour (e.g. all black).
public func imageDefect(values: [Float], rgb: [UInt8]) -> String? {
    let bad = values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
    if bad > 0 { return "non-finite (\(bad) of \(values.count) values are NaN or Inf)" }
    guard rgb.count >= 3 else { return nil }
    let (r, g, b) = (rgb[0], rgb[1], rgb[2])
    var k = 3
    while k + 2 < rgb.count {
        if rgb[k] != r || rgb[k + 1] != g || rgb[k + 2] != b { return nil }
        k += 3
    }
    return "constant (every pixel is RGB \(r),\(g),\(b))"
}
