// PromptTokens: mapping objects to the token positions whose cross-attention maps stand for them
// (as the authors' `utils.py::find_word_token_inds` does), from any tokenizer's `PromptToken`s (UTF-8
// ranges, like the parser's spans). Also the word scanner the parser itself uses.

import Diffusion

/// Which words of an object's noun phrase its token span covers.
public enum TokenSpanRule: Sendable {
    /// The head words only ("circle" in "red circle", both words of "teddy bear"), like the
    /// authors' use of the noun tokens of the chunk. The default.
    case head
    /// The whole noun phrase, attributes included ("red circle").
    case phrase
}

extension RelationGraph {
    /// For each object, the range of token positions (in `tokenize(prompt)`, the FULL prompt, intro
    /// included) whose text overlaps the object's head span (or whole span). The steerer averages
    /// the maps over these positions. nil where no token overlaps.
    ///
    /// Spans are those of the object's first mention, so two objects with the same head noun
    /// ("red circle", "blue circle") get different positions. Callers whose model input has a BOS
    /// that the tokenizer did not return add 1 themselves.
    public func tokenSpans(using tokenize: (String) -> [PromptToken], covering rule: TokenSpanRule = .head) -> [Range<Int>?] {
        let pieces = tokenize(prompt)
        return objects.map { object in
            let span = rule == .head ? object.headSpan : object.span
            var first: Int?
            var last = 0
            for (position, piece) in pieces.enumerated() where piece.range.overlaps(span) {
                if first == nil { first = position }
                last = position
            }
            return first.map { $0..<(last + 1) }
        }
    }
}

/// A word-level tokenizer for tests and the toy model: words are runs of letters, digits, marks
/// and symbols (keeping inner apostrophes and hyphens), lower-cased; each punctuation character is
/// its own token. Ids are a stable 31-bit FNV-1a hash of the token text.
public struct WhitespaceTokenizer: Sendable {
    public init() {}

    public func tokenize(_ text: String) -> [PromptToken] {
        scanWords(text).map { PromptToken(id: stableID($0.text), text: $0.text, range: $0.range) }
    }

    private func stableID(_ text: String) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash & 0x7fff_ffff)
    }
}

// MARK: - Scanner shared with the parser

/// A word or punctuation character found by `scanWords`.
struct ScannedToken {
    /// Lower-cased text.
    var text: String
    /// UTF-8 offsets in the scanned string.
    var range: Range<Int>
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
func scanWords(_ text: String) -> [ScannedToken] {
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
