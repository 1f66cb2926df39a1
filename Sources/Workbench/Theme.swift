// Colour tiers, glyph sets and palettes. Chrome uses the user's themed
// colours 0–15; data (heatmaps, images) uses palette indices 16–255 in the 256-colour tier, density
// glyphs otherwise. Never more than one tier per session: chosen once at start-up.

/// How many colours the terminal gets from us.
enum ColorTier: String, Sendable, CaseIterable {
    /// NO_COLOR, --no-color, TERM=dumb or no colour support: attributes only.
    case none
    /// 8 or 16 colours: themed colours for chrome, density glyphs for data.
    case basic
    /// 256 colours: themed chrome, palette indices 16–255 for data.
    case palette256
}

/// Every glyph the UI draws, with an ASCII fallback set.
struct Glyphs: Sendable, Equatable {
    var ascii: Bool
    var horizontal, vertical, topLeft, topRight, bottomLeft, bottomRight: Character
    var arrow: String          // in "dog —right of→ bear"
    var dash: String
    var pointer: Character     // selected row
    var steering: Character    // steered this iteration
    var warning: Character
    var cross: Character
    var ellipsis: String
    var upperHalf: Character   // half-block pixel
    var barEighths: [Character] // 1/8 … 8/8
    var sparkLevels: [Character]  // 8 levels, low → high
    var density: [Character]      // empty → full
    var barLeft, barRight: Character
    var sectionDot: String
    var spinner: [Character]
    /// The predicted clean image, x̂₀.
    var predicted: String

    static let unicode = Glyphs(
        ascii: false, horizontal: "─", vertical: "│", topLeft: "┌", topRight: "┐", bottomLeft: "└", bottomRight: "┘",
        arrow: "→", dash: "—", pointer: "▶", steering: "●", warning: "⚠", cross: "✗", ellipsis: "…", upperHalf: "▀",
        barEighths: ["▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"],
        sparkLevels: ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"],
        density: [" ", "░", "▒", "▓", "█"], barLeft: "▕", barRight: "▏", sectionDot: "·",
        spinner: ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"], predicted: "x\u{302}\u{2080}")

    static let asciiOnly = Glyphs(
        ascii: true, horizontal: "-", vertical: "|", topLeft: "+", topRight: "+", bottomLeft: "+", bottomRight: "+",
        arrow: ">", dash: "-", pointer: ">", steering: "*", warning: "!", cross: "x", ellipsis: "~", upperHalf: "#",
        barEighths: [".", ".", ":", ":", "=", "=", "#", "#"],
        sparkLevels: ["_", ".", ",", "-", "~", "=", "+", "#"],
        density: [" ", ".", ":", "-", "=", "+", "*", "#", "%", "@"], barLeft: "[", barRight: "]", sectionDot: "-",
        spinner: ["|", "/", "-", "\\"], predicted: "x0")
}

/// Semantic styles for the chrome, per tier.
struct Theme: Sendable, Equatable {
    var tier: ColorTier
    var glyphs: Glyphs
    var colormap: Colormap

    init(tier: ColorTier, ascii: Bool, colormap: Colormap = .magma) {
        self.tier = tier
        self.glyphs = ascii ? .asciiOnly : .unicode
        self.colormap = colormap
    }

    private func color(_ c: TermColor, _ attrs: CellAttributes = []) -> Style {
        tier == .none ? Style(attributes: attrs) : Style(fg: c, attributes: attrs)
    }

    var text: Style { .plain }
    var border: Style { tier == .none ? .plain : Style(fg: .brightBlack) }
    var focusedBorder: Style { color(.cyan, .bold) }
    var title: Style { Style(attributes: .bold) }
    var dim: Style { tier == .none ? Style(attributes: .dim) : Style(fg: .brightBlack) }
    var accent: Style { color(.cyan, .bold) }
    var good: Style { color(.green) }
    var warning: Style { color(.yellow, .bold) }
    var error: Style { color(.red, .bold) }
    var selected: Style { Style(attributes: .reverse) }
    var bar: Style { color(.blue) }
    var targetBar: Style { color(.green, .bold) }
    var spark: Style { color(.cyan) }
    var pending: Style { color(.yellow) }
    var keyName: Style { color(.cyan, .bold) }
    func stateStyle(_ s: RunPhase) -> Style {
        switch s {
        case .running: return tier == .none ? Style(attributes: [.reverse, .bold]) : Style(fg: .black, bg: .green, attributes: .bold)
        case .paused: return tier == .none ? Style(attributes: .reverse) : Style(fg: .black, bg: .yellow, attributes: .bold)
        case .failed: return tier == .none ? Style(attributes: [.reverse, .bold]) : Style(fg: .white, bg: .red, attributes: .bold)
        default: return Style(attributes: .reverse)
        }
    }
}

/// A monotone (in lightness) sequence of 256-palette indices for heatmaps.
enum Colormap: String, Sendable, CaseIterable {
    case magma, inferno, gray

    /// Palette indices, dark → light (nearest in CIE Lab under the constraint that L* increases, so a
    /// brighter cell always means a larger value).
    var lut: [UInt8] {
        switch self {
        case .magma: return [16, 232, 17, 53, 54, 89, 90, 126, 161, 167, 203, 209, 179, 216, 222, 229]
        case .inferno: return [16, 232, 17, 53, 54, 89, 125, 161, 167, 203, 172, 208, 214, 220, 192, 229]
        case .gray: return Array(232...255)
        }
    }

    var next: Colormap {
        let all = Colormap.allCases
        return all[(all.firstIndex(of: self)! + 1) % all.count]
    }
}

/// The xterm palette and nearest-colour search in CIELAB.
enum Palette {
    static let cubeLevels: [Int] = [0, 95, 135, 175, 215, 255]
    static let ansiRGB: [(Int, Int, Int)] = [
        (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
        (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
    ]

    /// The RGB of a palette index as xterm defines it (0–15: xterm's defaults; users may theme them).
    static func rgb(_ index: Int) -> (Int, Int, Int) {
        if index < 16 { return ansiRGB[max(index, 0)] }
        if index < 232 {
            let i = index - 16
            return (cubeLevels[i / 36], cubeLevels[(i / 6) % 6], cubeLevels[i % 6])
        }
        let g = 8 + 10 * (index - 232)
        return (g, g, g)
    }

    /// CIELAB (D65) of an sRGB colour.
    static func lab(_ r: Int, _ g: Int, _ b: Int) -> (Double, Double, Double) {
        func lin(_ c: Int) -> Double {
            let v = Double(c) / 255
            return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4)
        }
        let R = lin(r), G = lin(g), B = lin(b)
        let x = (0.4124 * R + 0.3576 * G + 0.1805 * B) / 0.95047
        let y = 0.2126 * R + 0.7152 * G + 0.0722 * B
        let z = (0.0193 * R + 0.1192 * G + 0.9505 * B) / 1.08883
        func f(_ t: Double) -> Double { t > 0.008856 ? cbrt(t) : 7.787 * t + 16.0 / 116 }
        let fx = f(x), fy = f(y), fz = f(z)
        return (116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz))
    }

    static let labs256: [(Double, Double, Double)] = (16..<256).map { let c = rgb($0); return lab(c.0, c.1, c.2) }
    static let labs8: [(Double, Double, Double)] = (0..<8).map { let c = rgb($0); return lab(c.0, c.1, c.2) }

    /// Nearest palette index in 16–255 by CIELAB distance.
    static func nearest256(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        UInt8(16 + nearest(lab(Int(r), Int(g), Int(b)), in: labs256))
    }

    /// Nearest of the eight basic colours (assuming xterm's defaults) by CIELAB distance.
    static func nearest8(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        UInt8(nearest(lab(Int(r), Int(g), Int(b)), in: labs8))
    }

    /// Index of the entry of `table` closest to `p` (the first on ties).
    static func nearest(_ p: (Double, Double, Double), in table: [(Double, Double, Double)]) -> Int {
        var best = 0
        var bestD = Double.infinity
        for (i, q) in table.enumerated() {
            let d = distance(p, q)
            if d < bestD { bestD = d; best = i }
        }
        return best
    }

    static func distance(_ p: (Double, Double, Double), _ q: (Double, Double, Double)) -> Double {
        let a = p.0 - q.0, b = p.1 - q.1, c = p.2 - q.2
        return a * a + b * b + c * c
    }

    /// Relative luminance in 0…255.
    static func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        let sum: Int = 299 * Int(r) + 587 * Int(g) + 114 * Int(b)
        return UInt8(min(255, sum / 1000))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
