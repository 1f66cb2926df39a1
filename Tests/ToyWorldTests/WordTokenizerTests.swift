import Testing
import Relations
import ToyWorld

@Suite("Word tokenizer")
struct WordTokenizerTests {
    let tokenizer = WordTokenizer()

    /// The frozen id table: a change here breaks every trained text encoder.
    static let golden = [
        "<pad>", "<bos>", "<eos>", "<unk>", "a", "above", "an", "and", "bar", "below", "blue", "circle",
        "cross", "cyan", "diamond", "green", "left", "of", "orange", "purple", "red", "right", "ring", "square",
        "star", "the", "to", "triangle", "white", "yellow",
    ]

    @Test("ids are stable")
    func stableIDs() {
        #expect(WordTokenizer.vocabulary == Self.golden)
        #expect(tokenizer.vocabularySize == 30)
        #expect(Array(WordTokenizer.vocabulary[4...]) == WordTokenizer.vocabulary[4...].sorted())
        #expect(tokenizer.encode("a red circle to the left of a blue square") ==
                [1, 4, 20, 11, 26, 25, 16, 17, 4, 10, 23, 2, 0, 0, 0, 0])
        #expect(tokenizer.encode("an orange ring above a cyan bar") == [1, 6, 18, 22, 5, 4, 13, 8, 2, 0, 0, 0, 0, 0, 0, 0])
        #expect(tokenizer.encode("") == [1, 2] + [Int](repeating: 0, count: 14))
        for word in Catalogue.colourWords + Catalogue.shapeWords + SpatialRelation.captionOrder.flatMap({ $0.phrase.split(separator: " ").map(String.init) }) + ["a", "an", "and"] {
            #expect(tokenizer.id(of: word) != WordTokenizer.unkID, "\(word) missing")
        }
    }

    @Test("lower-cases, splits punctuation, maps unknown words to <unk>, keeps UTF-8 ranges")
    func tokenize() {
        let text = "A Red circle, LEFT-of the  yellow dog!"
        let tokens = tokenizer.tokenize(text)
        #expect(tokens.map(\.text) == ["a", "red", "circle", "left", "of", "the", "yellow", "dog"])
        #expect(tokens.map(\.id) == [4, 20, 11, 16, 17, 25, 29, 3])
        let bytes = Array(text.utf8)
        for t in tokens { #expect(String(decoding: bytes[t.range], as: UTF8.self).lowercased() == t.text) }
        #expect(tokens[1].range == 2..<5)
        #expect(tokens[3].range == 14..<18)
        // Sequence index = tokenize index + 1 (<bos> first).
        let ids = tokenizer.encode(text)
        for (k, t) in tokens.enumerated() { #expect(ids[k + 1] == t.id) }
        // Ranges count UTF-8 bytes (é is two), as the prompt parser's spans do.
        let accented = tokenizer.tokenize("é red")
        #expect(accented[0].range == 0..<2 && accented[1].range == 3..<6)
    }

    @Test("encode truncates keeping <eos> and pads to maxLength")
    func encodeLengths() {
        let long = "a red circle and a blue square and a green triangle and a white cross"
        let ids = tokenizer.encode(long, maxLength: 8)
        #expect(ids == [1, 4, 20, 11, 7, 4, 10, 2])
        #expect(tokenizer.encode(long).count == 16 && tokenizer.encode(long).last == 2)
        #expect(tokenizer.encode("a star", maxLength: 6) == [1, 4, 24, 2, 0, 0])
        #expect(tokenizer.decode(tokenizer.encode("A cyan bar above an orange ring")) == "a cyan bar above an orange ring")
    }
}
