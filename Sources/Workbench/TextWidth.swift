// Column widths of text, without the C locale: a table of the East Asian Wide/Fullwidth blocks and the
// emoji-presentation property, chosen to agree with glibc's wcwidth (which ncurses uses to place
// cells) for the text a prompt can hold. A grapheme is as wide as its first scalar; combining marks,
// joiners and variation selectors after it add nothing (so "⚠️" is 1 column, as wcwidth says).

/// Measuring and cutting text by terminal columns.
enum TextWidth {
    /// Columns one grapheme occupies: 0 for nothing printable, 1 or 2 otherwise.
    static func columns(_ ch: Character) -> Int {
        guard let first = ch.unicodeScalars.first else { return 0 }
        return columns(first)
    }

    /// Columns of one scalar: 0 for combining/format characters, 2 for wide ones, 1 else.
    static func columns(_ s: Unicode.Scalar) -> Int {
        let v = s.value
        if v < 0x7F { return v < 0x20 ? 0 : 1 }
        if v < 0xA0 { return 0 }
        if v < 0x300 { return 1 }
        switch s.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format: return 0
        default: break
        }
        if v == 0x200B || (0xFE00...0xFE0F).contains(v) || (0xE0100...0xE01EF).contains(v) { return 0 }
        if isWide(v) { return 2 }
        return 1
    }

    static func isWide(_ v: UInt32) -> Bool {
        switch v {
        case 0x1100...0x115F, 0x231A...0x231B, 0x2329...0x232A, 0x23E9...0x23EC, 0x23F0, 0x23F3,
             0x25FD...0x25FE, 0x2614...0x2615, 0x2648...0x2653, 0x267F, 0x2693, 0x26A1, 0x26AA...0x26AB,
             0x26BD...0x26BE, 0x26C4...0x26C5, 0x26CE, 0x26D4, 0x26EA, 0x26F2...0x26F3, 0x26F5, 0x26FA,
             0x26FD, 0x2705, 0x270A...0x270B, 0x2728, 0x274C, 0x274E, 0x2753...0x2755, 0x2757,
             0x2795...0x2797, 0x27B0, 0x27BF, 0x2B1B...0x2B1C, 0x2B50, 0x2B55,
             0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
             0xA960...0xA97F, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE10...0xFE19, 0xFE30...0xFE6F,
             0xFF00...0xFF60, 0xFFE0...0xFFE6,
             0x16FE0...0x16FE4, 0x17000...0x18CFF, 0x1B000...0x1B2FF,
             0x1F004, 0x1F0CF, 0x1F18E, 0x1F191...0x1F19A, 0x1F200...0x1F202, 0x1F210...0x1F23B,
             0x1F240...0x1F248, 0x1F250...0x1F251, 0x1F260...0x1F265,
             0x1F300...0x1F320, 0x1F32D...0x1F335, 0x1F337...0x1F37C, 0x1F37E...0x1F393,
             0x1F3A0...0x1F3CA, 0x1F3CF...0x1F3D3, 0x1F3E0...0x1F3F0, 0x1F3F4, 0x1F3F8...0x1F43E,
             0x1F440, 0x1F442...0x1F4FC, 0x1F4FF...0x1F53D, 0x1F54B...0x1F54E, 0x1F550...0x1F567,
             0x1F57A, 0x1F595...0x1F596, 0x1F5A4, 0x1F5FB...0x1F64F, 0x1F680...0x1F6C5, 0x1F6CC,
             0x1F6D0...0x1F6D2, 0x1F6D5...0x1F6D7, 0x1F6DC...0x1F6DF, 0x1F6EB...0x1F6EC,
             0x1F6F4...0x1F6FC, 0x1F7E0...0x1F7EB, 0x1F7F0, 0x1F90C...0x1F93A, 0x1F93C...0x1F945,
             0x1F947...0x1F9FF, 0x1FA70...0x1FAFF,
             0x20000...0x2FFFD, 0x30000...0x3FFFD:
            return true
        default:
            return false
        }
    }

    /// The grapheme as it should be drawn: control characters and graphemes that start with a
    /// zero-width scalar become U+FFFD (or "?" in ASCII mode), so every drawn grapheme has width 1 or 2.
    static func printable(_ ch: Character, ascii: Bool = false) -> (Character, Int) {
        if ascii {
            guard let s = ch.unicodeScalars.first, s.value >= 0x20, s.value < 0x7F else { return ("?", 1) }
            return (Character(s), 1)  // combining marks after an ASCII letter are dropped
        }
        let w = columns(ch)
        if w == 0 { return ("\u{FFFD}", 1) }
        return (ch, w)
    }

    /// Total columns of a string as drawn (after `printable`).
    static func columns(of text: String, ascii: Bool = false) -> Int {
        var n = 0
        for ch in text { n += printable(ch, ascii: ascii).1 }
        return n
    }

    /// The longest prefix that fits in `width` columns; when the text is cut, the last column holds
    /// `ellipsis` (if it is not empty and fits).
    static func truncate(_ text: String, to width: Int, ellipsis: String = "…") -> String {
        if width <= 0 { return "" }
        if columns(of: text) <= width { return text }
        let ew = columns(of: ellipsis)
        let room = ew <= width ? width - ew : width
        var out = ""
        var used = 0
        for ch in text {
            let w = printable(ch).1
            if used + w > room { break }
            out.append(ch)
            used += w
        }
        return ew <= width ? out + ellipsis : out
    }

    /// Pads with spaces (or cuts) to exactly `width` columns.
    static func pad(_ text: String, to width: Int) -> String {
        let t = truncate(text, to: width, ellipsis: "")
        return t + String(repeating: " ", count: max(0, width - columns(of: t)))
    }
}
