// PromptParser: turns a free-form prompt into a RelationGraph with rules, no NLP model. It
// reproduces the behaviour of the authors' spaCy-based triplet extraction (l2s-method.md §1.2) on
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

/// Rule-based prompt parser; see the file header for what it does and l2s-method.md §1.2 for the
/// behaviour it reproduces.
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

    // MARK: Validation

    private func validate(_ prompt: String) throws {
        if prompt.utf8.isEmpty { throw PromptError.empty }
        if prompt.utf8.count > Self.maxLength {
            let length = prompt.unicodeScalars.count
            if length > Self.maxLength { throw PromptError.tooLong(length) }
        }
        var onlySpace = true
        for scalar in prompt.unicodeScalars {
            switch scalar.value {
            case 0x09...0x0D, 0x85: continue  // tab, newlines, vertical tab, form feed, NEL
            case 0x00...0x1F, 0x7F...0x9F: throw PromptError.controlCharacters
            default: if onlySpace && !scalar.properties.isWhitespace { onlySpace = false }
            }
        }
        if onlySpace { throw PromptError.empty }
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

// MARK: - Internals

/// A relation phrase of the lexicon.
struct Phrase: Sendable {
    enum Kind: Sendable {
        /// Needs a subject and an object; `relation` nil for unsupported phrases ("next to").
        case relation(SpatialRelation?)
        /// An absolute position without an object ("on the left"); paired with its opposite.
        case marker(Side)
    }
    enum Side: Sendable { case left, right, top, bottom }

    var words: [String]
    var kind: Kind
}

/// Relation phrases as a word trie, so that matching at a position costs one lookup per word.
struct PhraseTrie: Sendable {
    private struct Node: Sendable {
        var children: [String: Int] = [:]
        var phrase: Phrase?
    }
    private var nodes = [Node()]

    mutating func insert(_ phrase: Phrase) {
        var node = 0
        for word in phrase.words {
            if let next = nodes[node].children[word] {
                node = next
            } else {
                nodes.append(Node())
                nodes[node].children[word] = nodes.count - 1
                node = nodes.count - 1
            }
        }
        nodes[node].phrase = phrase
    }

    /// Whether some phrase begins with `word`.
    func startsPhrase(_ word: String) -> Bool { nodes[0].children[word] != nil }

    /// The longest phrase made of the words starting at `start` (punctuation never matches), with
    /// its length in words.
    func longestMatch(_ words: [ScannedToken], at start: Int) -> (Phrase, Int)? {
        var node = 0
        var best: (Phrase, Int)?
        var i = start
        while i < words.count, !words[i].isPunctuation, let next = nodes[node].children[words[i].text] {
            node = next
            i += 1
            if let phrase = nodes[node].phrase { best = (phrase, i - start) }
        }
        return best
    }
}

/// What a word can do in a noun phrase, as bits (see the `Lexicon` lists of the same names); plain
/// integers rather than an OptionSet because they are tested per word, and debug builds are slow
/// at generic set algebra.
struct WordFlags: Equatable, Sendable {
    var bits: UInt8 = 0
    static let determiner: UInt8 = 1
    static let leadingFiller: UInt8 = 2
    static let clauseWord: UInt8 = 4
    static let quantityNoun: UInt8 = 8
    static let conjunction: UInt8 = 16
    static let definite: UInt8 = 32
    static let relative: UInt8 = 64

    func has(_ flag: UInt8) -> Bool { bits & flag != 0 }
}

/// The token stream after intro removal and phrase matching.
enum Item {
    case word(ScannedToken)
    case phrase(Phrase, Range<Int>)
    /// Comma, "and", hyphen, quotes, brackets: separates noun phrases, not clauses.
    case soft
    /// Full stop, semicolon, colon, "!" and "?": a relation never reaches across it.
    case hard
}

/// A noun phrase: words without determiners, split into leading attributes and head words.
struct NounPhrase {
    var name: String
    var head: String
    var attributes: [String]
    /// The head's word range in the analysed words.
    var headWords: Range<Int>
    /// Introduced by "the", "this", "that", "these" or "those".
    var isDefinite = false
    /// "the image" as the object of a relation: the picture frame, not an object.
    var isFrame = false
    var span: Range<Int> = 0..<0
    var headSpan: Range<Int> = 0..<0

    /// Splits lower-cased words into attributes and head: a known multi-word noun at the end
    /// ("teddy bear") is the head and every word before it an attribute; otherwise the leading
    /// adjectives are attributes and the rest (at least one word) is the head. "of" ends the head
    /// part: "cup of coffee" has head "cup". `words` must not be empty.
    static func analyse(_ words: [String]) -> NounPhrase {
        let range = headRange(words)
        return NounPhrase(name: words.joined(separator: " "),
                          head: words[range].joined(separator: " "),
                          attributes: Array(words[..<range.lowerBound]), headWords: range)
    }

    static func headRange(_ words: [String]) -> Range<Int> {
        var core = words.count
        if let of = words.firstIndex(of: "of"), of > 0 { core = of }
        for length in stride(from: min(Lexicon.maxCompoundWords, core), through: 2, by: -1) {
            if Lexicon.compounds.contains(words[(core - length)..<core].joined(separator: " ")) {
                return (core - length)..<core
            }
        }
        var first = 0
        while first < core - 1 && Lexicon.isAdjective(words[first]) { first += 1 }
        return first..<core
    }
}

/// Finds noun phrases and links them through the relation phrases.
struct Analysis {
    /// A relation found between two noun phrases (indices into `phrases`).
    struct Link {
        var subject: Int
        var object: Int
        var relation: SpatialRelation?
        var span: Range<Int>
    }

    private enum Unit {
        case phrase(Int)
        case group([(Phrase, Range<Int>)])
        case marker(Phrase.Side, Range<Int>)
        /// A run of words without a noun phrase that holds a relative pronoun: "…, which is …".
        case relative
        case soft
        case hard
    }

    let items: [Item]
    private(set) var phrases: [NounPhrase] = []
    private(set) var links: [Link] = []
    private var units: [Unit] = []
    /// Absolute positions by phrase index, from markers and from relations to the picture frame.
    private var marked: [Int: (side: Phrase.Side, span: Range<Int>)] = [:]
    private var markedOrder: [Int] = []

    init(items: [Item]) {
        self.items = items
    }

    mutating func run() {
        buildUnits()
        linkGroups()
        linkMarkers()
    }

    /// Groups consecutive words into noun phrases and consecutive relation phrases (joined only by
    /// soft boundaries) into groups that share subject and object: "above and to the left of".
    private mutating func buildUnits() {
        var segment: [ScannedToken] = []
        for item in items {
            if case .word(let token) = item {
                segment.append(token)
                continue
            }
            if !segment.isEmpty {
                addNounPhrases(segment)
                segment.removeAll(keepingCapacity: true)
            }
            switch item {
            case .word: break
            case .soft: units.append(.soft)
            case .hard: units.append(.hard)
            case .phrase(let phrase, let span):
                switch phrase.kind {
                case .marker(let side):
                    units.append(.marker(side, span))
                case .relation:
                    var back = units.count - 1
                    while back >= 0, case .soft = units[back] { back -= 1 }
                    if back >= 0, case .group(var members) = units[back] {
                        members.append((phrase, span))
                        units[back] = .group(members)
                    } else {
                        units.append(.group([(phrase, span)]))
                    }
                }
            }
        }
        if !segment.isEmpty { addNounPhrases(segment) }
    }

    /// Turns a run of words into noun phrases: leading determiners and filler words dropped, the
    /// phrase cut at the first clause word ("that", "sitting", "with", "is"), and split where a
    /// determiner follows a content word ("a cat a dog").
    private mutating func addNounPhrases(_ segment: [ScannedToken]) {
        var words = segment[...]
        // Cut at the first clause word after the first content word.
        var seenContent = false
        var index = words.startIndex
        while index < words.endIndex {
            let flags = words[index].flags
            if seenContent && flags.has(WordFlags.clauseWord) {
                words = words[..<index]
                break
            }
            if !flags.has(WordFlags.determiner | WordFlags.leadingFiller) { seenContent = true }
            index += 1
        }
        let unitsBefore = units.count
        var current: [ScannedToken] = []
        var isDefinite = false
        var i = words.startIndex
        while i < words.endIndex {
            let flags = words[i].flags
            // "a pair of", "a couple of": quantity words followed by "of" act as determiners.
            if current.isEmpty, flags.has(WordFlags.quantityNoun), i + 1 < words.endIndex, words[i + 1].text == "of" {
                i += 2
                continue
            }
            if flags.has(WordFlags.determiner) || (current.isEmpty && flags.has(WordFlags.leadingFiller)) {
                if !current.isEmpty {
                    addNounPhrase(current, isDefinite: isDefinite)
                    current.removeAll()
                    isDefinite = false
                }
                if flags.has(WordFlags.definite) { isDefinite = true }
                i += 1
                continue
            }
            current.append(words[i])
            i += 1
        }
        if !current.isEmpty { addNounPhrase(current, isDefinite: isDefinite) }
        if units.count == unitsBefore, segment.contains(where: { $0.flags.has(WordFlags.relative) }) {
            units.append(.relative)
        }
    }

    private mutating func addNounPhrase(_ words: [ScannedToken], isDefinite: Bool) {
        // Trailing fillers ("a cat there", "a dog too") are dropped.
        var words = words[...]
        while words.count > 1, let last = words.last, last.flags.has(WordFlags.leadingFiller) { words = words.dropLast() }
        var phrase = NounPhrase.analyse(words.map(\.text))
        let headWords = phrase.headWords
        let first = words.startIndex
        phrase.span = words[first].range.lowerBound..<words[words.endIndex - 1].range.upperBound
        phrase.headSpan = words[first + headWords.lowerBound].range.lowerBound
            ..< words[first + headWords.upperBound - 1].range.upperBound
        phrase.isDefinite = isDefinite
        units.append(.phrase(phrases.count))
        phrases.append(phrase)
    }

    /// The nearest noun phrase before (`step` -1) or after (+1) unit `from`, crossing soft boundaries,
    /// relative clauses and markers but not hard boundaries or other relation groups.
    private func nearestPhrase(from: Int, step: Int) -> Int? {
        var i = from + step
        while i >= 0 && i < units.count {
            switch units[i] {
            case .phrase(let index): return index
            case .soft, .marker, .relative: i += step
            case .hard, .group: return nil
            }
        }
        return nil
    }

    /// The subject of the group at unit `position`: the nearest noun phrase before it, except in
    /// "A r1 B, r2 C" / "A r1 B and r2 C", where a comma or "and" (and no relative pronoun) separates
    /// B from r2: then r2 continues A's description and A is the subject.
    private func subject(ofGroupAt position: Int, subjects: [Int: Int]) -> Int? {
        var i = position - 1
        var sawSoft = false
        var sawRelative = false
        while i >= 0 {
            switch units[i] {
            case .soft: sawSoft = true
            case .relative: sawRelative = true
            case .marker: break
            case .hard, .group: return nil
            case .phrase(let index):
                guard sawSoft && !sawRelative else { return index }
                var j = i - 1
                while j >= 0, case .marker = units[j] { j -= 1 }
                if j >= 0, case .group = units[j], let earlier = subjects[j] { return earlier }
                return index
            }
            i -= 1
        }
        return nil
    }

    private mutating func linkGroups() {
        var subjects: [Int: Int] = [:]
        for (position, unit) in units.enumerated() {
            guard case .group(let members) = unit,
                  let subject = subject(ofGroupAt: position, subjects: subjects),
                  let object = nearestPhrase(from: position, step: 1) else { continue }
            subjects[position] = subject
            // "on the left side of the image": a position in the frame, not a relation to an object.
            if phrases[object].isDefinite && Lexicon.frameNouns.contains(phrases[object].name) {
                phrases[object].isFrame = true
                for (phrase, span) in members {
                    guard case .relation(let relation?) = phrase.kind else { continue }
                    let side: Phrase.Side
                    switch relation {
                    case .leftOf: side = .left
                    case .rightOf: side = .right
                    case .above: side = .top
                    case .below: side = .bottom
                    }
                    mark(subject, side, span)
                }
                continue
            }
            for (phrase, span) in members {
                guard case .relation(let relation) = phrase.kind else { continue }
                links.append(Link(subject: subject, object: object, relation: relation, span: span))
            }
        }
        links.removeAll { phrases[$0.subject].isFrame || phrases[$0.object].isFrame }
    }

    private func isFree(_ phrase: Int) -> Bool { marked[phrase] == nil && !phrases[phrase].isFrame }

    private mutating func mark(_ phrase: Int, _ side: Phrase.Side, _ span: Range<Int>) {
        guard marked[phrase] == nil, !phrases[phrase].isFrame else { return }
        marked[phrase] = (side, span)
        markedOrder.append(phrase)
    }

    /// "A on the left and B on the right": each marker goes to the unmarked noun phrase before it,
    /// else the one after it; then every left-marked phrase is left of every right-marked one, and
    /// every top-marked phrase above every bottom-marked one.
    private mutating func linkMarkers() {
        for (position, unit) in units.enumerated() {
            guard case .marker(let side, let span) = unit else { continue }
            if let before = nearestPhrase(from: position, step: -1), isFree(before) {
                mark(before, side, span)
            } else if let after = nearestPhrase(from: position, step: 1), isFree(after) {
                mark(after, side, span)
            }
        }
        let pairs: [(Phrase.Side, Phrase.Side, SpatialRelation)] = [(.left, .right, .leftOf), (.top, .bottom, .above)]
        for (first, second, relation) in pairs {
            for a in markedOrder where marked[a]!.side == first {
                for b in markedOrder where marked[b]!.side == second && phrases[a].name != phrases[b].name {
                    links.append(Link(subject: a, object: b, relation: relation, span: marked[a]!.span))
                }
            }
        }
    }
}

/// Word lists. All lower-case.
enum Lexicon {
    /// Relation phrases, matched longest first.
    static let phrases: PhraseTrie = {
        var trie = PhraseTrie()
        func add(_ kind: Phrase.Kind, _ texts: [String]) {
            for text in texts { trie.insert(Phrase(words: text.split(separator: " ").map(String.init), kind: kind)) }
        }
        for (side, relation) in [("left", SpatialRelation.leftOf), ("right", .rightOf)] {
            add(.relation(relation), [
                "\(side) of", "to the \(side) of", "on the \(side) of", "at the \(side) of", "to \(side) of",
                "on \(side) of", "on the \(side) side of", "to the \(side) side of", "at the \(side) side of",
                "on the \(side)-hand side of", "to the \(side)-hand side of", "\(side) side of",
            ])
            add(.marker(side == "left" ? .left : .right), [
                "on the \(side)", "to the \(side)", "at the \(side)", "on the \(side) side",
                "on the \(side)-hand side", "to the \(side)-hand side",
            ])
        }
        add(.relation(.above), [
            "above", "over", "atop", "on top of", "on the top of", "at the top of", "at top of",
            "on the top side of", "higher than", "up above",
        ])
        add(.relation(.below), [
            "below", "under", "underneath", "beneath", "on the bottom of", "on bottom of", "at the bottom of",
            "at bottom of", "on the bottom side of", "lower than", "down below", "underneath of",
        ])
        add(.marker(.top), ["on top", "on the top", "at the top"])
        add(.marker(.bottom), ["on the bottom", "at the bottom"])
        add(.relation(nil), [
            "next to", "near", "near to", "nearby", "beside", "besides", "by", "on side of", "on the side of",
            "at the side of", "by the side of", "to the side of", "in front of", "in the front of", "behind",
            "in back of", "close to", "closer to", "far from", "away from", "on", "onto", "upon", "inside",
            "inside of", "within", "against", "alongside", "along", "around", "between", "in between",
            "among", "across from", "opposite", "opposite to", "opposite of", "facing", "adjacent to",
            "in the middle of", "in the center of", "in the centre of", "outside", "outside of", "into",
            "at", "on the front of", "on the back of",
        ])
        return trie
    }()

    /// Per-word flags, looked up once per word.
    private static let wordFlags: [String: WordFlags] = {
        var table: [String: WordFlags] = [:]
        for (set, flag) in [(determiners, WordFlags.determiner), (leadingFillers, WordFlags.leadingFiller),
                            (clauseWords, WordFlags.clauseWord), (quantityNouns, WordFlags.quantityNoun),
                            (conjunctions, WordFlags.conjunction), (definiteDeterminers, WordFlags.definite),
                            (relativePronouns, WordFlags.relative)] {
            for word in set { table[word, default: WordFlags()].bits |= flag }
        }
        return table
    }()

    /// The flags of a lower-cased word; numbers written in digits are determiners.
    static func flags(_ word: String) -> WordFlags {
        var flags = wordFlags[word] ?? WordFlags()
        if !word.isEmpty && word.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { flags.bits |= WordFlags.determiner }
        return flags
    }

    /// Parts of hyphenated words that make the word be split: "above-to", "left-of".
    static let hyphenSplitWords: Set<String> = ["above", "below", "of", "to", "over", "under"]

    /// Determiners and quantities dropped from noun phrases.
    static let determiners: Set<String> = [
        "a", "an", "the", "some", "any", "this", "that", "these", "those", "my", "your", "his", "her", "its",
        "our", "their", "another", "each", "every", "both", "all", "several", "many", "few", "multiple",
        "various", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "dozen", "no", "single", "couple", "pair",
    ]

    /// A listed determiner or a number written in digits ("2 cats").
    static func isDeterminer(_ word: String) -> Bool { flags(word).has(WordFlags.determiner) }

    static let definiteDeterminers: Set<String> = ["the", "this", "that", "these", "those"]

    static let relativePronouns: Set<String> = ["which", "that", "who", "whom", "whose", "where"]

    /// "on the left of the image": objects of a relation that mean the picture itself.
    static let frameNouns: Set<String> = [
        "image", "picture", "photo", "photograph", "frame", "scene", "canvas", "view", "composition", "shot",
    ]

    static let introDeterminers: Set<String> = ["a", "an", "the", "this", "one"]

    /// Nouns that introduce the picture rather than its content: "a photo of".
    static let introNouns: Set<String> = [
        "photo", "photograph", "image", "picture", "pic", "drawing", "illustration", "painting", "sketch",
        "render", "rendering", "animation", "scene", "view", "shot", "snapshot", "close-up", "closeup",
        "cartoon", "artwork", "portrait", "watercolor", "watercolour", "depiction", "photography",
    ]

    /// "a pair of shoes": quantity nouns dropped with their "of".
    static let quantityNouns: Set<String> = [
        "pair", "couple", "group", "bunch", "lot", "lots", "herd", "flock", "number", "set", "few", "pack",
        "swarm", "crowd", "dozen", "dozens", "plenty",
    ]

    static let copulas: Set<String> = ["is", "are", "was", "were", "'s"]

    /// Words that end a noun phrase when they follow its first content word; the rest of the run of
    /// words is a clause or a prepositional modifier that the relation does not apply to.
    static let clauseWords: Set<String> = [
        "is", "are", "was", "were", "be", "been", "being", "am",
        "that", "which", "who", "whom", "whose", "where", "when", "while",
        "with", "without", "in", "wearing", "holding", "carrying", "containing", "made", "having", "has", "have",
        "sitting", "standing", "lying", "laying", "placed", "positioned", "located", "situated", "hanging",
        "floating", "resting", "perched", "parked", "flying", "sits", "stands", "lies", "rests", "hangs",
        "floats", "appears", "appear", "appearing", "seen", "shown", "visible", "stacked", "balanced",
        "mounted", "displayed", "depicted", "looking", "playing", "running", "walking", "sleeping",
        "directly", "just", "slightly", "right", "immediately", "far", "exactly", "also", "partly",
        "partially", "somewhat", "clearly", "both", "too", "there", "here",
    ]

    /// Words skipped where a noun phrase would start: "which is left of", "it", "them".
    static let leadingFillers: Set<String> = [
        "is", "are", "was", "were", "be", "been", "being", "am", "which", "who", "whom", "whose", "where",
        "when", "while", "there", "here", "it", "they", "them", "he", "she", "him", "itself", "themselves",
        "directly", "just", "slightly", "immediately", "exactly", "also", "placed", "positioned", "located",
        "situated", "sitting", "standing", "too", "other", "very", "of",
    ]

    /// "and", "or": separate noun phrases like a comma.
    static let conjunctions: Set<String> = ["and", "or", "but", "&", "plus", "then", "whereas", "nor", "versus", "vs"]

    static let hardPunctuation: Set<String> = [".", ";", ":", "!", "?", "。", "！", "？", "；"]

    /// Multi-word nouns kept whole as a head: every multi-word COCO class plus a few common ones
    /// whose first word would otherwise read as an adjective ("hot dog", "polar bear").
    static let compounds: Set<String> = [
        "traffic light", "fire hydrant", "stop sign", "parking meter", "sports ball", "baseball bat",
        "baseball glove", "tennis racket", "wine glass", "hot dog", "potted plant", "dining table",
        "cell phone", "teddy bear", "hair drier", "hair dryer", "tv remote", "computer mouse",
        "computer keyboard", "remote control", "tennis ball", "soccer ball", "ice cream", "polar bear",
        "brown bear", "black bear", "red panda", "golden retriever", "christmas tree", "coffee table",
        "coffee mug", "coffee cup", "race car", "fire truck", "fire engine", "police car", "school bus",
        "hot air balloon", "traffic cone", "street light", "street sign", "washing machine",
        "sewing machine", "ceiling fan", "wedding cake", "french fries", "swimming pool", "baseball cap",
        "cowboy hat", "top hat", "hard hat", "sports car", "mobile phone", "smart phone", "bell pepper",
        "green pepper", "red pepper", "hot sauce", "white board", "black board", "blue jay", "black cat",
        "great dane", "german shepherd", "little mermaid",
    ]
    static let maxCompoundWords = 3

    static let adjectives: Set<String> = [
        // colours
        "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray",
        "grey", "silver", "gold", "golden", "beige", "cyan", "magenta", "violet", "teal", "turquoise",
        "maroon", "navy", "tan", "crimson", "scarlet", "ivory", "indigo", "lavender", "olive", "lime",
        "cream", "colorful", "colourful", "multicolored", "transparent", "translucent",
        // size and shape
        "big", "small", "large", "tiny", "huge", "little", "giant", "enormous", "massive", "tall", "short",
        "long", "wide", "narrow", "thick", "thin", "fat", "mini", "miniature", "medium", "gigantic", "round",
        "square", "circular", "rectangular", "triangular", "oval", "flat", "curved", "striped", "spotted",
        "dotted", "plaid", "checkered", "polka", "heavy", "light", "high", "low",
        // age, state, look
        "old", "new", "young", "ancient", "modern", "vintage", "antique", "shiny", "dull", "bright", "dark",
        "pale", "deep", "cute", "beautiful", "pretty", "ugly", "happy", "sad", "angry", "fluffy", "furry",
        "hairy", "wet", "dry", "hot", "cold", "warm", "cool", "clean", "dirty", "empty", "full", "open",
        "closed", "broken", "wild", "fresh", "ripe", "rotten", "fancy", "plain", "simple", "soft", "hard",
        "smooth", "rough", "sleeping", "running", "flying", "smiling", "glowing", "shining", "burning",
        "floating", "melting", "spinning", "swimming", "dancing", "jumping", "walking", "stuffed", "plush",
        "realistic", "hyper-realistic", "photorealistic", "fake", "real", "male", "female", "lonely", "sleepy",
        "funny", "scary", "friendly", "lovely", "giant", "wooden", "metal", "metallic", "plastic", "glass",
        "stone", "steel", "iron", "leather", "paper", "ceramic", "cotton", "woolen", "wool", "rubber",
        "marble", "brick", "concrete", "crystal", "electric", "classic", "exotic", "futuristic", "robotic",
        "magic", "majestic", "fantastic", "cartoon", "toy", "first", "second", "third", "last", "other",
        "left", "right", "upper", "lower", "top", "bottom", "middle", "front", "back", "same", "different",
    ]

    /// Known adjective, an ordinal-like word with digits ("3d"), or a word with a typical adjective
    /// suffix (-ful, -ous, -less, -ish, -ive, -ed) that is not a known noun ending ("fish", "bed").
    static func isAdjective(_ word: String) -> Bool {
        if adjectives.contains(word) { return true }
        let hasDigit = word.utf8.contains { $0 >= 0x30 && $0 <= 0x39 }
        if hasDigit { return word.utf8.contains { $0 >= 0x61 && $0 <= 0x7A } }
        let length = word.utf8.count
        if length < 6 { return false }
        for suffix in ["ful", "ous", "less"] where word.hasSuffix(suffix) { return true }
        if word.hasSuffix("ish") { return !word.hasSuffix("fish") && !word.hasSuffix("dish") }
        if word.hasSuffix("ive") { return !word.hasSuffix("hive") }
        if word.hasSuffix("ed") { return !word.hasSuffix("bed") && !word.hasSuffix("eed") && !word.hasSuffix("shed") }
        return false
    }
}
