import Diffusion

/// A word-level tokenizer over the toy world's fixed vocabulary.
///
/// Ids never change: `<pad>` 0, `<bos>` 1, `<eos>` 2, `<unk>` 3, then the 26 caption words in
/// alphabetical order from 4 (`WordTokenizer.vocabulary`). New words may only ever be appended.
/// Text is lower-cased and split into runs of letters, digits and apostrophes; whitespace and
/// punctuation separate words and are dropped; unknown words map to `<unk>`.
/// `encode` puts `<bos>` at index 0, so the word `tokenize(text)[k]` sits at sequence index k + 1.
public struct WordTokenizer: Sendable {
    public static let padID = 0, bosID = 1, eosID = 2, unkID = 3

    /// Every token, index = id.
    public static let vocabulary: [String] = [
        "<pad>", "<bos>", "<eos>", "<unk>",
        "a", "above", "an", "and", "bar", "below", "blue", "circle", "cross", "cyan", "diamond", "green",
        "left", "of", "orange", "purple", "red", "right", "ring", "square", "star", "the", "to",
        "triangle", "white", "yellow",
    ]

    static let ids: [String: Int] = Dictionary(uniqueKeysWithValues: vocabulary.enumerated().map { ($1, $0) })

    public init() {}

    /// Number of ids (the text encoder's embedding rows).
    public var vocabularySize: Int { WordTokenizer.vocabulary.count }

    /// The id of `word` (already lower-cased), or `<unk>`'s.
    public func id(of word: String) -> Int { WordTokenizer.ids[word] ?? WordTokenizer.unkID }

    /// The words of `text`, lower-cased, with ids and UTF-8 ranges, without `<bos>`/`<eos>`.
    public func tokenize(_ text: String) -> [PromptToken] {
        var tokens: [PromptToken] = []
        var current = "", start = 0, offset = 0
        func flush() {
            if !current.isEmpty {
                tokens.append(PromptToken(id: id(of: current), text: current, range: start..<offset))
                current = ""
            }
        }
        for ch in text {
            if ch.isLetter || ch.isNumber || ch == "'" {
                if current.isEmpty { start = offset }
                current += ch.lowercased()
            } else {
                flush()
            }
            offset += ch.utf8.count
        }
        flush()
        return tokens
    }

    /// `[<bos>] + word ids + [<eos>]`, padded with `<pad>` to `maxLength`; words beyond
    /// `maxLength - 2` are cut so that `<eos>` is always kept.
    public func encode(_ text: String, maxLength: Int = 16) -> [Int] {
        precondition(maxLength >= 2, "room is needed for <bos> and <eos>")
        let words = tokenize(text).prefix(maxLength - 2).map(\.id)
        var ids = [WordTokenizer.bosID] + words + [WordTokenizer.eosID]
        ids += [Int](repeating: WordTokenizer.padID, count: maxLength - ids.count)
        return ids
    }

    /// The words of an id sequence joined by spaces (`<pad>`, `<bos>`, `<eos>` skipped).
    public func decode(_ ids: [Int]) -> String {
        ids.filter { $0 != WordTokenizer.padID && $0 != WordTokenizer.bosID && $0 != WordTokenizer.eosID }
            .map { WordTokenizer.vocabulary.indices.contains($0) ? WordTokenizer.vocabulary[$0] : "<unk>" }
            .joined(separator: " ")
    }
}
