import Foundation
import Testing
@testable import Diffusion

/// The SD tokenizer folder built from open-clip's BPE file (Scripts/make_clip_vocab.py), shared by the tests.
let sdTokenizer: CLIPTokenizer = {
    let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("clip-tokenizer").path
    return try! CLIPTokenizer(folder: folder)
}()

/// Reference ids from transformers' CLIPTokenizer (Scripts/make_tokenizer_fixtures.py).
struct TokenizerExpectations: Decodable {
    struct Case: Decodable { let prompt: String; let ids: [Int]; let symbols: [String]; let ranges: [[Int]] }
    struct Prompt: Decodable { let prompt: String; let ids: [Int] }
    let cases: [Case]
    let prompts: [Prompt]
    let sd2: [Prompt]
    let sd1_empty_padded: Prompt

    static let shared: TokenizerExpectations = {
        let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("clip-tokenizer-expected.json")
        return try! JSONDecoder().decode(TokenizerExpectations.self, from: Data(contentsOf: url))
    }()
}

@Suite struct CLIPTokenizerTests {
    func framed(_ prompt: String, _ tok: CLIPTokenizer = sdTokenizer) -> [Int] {
        [tok.bosID] + tok.tokenize(prompt).prefix(tok.maxLength - 2).map(\.id) + [tok.eosID]
    }

    @Test func vocabularyShape() {
        let t = sdTokenizer
        #expect(t.vocabulary.count == 49408)
        #expect(t.bosID == 49406 && t.eosID == 49407 && t.padID == 49407 && t.maxLength == 77)
        #expect(t.vocabulary["!"] == 0 && t.vocabulary["!</w>"] == 256)
    }

    /// The six vectors of stable-diffusion-notes.md §5.
    @Test func notesTestVectors() {
        let vectors: [(String, [Int])] = [
            ("a photo of an astronaut riding a horse on mars", [49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496, 49407]),
            ("Apple CoreML developer tools on a Macbook Air are fast", [49406, 3055, 19622, 5780, 10929, 5771, 525, 320, 20617, 1922, 631, 1953, 49407]),
            ("a dog, running!", [49406, 320, 1929, 267, 2761, 256, 49407]),
            ("22 cats", [49406, 273, 273, 3989, 49407]),
            ("a café in Zürich", [49406, 320, 15304, 530, 89, 6522, 4021, 49407]),
            ("a red cube to the left of a blue sphere", [49406, 320, 736, 11353, 531, 518, 1823, 539, 320, 1746, 6987, 49407]),
        ]
        for (prompt, ids) in vectors {
            #expect(framed(prompt) == ids, "\(prompt)")
            let padded = sdTokenizer.encode(prompt)
            #expect(padded.count == 77 && Array(padded.prefix(ids.count)) == ids && padded.dropFirst(ids.count).allSatisfy { $0 == 49407 })
        }
    }

    /// Edge cases (whitespace, contractions, punctuation runs, digits, accents, emoji, CJK, special
    /// literals, truncation): ids, symbols and ranges equal transformers' (the fixture holds Character
    /// ranges; the tokenizer gives UTF-8 ones).
    @Test func edgeCasesMatchTransformers() {
        for c in TokenizerExpectations.shared.cases {
            let tokens = sdTokenizer.tokenize(c.prompt).prefix(75)
            #expect(framed(c.prompt) == c.ids, "ids of \(c.prompt)")
            #expect(tokens.map { sdTokenizer.symbol(of: $0.id) } == c.symbols, "symbols of \(c.prompt)")
            let byteOffsets = c.prompt.reduce(into: [0]) { $0.append($0.last! + $1.utf8.count) }
            #expect(tokens.map { [$0.range.lowerBound, $0.range.upperBound] } == c.ranges.map { $0.map { byteOffsets[$0] } },
                    "ranges of \(c.prompt)")
        }
    }

    /// The 100 GenEval position prompts and 140 T2I-CompBench spatial prompts.
    @Test func benchmarkPromptsMatchTransformers() {
        let prompts = TokenizerExpectations.shared.prompts
        #expect(prompts.count == 240)
        for p in prompts { #expect(framed(p.prompt) == p.ids, "\(p.prompt)") }
    }

    @Test func paddingAndTruncation() throws {
        let e = TokenizerExpectations.shared
        #expect(sdTokenizer.encode(e.sd1_empty_padded.prompt) == e.sd1_empty_padded.ids)
        let long = String(repeating: "a red cube ", count: 40)
        let ids = sdTokenizer.encode(long)
        #expect(ids.count == 77 && ids[0] == 49406 && ids[76] == 49407 && ids[75] == 11353)
    }

    /// SD2's tokenizer config pads with "!" (id 0), and HF then treats a literal "!" as that special token.
    @Test func sd2PadTokenFromConfig() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("l2s-sd2-tok-\(getpid())").path
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let src = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("clip-tokenizer").path
        for f in ["vocab.json", "merges.txt"] { try FileManager.default.copyItem(atPath: src + "/" + f, toPath: folder + "/" + f) }
        try #"{"pad_token": {"content": "!", "lstrip": false}, "model_max_length": 77}"#
            .write(toFile: folder + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        let sd2 = try CLIPTokenizer(folder: folder)
        #expect(sd2.padID == 0)
        for p in TokenizerExpectations.shared.sd2 { #expect(sd2.encode(p.prompt) == p.ids, "\(p.prompt)") }
    }

    /// Control characters are dropped as HF's slow tokenizer (and ftfy) do; whitespace only separates.
    @Test func cleaningDropsControlCharacters() {
        #expect(framed("a\u{07}b") == framed("ab"))
        #expect(framed("a\u{0}b \u{1b}c") == framed("ab c"))
        let t = sdTokenizer.tokenize("a\u{07}b")
        #expect(t.count == 1 && t[0].range == 0..<3)
    }

    /// Ranges are UTF-8 offsets into the prompt as given (before cleaning), also past multi-byte
    /// characters and for a letter NFC composes from two scalars.
    @Test func rangesAreUTF8Offsets() {
        let prompt = "a 🐶 left of CoreML café"
        let t = sdTokenizer.tokenize(prompt)
        #expect(t.map(\.text).prefix(6) == ["a", "🐶", "left", "of", "core", "ml"])
        #expect(t.map(\.range).prefix(6) == [0..<1, 2..<6, 7..<11, 12..<14, 15..<19, 19..<21])
        // "café" starts after the 21 bytes of "a 🐶 left of CoreML " and ends the prompt's 27 bytes.
        #expect(t[6].range.lowerBound == 22 && t.last?.range.upperBound == prompt.utf8.count)
        let decomposed = sdTokenizer.tokenize("e\u{301} dog")
        #expect(decomposed.last?.text == "dog" && decomposed.last?.range == 4..<7)
    }

    @Test func missingFilesAreNamed() {
        #expect(throws: ConfigError.missingFile("/nonexistent/vocab.json")) { try CLIPTokenizer(folder: "/nonexistent") }
    }
}
