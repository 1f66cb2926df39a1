// The prompt parser's phrase linker (see PromptParser.swift for the rules it implements): the
// relation-phrase trie, the word classes, noun phrases, and `Analysis`, which splits the scanned
// words into noun phrases and relation groups and links each group to its subject and object
// (rules 5-8).

import Foundation

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
