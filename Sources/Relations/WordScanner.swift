// The word scanner the prompt parser reads prompts with (and Steering's `WhitespaceTokenizer`):
// lower-cased words and single punctuation characters with their UTF-8 ranges.

import Foundation

/// A word or punctuation character found by `scanWords`.
package struct ScannedToken {
    /// Lower-cased text.
    package var text: String
    /// UTF-8 offsets in the scanned string.
    package var range: Range<Int>
    var isPunctuation: Bool
    /// Filled in by the parser for words after the intro.
    var flags = WordFlags()
}

private enum CharClass: UInt8 { case space, punctuation, word, joiner }

/// ASCII classes: letters and digits are word characters, ' and - join words, every other printable
/// character is punctuation, controls are space.
private let asciiClass: [CharClass] = (0..<128).map { value in
    switch value {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return .word
    case 0x27, 0x2D: return .joiner
    case 0x21...0x7E: return .punctuation
    default: return .space
    }
}

private func charClass(_ scalar: Unicode.Scalar) -> CharClass {
    if scalar.value < 128 { return asciiClass[Int(scalar.value)] }
    switch scalar.value {
    case 0x2019, 0x2010, 0x2011: return .joiner  // ’ and the Unicode hyphens
    default: break
    }
    let properties = scalar.properties
    if properties.isWhitespace { return .space }
    switch properties.generalCategory {
    case .control: return .space
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
         .initialPunctuation, .finalPunctuation, .otherPunctuation:
        return .punctuation
    default:
        return .word  // letters, marks, numbers, symbols (emoji), format characters
    }
}

/// Splits `text` into lower-cased words and single punctuation characters, linear in its length.
/// A joiner (' ’ - ‐ ‑) inside a word, between two word characters, stays in the word; elsewhere
/// it is punctuation.
package func scanWords(_ text: String) -> [ScannedToken] {
    let bytes = Array(text.utf8)
    var tokens: [ScannedToken] = []
    var wordStart = -1       // byte offset where the current word began, -1 when outside a word
    var pendingJoiner = -1   // byte offset of a joiner that followed word characters
    var pendingJoinerEnd = -1
    var offset = 0

    func closeWord(at end: Int) {
        guard wordStart >= 0 else { return }
        tokens.append(ScannedToken(text: lowerCased(bytes, wordStart..<end), range: wordStart..<end,
                                   isPunctuation: false))
        wordStart = -1
    }
    func flushJoiner() {
        guard pendingJoiner >= 0 else { return }
        closeWord(at: pendingJoiner)
        tokens.append(ScannedToken(text: lowerCased(bytes, pendingJoiner..<pendingJoinerEnd),
                                   range: pendingJoiner..<pendingJoinerEnd, isPunctuation: true))
        pendingJoiner = -1
    }

    for scalar in text.unicodeScalars {
        let width = UTF8.width(scalar)
        let end = offset + width
        switch charClass(scalar) {
        case .word:
            pendingJoiner = -1  // a joiner between word characters stays in the word
            if wordStart < 0 { wordStart = offset }
        case .joiner:
            if wordStart >= 0 && pendingJoiner < 0 {
                pendingJoiner = offset
                pendingJoinerEnd = end
            } else {
                flushJoiner()
                closeWord(at: offset)
                tokens.append(ScannedToken(text: lowerCased(bytes, offset..<end), range: offset..<end,
                                           isPunctuation: true))
            }
        case .punctuation:
            flushJoiner()
            closeWord(at: offset)
            tokens.append(ScannedToken(text: lowerCased(bytes, offset..<end), range: offset..<end,
                                       isPunctuation: true))
        case .space:
            flushJoiner()
            closeWord(at: offset)
        }
        offset = end
    }
    flushJoiner()
    closeWord(at: offset)
    return tokens
}

/// Lower-cased text of a byte range; ASCII is lower-cased byte by byte, anything else by the
/// standard library.
private func lowerCased(_ bytes: [UInt8], _ range: Range<Int>) -> String {
    var isASCII = true
    var hasUpper = false
    for i in range {
        let b = bytes[i]
        if b >= 0x80 { isASCII = false; break }
        if b >= 0x41 && b <= 0x5A { hasUpper = true }
    }
    if isASCII && !hasUpper { return String(decoding: bytes[range], as: UTF8.self) }
    if isASCII { return String(decoding: bytes[range].map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self) }
    return String(decoding: bytes[range], as: UTF8.self).lowercased()
}
