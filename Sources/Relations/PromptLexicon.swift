// The prompt parser's word lists: relation phrases (rule 4 of PromptParser.swift), intro words,
// determiners, quantities, clause words and multi-word nouns. All lower-case.

import Foundation

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
