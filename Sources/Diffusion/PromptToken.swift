/// One token of a prompt, as every tokenizer here returns it (CLIP's BPE, the toy model's words, the
/// parser's test tokenizer): the vocabulary id, the token's text as the tokenizer sees it (for example
/// lower-cased) and the UTF-8 byte offsets in the prompt it came from. The prompt parser's spans are
/// UTF-8 offsets too, so an object maps to the token positions whose attention maps belong to it
/// without converting.
public struct PromptToken: Hashable, Sendable {
    public let id: Int
    public let text: String
    /// UTF-8 offsets into the prompt; empty for a token that stands for no text.
    public let range: Range<Int>
    public init(id: Int, text: String, range: Range<Int>) { self.id = id; self.text = text; self.range = range }
}
