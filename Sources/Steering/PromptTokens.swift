// PromptTokens: mapping objects to the token positions whose cross-attention maps stand for them
// (as the authors' `utils.py::find_word_token_inds` does), from any tokenizer's `PromptToken`s (UTF-8
// ranges, like the parser's spans), and a word tokenizer on the parser's own scanner.

import Diffusion
import Relations
import Formats

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
        Int(FNV1a64.hash32(text.utf8) & 0x7fff_ffff)
    }
}
