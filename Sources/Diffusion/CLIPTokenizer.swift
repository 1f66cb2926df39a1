import Foundation
import Formats

// CLIP's byte-level BPE tokenizer as Hugging Face's CLIPTokenizer runs it for Stable Diffusion:
//
// 1. Special literals (`<|startoftext|>`, `<|endoftext|>` and the pad token when it is something else,
//    e.g. SD2's "!") are split out of the raw prompt first and become their ids directly.
// 2. Cleaning, per Character: drop control characters (Cc other than whitespace, as HF's slow
//    tokenizer and ftfy do), whitespace separates, NFC, then lower-case (per Character, so a final
//    Σ becomes σ, as the `tokenizers` backend does).
// 3. Pre-tokenizing with CLIP's pattern: the special literals, the contractions 's 't 're 've 'm 'll 'd,
//    runs of letters (\p{L}+), single numbers (\p{N}), and runs of anything else that is not a space.
// 4. Each piece's UTF-8 bytes go through GPT-2's byte→printable-character table, `</w>` is appended
//    to the last symbol, and the adjacent pair with the lowest merge rank is merged until none is left.
// 5. `<|startoftext|>` + body (at most maxLength − 2 tokens) + `<|endoftext|>`, padded to maxLength.
//
// Known differences from transformers' `tokenizers` backend (v5), which no prompt of ours hits:
// it keeps control characters, and it splits an upper-case `<|ENDOFTEXT|>` into pieces where the
// slow tokenizer (and this one) map the lower-cased literal to the special id.

/// Hugging Face-compatible CLIP BPE tokenizer (vocab.json + merges.txt).
public final class CLIPTokenizer: @unchecked Sendable {
    public static let startLiteral = "<|startoftext|>"
    public static let endLiteral = "<|endoftext|>"

    /// Vocabulary entry → id.
    public let vocabulary: [String: Int]
    public let bosID: Int
    public let eosID: Int
    public let padID: Int
    /// The id of unknown symbols (`<|endoftext|>`; never hit with the byte-level map and a full vocabulary).
    public let unknownID: Int
    /// Framed length (BOS + body + EOS + padding), 77 for SD.
    public let maxLength: Int
    /// The literal split out as the pad token before cleaning (nil when padding is `<|endoftext|>`).
    public let padLiteral: String?

    /// (left id, right id) → (rank, merged id).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// Byte → id of its symbol, and of its symbol + `</w>`.
    private let byteIDs: [Int32]
    private let byteEndIDs: [Int32]
    private let idToSymbol: [Int: String]
    private var cache: [[UInt8]: [(id: Int32, bytes: Int32)]] = [:]
    private let lock = NSLock()

    /// GPT-2's reversible byte → printable character table.
    public static let byteSymbols: [Character] = {
        var bs = Array(33...126) + Array(161...172) + Array(174...255)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) {
            bs.append(b)
            cs.append(256 + n)
            n += 1
        }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(bs, cs) { table[b] = Character(Unicode.Scalar(UInt32(c))!) }
        return table
    }()

    /// Builds a tokenizer from a vocabulary and ranked merges (rank = position).
    public init(vocabulary: [String: Int], merges: [(String, String)], padToken: String = CLIPTokenizer.endLiteral,
                maxLength: Int = 77) throws {
        func need(_ s: String) throws -> Int {
            guard let id = vocabulary[s] else { throw ConfigError.malformed("tokenizer vocabulary", "no entry for '\(s)'") }
            return id
        }
        if let (symbol, id) = vocabulary.first(where: { !(0...Int(Int32.max)).contains($0.value) }) {
            throw ConfigError.malformed("tokenizer vocabulary", "id \(id) of '\(symbol)' is negative or too large")
        }
        self.vocabulary = vocabulary
        bosID = try need(CLIPTokenizer.startLiteral)
        eosID = try need(CLIPTokenizer.endLiteral)
        unknownID = eosID
        padID = try need(padToken)
        padLiteral = padToken == CLIPTokenizer.endLiteral || padToken == CLIPTokenizer.startLiteral ? nil : padToken
        guard maxLength >= 2 else { throw ConfigError.malformed("tokenizer config", "model_max_length \(maxLength) < 2") }
        self.maxLength = maxLength
        byteIDs = try CLIPTokenizer.byteSymbols.map { Int32(try need(String($0))) }
        byteEndIDs = try CLIPTokenizer.byteSymbols.map { Int32(try need(String($0) + "</w>")) }
        var table: [UInt64: (Int32, Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocabulary[a], let ib = vocabulary[b] else {
                throw ConfigError.malformed("tokenizer merges", "merge \(rank + 1) '\(a) \(b)' uses a symbol missing from the vocabulary")
            }
            guard let merged = vocabulary[a + b] else {
                throw ConfigError.malformed("tokenizer merges", "merge \(rank + 1) '\(a) \(b)' gives '\(a + b)', missing from the vocabulary")
            }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if table[key] == nil { table[key] = (Int32(rank), Int32(merged)) }
        }
        self.merges = table
        idToSymbol = Dictionary(vocabulary.map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Loads `vocab.json`, `merges.txt` and (when present) `tokenizer_config.json` /
    /// `special_tokens_map.json` (pad token, model_max_length) from a diffusers `tokenizer/` folder.
    public convenience init(folder: String) throws {
        let vocabPath = folder + "/vocab.json", mergesPath = folder + "/merges.txt"
        for p in [vocabPath, mergesPath] where !FileManager.default.fileExists(atPath: p) { throw ConfigError.missingFile(p) }
        let vocabulary: [String: Int]
        let vocabData: Data
        do {
            vocabData = try Data(contentsOf: URL(fileURLWithPath: vocabPath))
            // Invalid UTF-8 named by line and byte (the JSON decoder only says the data is not valid).
            try TextLines.checkUTF8(vocabData, path: vocabPath)
        } catch let e as TextFileError {
            throw ConfigError.malformed(vocabPath, e.description)
        } catch {
            throw ConfigError.malformed(vocabPath, "cannot read: \(error.localizedDescription)")
        }
        do {
            vocabulary = try JSONDecoder().decode([String: Int].self, from: vocabData)
        } catch {
            throw ConfigError.malformed(vocabPath, "not a JSON object of string → id (\(error))")
        }
        let lines: [String]
        do { lines = try TextLines.read(path: mergesPath) } catch let e as TextFileError {
            throw ConfigError.malformed(mergesPath, e.description)
        }
        var merges: [(String, String)] = []
        for (n, trimmed) in lines.enumerated() {
            if n == 0 && trimmed.hasPrefix("#version") { continue }
            if trimmed.isEmpty { continue }
            let parts = trimmed.split(separator: " ")
            guard parts.count == 2 else { throw ConfigError.malformed(mergesPath, "line \(n + 1) is not two symbols: '\(trimmed)'") }
            merges.append((String(parts[0]), String(parts[1])))
        }
        var pad = CLIPTokenizer.endLiteral
        var maxLength = 77
        for name in ["special_tokens_map.json", "tokenizer_config.json"] {
            let path = folder + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw ConfigError.malformed(path, "not a JSON object")
            }
            if let p = json["pad_token"] as? String { pad = p }
            if let p = json["pad_token"] as? [String: Any], let content = p["content"] as? String { pad = content }
            if let m = json["model_max_length"] as? Int, m <= 77 { maxLength = m }
        }
        do {
            try self.init(vocabulary: vocabulary, merges: merges, padToken: pad, maxLength: maxLength)
        } catch let ConfigError.malformed(_, why) {
            throw ConfigError.malformed(folder, why)
        }
    }

    // MARK: Encoding

    /// The vocabulary entry of an id (e.g. `dog</w>`, `core`).
    public func symbol(of id: Int) -> String? { idToSymbol[id] }

    /// The prompt's tokens, in order, without BOS/EOS and without truncation. A token's text is
    /// decoded from its bytes without `</w>` (lossy when it holds part of a character); its range
    /// covers the prompt's UTF-8 bytes of the characters whose cleaned bytes it holds.
    public func tokenize(_ prompt: String) -> [PromptToken] {
        var out: [PromptToken] = []
        let chars = Array(prompt)
        // Character index → UTF-8 offset in the prompt (one past the end last).
        var byteOffsets = [0]
        for ch in chars { byteOffsets.append(byteOffsets[byteOffsets.count - 1] + ch.utf8.count) }
        var specials = [(CLIPTokenizer.startLiteral, bosID), (CLIPTokenizer.endLiteral, eosID)]
        if let padLiteral { specials.append((padLiteral, padID)) }
        let specialChars = specials.map { (Array($0.0), $0.1) }
        var segmentStart = 0, i = 0
        while i < chars.count {
            if let (literal, id) = specialChars.first(where: { matches($0.0, chars, at: i) }) {
                tokenizeText(chars, segmentStart..<i, byteOffsets: byteOffsets, into: &out)
                out.append(PromptToken(id: id, text: String(literal), range: byteOffsets[i]..<byteOffsets[i + literal.count]))
                i += literal.count
                segmentStart = i
            } else {
                i += 1
            }
        }
        tokenizeText(chars, segmentStart..<chars.count, byteOffsets: byteOffsets, into: &out)
        return out
    }

    /// `<|startoftext|>` + at most maxLength − 2 token ids + `<|endoftext|>`, padded with the pad id to `maxLength`.
    public func encode(_ prompt: String) -> [Int] {
        let body = tokenize(prompt).prefix(maxLength - 2).map(\.id)
        var ids = [bosID] + body + [eosID]
        ids += [Int](repeating: padID, count: maxLength - ids.count)
        return ids
    }

    private func matches(_ literal: [Character], _ chars: [Character], at i: Int) -> Bool {
        guard i + literal.count <= chars.count else { return false }
        for k in 0..<literal.count where chars[i + k] != literal[k] { return false }
        return true
    }

    /// Cleans, pre-tokenizes and BPE-encodes `chars[range]` (no special literals in it); `byteOffsets`
    /// maps a Character index to its UTF-8 offset in the prompt.
    private func tokenizeText(_ chars: [Character], _ range: Range<Int>, byteOffsets: [Int], into out: inout [PromptToken]) {
        guard !range.isEmpty else { return }
        // Cleaned scalars with the Character offset each came from; whitespace as a single space.
        var scalars: [Unicode.Scalar] = [], origin: [Int] = []
        for c in range {
            let ch = chars[c]
            if ch.isWhitespace {
                if scalars.last != " " { scalars.append(" "); origin.append(c) }
                continue
            }
            let kept = ch.unicodeScalars.filter { !($0.properties.generalCategory == .control || $0.value == 0) }
            if kept.isEmpty { continue }
            var s = String(String.UnicodeScalarView(kept)).precomposedStringWithCanonicalMapping
            s = s.lowercased()
            for u in s.unicodeScalars { scalars.append(u); origin.append(c) }
        }
        var p = 0
        while p < scalars.count {
            let end = pieceEnd(scalars, from: p)
            if end == p { p += 1; continue }
            let piece = String(String.UnicodeScalarView(scalars[p..<end]))
            if piece == CLIPTokenizer.startLiteral || piece == CLIPTokenizer.endLiteral {
                let id = piece == CLIPTokenizer.startLiteral ? bosID : eosID
                out.append(PromptToken(id: id, text: piece, range: byteOffsets[origin[p]]..<byteOffsets[origin[end - 1] + 1]))
            } else {
                // Byte offsets → origin characters.
                var bytes: [UInt8] = [], byteOrigin: [Int] = []
                for k in p..<end {
                    for b in String(scalars[k]).utf8 { bytes.append(b); byteOrigin.append(origin[k]) }
                }
                var offset = 0
                for (id, count) in bpe(bytes) {
                    let n = Int(count)
                    let text = String(decoding: bytes[offset..<(offset + n)], as: UTF8.self)
                    out.append(PromptToken(id: Int(id), text: text,
                                           range: byteOffsets[byteOrigin[offset]]..<byteOffsets[byteOrigin[offset + n - 1] + 1]))
                    offset += n
                }
            }
            p = end
        }
    }

    /// End of the pre-token starting at `p` (== p when the scalar there starts none, i.e. a space).
    private func pieceEnd(_ s: [Unicode.Scalar], from p: Int) -> Int {
        func at(_ i: Int) -> Unicode.Scalar? { i < s.count ? s[i] : nil }
        for literal in [CLIPTokenizer.startLiteral, CLIPTokenizer.endLiteral] {
            let ls = Array(literal.unicodeScalars)
            if p + ls.count <= s.count && Array(s[p..<(p + ls.count)]) == ls { return p + ls.count }
        }
        if s[p] == "'" {
            for suffix in ["s", "t", "re", "ve", "m", "ll", "d"] {
                let us = Array(suffix.unicodeScalars)
                if p + 1 + us.count <= s.count && Array(s[(p + 1)..<(p + 1 + us.count)]) == us { return p + 1 + us.count }
            }
        }
        if isLetter(s[p]) {
            var e = p + 1
            while let u = at(e), isLetter(u) { e += 1 }
            return e
        }
        if isNumber(s[p]) { return p + 1 }
        if isSpace(s[p]) { return p }
        var e = p + 1
        while let u = at(e), !isSpace(u), !isLetter(u), !isNumber(u) { e += 1 }
        return e
    }

    private func isLetter(_ u: Unicode.Scalar) -> Bool {
        switch u.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    private func isNumber(_ u: Unicode.Scalar) -> Bool {
        switch u.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    private func isSpace(_ u: Unicode.Scalar) -> Bool { u.properties.isWhitespace }

    /// BPE over one piece's bytes: (id, byte count) per token. Cached per piece.
    private func bpe(_ bytes: [UInt8]) -> [(id: Int32, bytes: Int32)] {
        lock.lock()
        if let hit = cache[bytes] { lock.unlock(); return hit }
        lock.unlock()
        var ids = bytes.map { byteIDs[Int($0)] }
        var lengths = [Int32](repeating: 1, count: bytes.count)
        ids[ids.count - 1] = byteEndIDs[Int(bytes[bytes.count - 1])]
        while ids.count > 1 {
            var best: (rank: Int32, id: Int32)? = nil
            for k in 0..<(ids.count - 1) {
                if let m = merges[UInt64(UInt32(ids[k])) << 32 | UInt64(UInt32(ids[k + 1]))], m.rank < (best?.rank ?? .max) {
                    best = m
                }
            }
            guard let best else { break }
            // Merge every occurrence of the best pair, left to right.
            var newIDs: [Int32] = [], newLengths: [Int32] = []
            var k = 0
            while k < ids.count {
                if k + 1 < ids.count, let m = merges[UInt64(UInt32(ids[k])) << 32 | UInt64(UInt32(ids[k + 1]))], m.rank == best.rank {
                    newIDs.append(m.id)
                    newLengths.append(lengths[k] + lengths[k + 1])
                    k += 2
                } else {
                    newIDs.append(ids[k])
                    newLengths.append(lengths[k])
                    k += 1
                }
            }
            ids = newIDs
            lengths = newLengths
        }
        let result = Array(zip(ids, lengths)).map { (id: $0.0, bytes: $0.1) }
        lock.lock()
        if cache.count > 100_000 { cache.removeAll(keepingCapacity: true) }
        cache[bytes] = result
        lock.unlock()
        return result
    }
}
