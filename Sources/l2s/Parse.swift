import ArgumentParser
import Foundation
import Relations
import ToyBench
import Formats
import Diffusion
import Steering
import ToyWorld

/// `l2s parse`: prompt → relation graph as JSON.
struct Parse: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the relation graph of a prompt (objects, triplets, unsupported edges, token spans) as JSON.")

    @Argument(help: "The prompt.") var prompt: String?
    @Option(help: "Parse one prompt per line of this file (JSON lines out).") var file: String?
    @Flag(help: "Check objects against the embedded toy model's vocabulary.") var toy = false

    func validate() throws {
        if (prompt == nil) == (file == nil) { throw ValidationError("give a prompt or --file, not both") }
    }

    func run() throws {
        let parser = PromptParser(vocabulary: toy ? ModelProfile.toyVocabulary : nil)
        if let prompt {
            do {
                print(try json(parser.parse(prompt), pretty: true))
            } catch let e as PromptError {
                throw ValidationError(e.description)
            }
            return
        }
        let lines: [String]
        do { lines = try TextLines.read(path: file!) } catch let e as TextFileError { throw ValidationError(e.description) }
        var failures = 0
        for line in lines where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            do {
                print(try json(parser.parse(String(line)), pretty: false))
            } catch let e as PromptError {
                failures += 1
                print(#"{"error":\#(quote(e.description)),"prompt":\#(quote(String(line)))}"#)
            }
        }
        if failures > 0 { note("\(failures) prompt(s) could not be parsed") }
    }

    func json(_ graph: RelationGraph, pretty: Bool) throws -> String {
        // Positions in the embedded model's token sequence (<bos> at 0), as the attention maps index them.
        let spans = graph.tokenSpans(using: WordTokenizer().tokenize)
        var object = try JSONSerialization.jsonObject(with: Data(graph.jsonString().utf8)) as! [String: Any]
        object["token_spans"] = spans.map { $0.map { [$0.lowerBound + 1, $0.upperBound + 1] } ?? [] }
        let data = try JSONSerialization.data(withJSONObject: object, options: pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys])
        return String(data: data, encoding: .utf8)!
    }
}

/// A JSON string literal.
func quote(_ s: String) -> String {
    String(data: try! JSONSerialization.data(withJSONObject: [s]), encoding: .utf8)!.dropFirst().dropLast().description
}
