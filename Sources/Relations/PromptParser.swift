// PromptParser: turns a free-form prompt into a RelationGraph with rules, no NLP model. It
// reproduces the behaviour of the authors' spaCy-based triplet extraction
// (`prompt_parsing_utils.py::PromptParser.extract_relation_triplets_from_prompt`) on
// the prompts it was used for (all 100 GenEval position prompts give their metadata triplet) and
// keeps more of what other prompts say. Cost is linear in the prompt length, which is capped
// (`PromptParser.maxLength`) before any other work.
//
// The rules, in order:
// 1. Reject empty, over-long and control-character prompts (tab and newlines are whitespace).
// 2. Scan lower-cased words (letters, digits, marks, symbols incl. emoji; inner ' and - kept) and
//    single punctuation characters, with UTF-8 offsets into the prompt.
// 3. Strip intros: "[a|an|the] [up to 4 words] photo|image|picture|drawing|illustration|painting|
//    view|scene|animation|render|… of" ("a hyper-realistic digital painting of", "a top-down view
//    of"), repeatedly, and "there is/are".
// 4. Match relation phrases longest first (table in `Lexicon.phrases`): left of / to the left of /
//    on the left of / on the left side of → leftOf (same for right); above / over / atop / on
//    (the) top of / at the top of → above; below / under / underneath / beneath / on (the) bottom
//    of / at the bottom of → below. "next to", "near", "beside", "on (the) side of", "in front of",
//    "behind", "close to", "by", "on" alone, … are kept as unsupported. "on the left", "at the
//    bottom", … without an object are position markers. Hyphenated "above-to" is split first.
// 5. Runs of other words are noun phrases, split at commas, "and"/"or", punctuation and phrases:
//    leading determiners and quantities dropped ("a", "the", "two", "a pair of"); a phrase ends at
//    a clause word after its first content word ("a cat sitting", "a man in a red shirt", "a cat
//    with a hat", "a cat which is"); a determiner after a content word starts a new phrase.
//    Head = a known multi-word noun at the end ("teddy bear", every multi-word COCO class), else
//    the words after the leading adjectives ("red circle" → circle, "coffee mug" → coffee mug);
//    "of" ends the head ("cup of coffee" → cup).
// 6. Relation phrases joined only by commas/"and"/hyphens form one group sharing subject and
//    object ("above and to the left of" → two edges). A group's subject is the nearest noun phrase
//    to its left and its object the nearest to its right, never across ". ; : ! ?" or another group,
//    so "A r1 B r2 C" chains (A,r1,B),(B,r2,C) and "A r1 B and C r2 D" gives (A,r1,B),(C,r2,D).
//    Deviation from the original: in "A r1 B, r2 C" / "A r1 B and r2 C" (a comma or "and" between B
//    and r2, no relative pronoun) the subject of r2 is A.
// 7. Markers: "A on the left and B on the right" → (A, leftOf, B); "on top … at the bottom" →
//    above. A relation to "the image/picture/frame/…" is a marker too, and the frame is no object.
// 8. Objects are deduplicated by name; a definite mention without attributes ("the bowl") is the
//    earliest object with that head. Edges are listed in order of their phrase in the prompt.

/// Why a prompt cannot be steered. `parse` throws `empty`, `tooLong`, `controlCharacters` and
/// `noObjects`; the others are returned as `RelationGraph.warnings`, because the objects are still
/// useful for unsteered sampling.
public enum PromptError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Nothing but whitespace.
    case empty
    /// Longer than `PromptParser.maxLength` Unicode scalars; carries the length.
    case tooLong(Int)
    /// Contains control characters other than tab, line feeds, vertical tab, form feed and NEL.
    case controlCharacters
    /// No noun phrase was found.
    case noObjects
    /// Objects were found but no relation between two of them.
    case noRelation
    /// A relation phrase outside the four steerable classes ("next to"); carries the phrase as written.
    case unsupportedRelation(String)
    /// An object the model's vocabulary does not contain; only reported when a vocabulary is given.
    case unknownObject(String, known: [String])

    public var description: String {
        switch self {
        case .empty:
            return "The prompt is empty; describe two objects and where they are, e.g. \"a cat to the left of a dog\"."
        case .tooLong(let length):
            return "The prompt is \(length) characters long; the limit is \(PromptParser.maxLength)."
        case .controlCharacters:
            return "The prompt contains control characters; use plain text."
        case .noObjects:
            return "No objects found in the prompt; name two things, e.g. \"a cat to the left of a dog\"."
        case .noRelation:
            return "No relation between two objects found (use above, below, left of or right of); "
                + "the image can only be sampled without steering."
        case .unsupportedRelation(let phrase):
            return "\"\(phrase)\" is not a steerable relation (above, below, left of, right of); it will not be steered."
        case .unknownObject(let name, let known):
            return "Unknown object \"\(name)\"; this model knows: \(known.joined(separator: ", "))."
        }
    }
}

extension PromptError: Codable {
    private enum CodingKeys: String, CodingKey { case code, length, name, known, phrase, message }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .code) {
        case "empty": self = .empty
        case "tooLong": self = .tooLong(try c.decode(Int.self, forKey: .length))
        case "controlCharacters": self = .controlCharacters
        case "noObjects": self = .noObjects
        case "noRelation": self = .noRelation
        case "unsupportedRelation": self = .unsupportedRelation(try c.decode(String.self, forKey: .phrase))
        case "unknownObject":
            self = .unknownObject(try c.decode(String.self, forKey: .name),
                                  known: try c.decode([String].self, forKey: .known))
        case let code:
            throw DecodingError.dataCorruptedError(forKey: .code, in: c, debugDescription: "unknown prompt error \(code)")
        }
    }

    /// Encodes a `code` naming the case, its values, and the user-facing `message`.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .empty: try c.encode("empty", forKey: .code)
        case .tooLong(let length):
            try c.encode("tooLong", forKey: .code)
            try c.encode(length, forKey: .length)
        case .controlCharacters: try c.encode("controlCharacters", forKey: .code)
        case .noObjects: try c.encode("noObjects", forKey: .code)
        case .noRelation: try c.encode("noRelation", forKey: .code)
        case .unsupportedRelation(let phrase):
            try c.encode("unsupportedRelation", forKey: .code)
            try c.encode(phrase, forKey: .phrase)
        case .unknownObject(let name, let known):
            try c.encode("unknownObject", forKey: .code)
            try c.encode(name, forKey: .name)
            try c.encode(known, forKey: .known)
        }
        try c.encode(description, forKey: .message)
    }
}

/// The object names a model can draw, e.g. "red circle", "blue square" for the toy model.
///
/// An object matches an entry when its full name equals the entry, or when its head noun equals
/// the entry's head (or is that head plus "s"/"es") and the entry's attributes are all among the
/// object's attributes: "big red circle" and "red circles" match "red circle"; "green circle" does
/// not. Of several matching entries the one with most attributes wins.
public struct ObjectVocabulary: Equatable, Sendable {
    /// The entries, normalised (lower-cased, single-spaced) and sorted.
    public let names: [String]
    private let entries: [NounPhrase]

    public static func == (lhs: ObjectVocabulary, rhs: ObjectVocabulary) -> Bool { lhs.names == rhs.names }

    public init<Names: Sequence>(_ names: Names) where Names.Element == String {
        let normalised = Set(names.map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ").lowercased() })
            .filter { !$0.isEmpty }
        self.names = normalised.sorted()
        self.entries = self.names.map { NounPhrase.analyse($0.split(separator: " ").map(String.init)) }
    }

    /// The entry `object` matches, or nil.
    public func entry(for object: SceneObject) -> String? {
        if let exact = names.firstIndex(of: object.name) { return names[exact] }
        var best: (name: String, attributes: Int)?
        for (index, entry) in entries.enumerated() {
            let head = object.head
            guard head == entry.head || head == entry.head + "s" || head == entry.head + "es" else { continue }
            guard entry.attributes.allSatisfy(object.attributes.contains) else { continue }
            if best == nil || entry.attributes.count > best!.attributes {
                best = (names[index], entry.attributes.count)
            }
        }
        return best?.name
    }
}

/// Rule-based prompt parser; the file header lists its rules and where they follow or depart from
/// the authors' parser.
public struct PromptParser: Sendable {
    /// The longest prompt accepted, in Unicode scalars (CLIP reads only 77 tokens anyway).
    public static let maxLength = 1000

    /// When set, objects outside it produce `unknownObject` warnings and matches fill `vocabularyName`.
    public var vocabulary: ObjectVocabulary?

    public init(vocabulary: ObjectVocabulary? = nil) {
        self.vocabulary = vocabulary
    }

    /// Parses a prompt into objects and relation edges.
    ///
    /// Throws `empty`, `tooLong`, `controlCharacters` or `noObjects`. A prompt with objects but no
    /// usable relation still returns a graph; its `warnings` say `noRelation`,
    /// `unsupportedRelation` or `unknownObject` (use `strict()` to turn them into errors).
    public func parse(_ prompt: String) throws -> RelationGraph {
        try validate(prompt)
        let tokens = scanWords(prompt)
        let start = introLength(tokens)
        let items = relationItems(tokens, from: start)
        var analysis = Analysis(items: items)
        analysis.run()
        return try build(prompt, analysis)
    }

    /// `graph` when it is the graph of `prompt` (a caller that parsed already, such as a UI showing
    /// the graph at once), else `parse(prompt)`.
    public func parse(_ prompt: String, reusing graph: RelationGraph?) throws -> RelationGraph {
        if let graph, graph.prompt == prompt { return graph }
        return try parse(prompt)
    }

    // MARK: Validation

    /// The plain-text rules of every prompt-like text (the prompt, the negative prompt): at most
    /// `maxLength` Unicode scalars, no control characters other than tab, line feeds, vertical tab,
    /// form feed and NEL. The first rule `text` breaks (`tooLong` or `controlCharacters`), or nil.
    public static func plainTextViolation(_ text: String) -> PromptError? {
        if text.utf8.count > maxLength {
            let length = text.unicodeScalars.count
            if length > maxLength { return .tooLong(length) }
        }
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x09...0x0D, 0x85: continue  // tab, newlines, vertical tab, form feed, NEL
            case 0x00...0x1F, 0x7F...0x9F: return .controlCharacters
            default: continue
            }
        }
        return nil
    }

    private func validate(_ prompt: String) throws {
        if prompt.utf8.isEmpty { throw PromptError.empty }
        if let violation = Self.plainTextViolation(prompt) { throw violation }
        if prompt.unicodeScalars.allSatisfy({ $0.properties.isWhitespace }) { throw PromptError.empty }
    }

    // MARK: Intro

    /// Number of leading tokens that form an intro: "a photo of", "an image of", "a hyper-realistic
    /// digital painting of", "a top-down view of", "there is", repeated ("a photo of a drawing of").
    /// Form: [determiner] up to four modifier words, an intro noun, "of".
    private func introLength(_ tokens: [ScannedToken]) -> Int {
        var start = 0
        while true {
            var j = start
            while j < tokens.count && tokens[j].isPunctuation { j += 1 }
            guard j < tokens.count else { return start }
            if tokens[j].text == "there", j + 1 < tokens.count, Lexicon.copulas.contains(tokens[j + 1].text) {
                start = j + 2
                continue
            }
            if tokens[j].text == "there's" || tokens[j].text == "there’s" {
                start = j + 1
                continue
            }
            if Lexicon.introDeterminers.contains(tokens[j].text) { j += 1 }
            var matched = false
            var k = j
            while k < tokens.count && k <= j + 4 && !tokens[k].isPunctuation {
                let word = tokens[k].text
                if Lexicon.introNouns.contains(word), k + 1 < tokens.count, tokens[k + 1].text == "of" {
                    start = k + 2
                    matched = true
                    break
                }
                if word == "of" || Lexicon.isDeterminer(word) || Lexicon.phrases.startsPhrase(word) { break }
                k += 1
            }
            if !matched { return start }
        }
    }

    // MARK: Relation phrases

    /// The tokens after the intro as words, boundaries and matched relation phrases (longest match
    /// first at each position). Hyphenated words such as "above-to" are split first.
    private func relationItems(_ tokens: [ScannedToken], from start: Int) -> [Item] {
        // Split hyphenated ASCII words that hide a relation word ("above-to the left of"). ASCII
        // lower-casing keeps byte offsets, so the parts' ranges follow from their lengths.
        var words: [ScannedToken] = []
        words.reserveCapacity(tokens.count - start)
        for token in tokens[start...] {
            guard !token.isPunctuation, token.text.utf8.contains(0x2D), token.text.utf8.count == token.range.count,
                  token.text.utf8.allSatisfy({ $0 < 0x80 }) else {
                words.append(token)
                continue
            }
            let parts = token.text.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.contains(where: { Lexicon.hyphenSplitWords.contains(String($0)) }) else {
                words.append(token)
                continue
            }
            var offset = token.range.lowerBound
            for (n, part) in parts.enumerated() {
                if n > 0 {
                    words.append(ScannedToken(text: "-", range: offset..<(offset + 1), isPunctuation: true))
                    offset += 1
                }
                if !part.isEmpty {
                    words.append(ScannedToken(text: String(part), range: offset..<(offset + part.utf8.count),
                                              isPunctuation: false))
                }
                offset += part.utf8.count
            }
        }

        var items: [Item] = []
        items.reserveCapacity(words.count)
        var i = 0
        while i < words.count {
            let token = words[i]
            if token.isPunctuation {
                items.append(Lexicon.hardPunctuation.contains(token.text) ? .hard : .soft)
                i += 1
                continue
            }
            if let (phrase, length) = Lexicon.phrases.longestMatch(words, at: i) {
                let end = i + length
                items.append(.phrase(phrase, words[i].range.lowerBound..<words[end - 1].range.upperBound))
                i = end
                continue
            }
            let flags = Lexicon.flags(token.text)
            if flags.has(WordFlags.conjunction) {
                items.append(.soft)
            } else {
                var word = token
                word.flags = flags
                items.append(.word(word))
            }
            i += 1
        }
        return items
    }

    // MARK: Building the graph

    private func build(_ prompt: String, _ analysis: Analysis) throws -> RelationGraph {
        var objects: [SceneObject] = []
        var objectIndex: [String: Int] = [:]
        var nodeOfPhrase: [Int] = []
        for phrase in analysis.phrases {
            if phrase.isFrame {
                nodeOfPhrase.append(-1)
                continue
            }
            if let existing = objectIndex[phrase.name] {
                nodeOfPhrase.append(existing)
                continue
            }
            // "a green bowl … below the bowl": a definite mention without attributes names an earlier
            // object with that head.
            if phrase.isDefinite && phrase.attributes.isEmpty,
               let earlier = objects.firstIndex(where: { $0.head == phrase.head }) {
                nodeOfPhrase.append(earlier)
                continue
            }
            objectIndex[phrase.name] = objects.count
            nodeOfPhrase.append(objects.count)
            objects.append(SceneObject(name: phrase.name, head: phrase.head, attributes: phrase.attributes,
                                       span: phrase.span, headSpan: phrase.headSpan))
        }
        guard !objects.isEmpty else { throw PromptError.noObjects }
        let utf8 = Array(prompt.utf8)
        let edges = analysis.links.enumerated()
            .sorted { ($0.element.span.lowerBound, $0.offset) < ($1.element.span.lowerBound, $1.offset) }
            .map(\.element)
            .map { link in
                RelationEdge(subject: nodeOfPhrase[link.subject], object: nodeOfPhrase[link.object],
                             relation: link.relation,
                             phrase: String(decoding: utf8[link.span], as: UTF8.self), phraseSpan: link.span)
            }

        var warnings: [PromptError] = []
        if edges.isEmpty { warnings.append(.noRelation) }
        var seenPhrases: Set<String> = []
        for edge in edges where !edge.isSupported {
            if seenPhrases.insert(edge.phrase.lowercased()).inserted { warnings.append(.unsupportedRelation(edge.phrase)) }
        }
        if let vocabulary {
            for index in objects.indices {
                if let entry = vocabulary.entry(for: objects[index]) {
                    objects[index].vocabularyName = entry
                } else {
                    warnings.append(.unknownObject(objects[index].name, known: vocabulary.names))
                }
            }
        }
        return RelationGraph(prompt: prompt, objects: objects, edges: edges, warnings: warnings)
    }
}
