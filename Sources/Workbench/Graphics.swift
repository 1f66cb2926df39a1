// True-pixel images where the terminal can show them: the kitty graphics protocol, iTerm2 inline
// images and sixel, encoded here in Swift (pure functions: image in, escape sequence out), and the
// choice among them from the environment and the terminal's answer to a query (as timg and chafa
// decide). Half-blocks stay the fallback, and the default inside tmux or screen, which do not pass
// these sequences through. The App writes the sequences after ncurses' frame (CursesBackend.draw).

import Foundation
import Imaging

/// How images are drawn.
enum GraphicsProtocol: String, CaseIterable, Sendable {
    case kitty, iterm, sixel, blocks
}

/// `--graphics`: a protocol, or `auto` (detect).
public enum GraphicsChoice: String, CaseIterable, Sendable {
    case auto, kitty, iterm, sixel, blocks
}

/// Where a true-pixel image goes on the screen: a cell rectangle (its top-left is where the
/// sequence is written) and the image, encoded on the fitter queue (the preview's) or while
/// rendering (the attention map's: small, and memoised in `Widgets.attentionImage`).
struct ImagePlacement: Equatable, Sendable {
    var rect: Rect
    var image: GraphicsImage
    init(rect: Rect, image: GraphicsImage) { self.rect = rect; self.image = image }
}

/// Encoders: each returns the sequence that draws `pixels` (RGB, row-major) at the cursor, over
/// `columns`×`rows` cells.
enum GraphicsEncoder {
    static func encode(_ p: GraphicsProtocol, pixels: [UInt8], width: Int, height: Int, columns: Int, rows: Int, id: Int) -> String {
        switch p {
        case .kitty: return kitty(pixels: pixels, width: width, height: height, columns: columns, rows: rows, id: id)
        case .iterm: return iterm(pixels: pixels, width: width, height: height, columns: columns, rows: rows)
        case .sixel: return sixel(pixels: pixels, width: width, height: height)
        case .blocks: return ""
        }
    }

    /// Kitty graphics protocol: transmit and display 24-bit RGB (`f=24`) scaled to `c`×`r` cells,
    /// as image `id` (a new image with the same id replaces the old one), in chunks of 4096 base64
    /// bytes (`m=1` until the last), quietly (`q=2`), without moving the cursor (`C=1`).
    static func kitty(pixels: [UInt8], width: Int, height: Int, columns: Int, rows: Int, id: Int) -> String {
        let data = Data(pixels).base64EncodedString()
        let chunk = 4096
        var out = ""
        var start = data.startIndex
        var first = true
        repeat {
            let end = data.index(start, offsetBy: chunk, limitedBy: data.endIndex) ?? data.endIndex
            let more = end < data.endIndex ? 1 : 0
            let keys = first ? "a=T,f=24,s=\(width),v=\(height),c=\(columns),r=\(rows),i=\(id),q=2,C=1,m=\(more)" : "m=\(more)"
            out += "\u{1B}_G\(keys);\(data[start..<end])\u{1B}\\"
            start = end
            first = false
        } while start < data.endIndex
        return out
    }

    /// Deletes the kitty image `id` (and its placements).
    static func kittyDelete(id: Int) -> String { "\u{1B}_Ga=d,d=I,i=\(id),q=2\u{1B}\\" }

    /// iTerm2 inline image (OSC 1337, also WezTerm): a PNG stretched to `width`×`height` cells.
    static func iterm(pixels: [UInt8], width: Int, height: Int, columns: Int, rows: Int) -> String {
        let png = PNGEncoder.encode(rgb: pixels, width: width, height: height)
        return "\u{1B}]1337;File=inline=1;size=\(png.count);width=\(columns);height=\(rows);preserveAspectRatio=0:"
            + Data(png).base64EncodedString() + "\u{07}"
    }

    /// Sixel: colours quantised to the xterm palette (16–255, nearest in CIELAB), one register per
    /// colour used (in percent, as sixel wants), six pixel rows per band, runs of a colour
    /// run-length encoded (`!n`); 1:1 pixel aspect (`"1;1`).
    static func sixel(pixels: [UInt8], width: Int, height: Int) -> String {
        guard width > 0, height > 0, pixels.count == width * height * 3 else { return "" }
        var cache: [UInt32: UInt8] = [:]
        var index = [UInt8](repeating: 16, count: width * height)
        for k in 0..<(width * height) {
            let r = pixels[3 * k], g = pixels[3 * k + 1], b = pixels[3 * k + 2]
            let key = UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b)
            if let c = cache[key] { index[k] = c } else { let c = Palette.nearest256(r, g, b); cache[key] = c; index[k] = c }
        }
        let used = Set(index).sorted()
        var out = "\u{1B}Pq\"1;1;\(width);\(height)"
        for c in used {
            let (r, g, b) = Palette.rgb(Int(c))
            out += "#\(c);2;\(r * 100 / 255);\(g * 100 / 255);\(b * 100 / 255)"
        }
        for band in stride(from: 0, to: height, by: 6) {
            var firstColour = true
            for c in used {
                // The sixel of each column for this colour (bit i: row band+i has it).
                var bits = [UInt8](repeating: 0, count: width)
                var any = false
                for i in 0..<6 where band + i < height {
                    let row = (band + i) * width
                    for x in 0..<width where index[row + x] == c { bits[x] |= 1 << i; any = true }
                }
                guard any else { continue }
                if !firstColour { out += "$" }
                firstColour = false
                out += "#\(c)"
                var x = 0
                while x < width {
                    var n = 1
                    while x + n < width && bits[x + n] == bits[x] { n += 1 }
                    let ch = String(UnicodeScalar(63 + bits[x]))
                    out += n > 3 ? "!\(n)\(ch)" : String(repeating: ch, count: n)
                    x += n
                }
            }
            out += "-"
        }
        return out + "\u{1B}\\"
    }
}

/// A PNG in memory (for iTerm2): 8-bit RGB, filter 0, zlib with stored (uncompressed) blocks.
enum PNGEncoder {
    static func encode(rgb: [UInt8], width: Int, height: Int) -> [UInt8] {
        var raw: [UInt8] = []
        raw.reserveCapacity((width * 3 + 1) * height)
        for y in 0..<height {
            raw.append(0)
            raw.append(contentsOf: rgb[(y * width * 3)..<((y + 1) * width * 3)])
        }
        var z: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65_535, raw.count - i)
            let last: UInt8 = i + n >= raw.count ? 1 : 0
            z += [last, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            z += raw[i..<(i + n)]
            i += n
        } while i < raw.count
        z += be32(adler32(raw))
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        out += chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [8, 2, 0, 0, 0])
        out += chunk("IDAT", z)
        out += chunk("IEND", [])
        return out
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let t = Array(type.utf8)
        return be32(UInt32(data.count)) + t + data + be32(crc32(t + data))
    }

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for x in bytes { a = (a + UInt32(x)) % 65_521; b = (b + a) % 65_521 }
        return b << 16 | a
    }
}

/// Choosing the protocol.
enum GraphicsDetection {
    /// What `auto` sends: a kitty graphics query (a 1×1 image, query only) and then primary device
    /// attributes, which every terminal answers — so the DA reply ends the wait, with or without a
    /// kitty reply before it.
    static let query = "\u{1B}_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\u{1B}\\\u{1B}[c"

    /// What a reply says: whether kitty's graphics answered OK, the DA1 attributes (4 = sixel), and
    /// whether the DA1 reply (the end of the answer) has arrived.
    struct Reply: Equatable, Sendable {
        var kitty = false
        var attributes: [Int] = []
        var complete = false
    }

    static func parse(_ reply: String) -> Reply {
        var r = Reply()
        r.kitty = reply.contains("\u{1B}_Gi=31;OK")
        // DA1: ESC [ ? Ps ; … c
        if let start = reply.range(of: "\u{1B}[?"), let end = reply[start.upperBound...].firstIndex(of: "c") {
            r.attributes = reply[start.upperBound..<end].split(separator: ";").compactMap { Int($0) }
            r.complete = true
        }
        return r
    }

    /// Whether the program runs inside a multiplexer that does not pass image sequences through.
    static func insideMultiplexer(_ env: [String: String]) -> Bool {
        if let t = env["TMUX"], !t.isEmpty { return true }
        if let s = env["STY"], !s.isEmpty { return true }
        let term = env["TERM"] ?? ""
        return term.hasPrefix("tmux") || term.hasPrefix("screen")
    }

    /// Whether `auto` should ask the terminal at all (never inside tmux/screen, where half-blocks are the default).
    static func shouldQuery(_ choice: GraphicsChoice, env: [String: String]) -> Bool {
        choice == .auto && !insideMultiplexer(env)
    }

    /// The protocol for a choice, the environment, and the terminal's reply (nil: no reply within the
    /// timeout, or not asked), with the reason for the log.
    static func decide(_ choice: GraphicsChoice, env: [String: String], reply: String?) -> (GraphicsProtocol, String) {
        switch choice {
        case .kitty: return (.kitty, "--graphics kitty")
        case .iterm: return (.iterm, "--graphics iterm")
        case .sixel: return (.sixel, "--graphics sixel")
        case .blocks: return (.blocks, "--graphics blocks")
        case .auto: break
        }
        if insideMultiplexer(env) { return (.blocks, "inside tmux/screen: half-blocks (--graphics to force a protocol)") }
        let parsed = reply.map(parse) ?? Reply()
        let term = env["TERM"] ?? "", program = env["TERM_PROGRAM"] ?? ""
        if parsed.kitty { return (.kitty, "the terminal answered the kitty graphics query") }
        if !(env["KITTY_WINDOW_ID"] ?? "").isEmpty || term == "xterm-kitty" {
            return (.kitty, "kitty (KITTY_WINDOW_ID / TERM=xterm-kitty)")
        }
        if program == "iTerm.app" || program == "WezTerm" { return (.iterm, "TERM_PROGRAM=\(program)") }
        if parsed.attributes.contains(4) { return (.sixel, "the terminal reports sixel graphics (device attribute 4)") }
        if reply == nil { return (.blocks, "no answer to the graphics query: half-blocks") }
        return (.blocks, "no image protocol reported: half-blocks")
    }
}

/// An image ready for a true-pixel protocol: the cells it covers and the sequences that draw and erase it.
struct GraphicsImage: Equatable, Sendable {
    var columns: Int
    var rows: Int
    var payload: String
    /// What removes it again (kitty's images live above the text; sixel pixels go when ncurses repaints the cells).
    var erase: String

    /// `source` fitted to a box of `box.width` columns × `box.height / 2` rows of cells of `cell`
    /// pixels, keeping its aspect. Sixel gets the pixels at the cells' resolution; kitty and iTerm2
    /// get the (at most 128 px) source and scale it to the cells themselves, which keeps each frame
    /// small. Kitty image `id` is replaced in place by the next image with that id.
    static func make(_ source: RGBImage, box: PixelBox, cell: PixelBox, protocol p: GraphicsProtocol, id: Int) -> GraphicsImage? {
        let cols = box.width, rows = box.height / 2
        guard p != .blocks, cols > 0, rows > 0, cell.width > 0, cell.height > 0, source.width > 0, source.height > 0 else { return nil }
        let (pw, ph) = ImageFitter.fittedSize(width: source.width, height: source.height,
                                              boxWidth: cols * cell.width, boxHeight: rows * cell.height)
        let c = max(1, min(cols, (pw + cell.width - 1) / cell.width)), r = max(1, min(rows, (ph + cell.height - 1) / cell.height))
        let img = p == .sixel ? ImageFitter.resample(source, width: pw, height: ph) : ImageFitter.thumbnail(source, maxSide: 128)
        let payload = GraphicsEncoder.encode(p, pixels: img.pixels, width: img.width, height: img.height, columns: c, rows: r, id: id)
        return GraphicsImage(columns: c, rows: r, payload: payload, erase: p == .kitty ? GraphicsEncoder.kittyDelete(id: id) : "")
    }
}
