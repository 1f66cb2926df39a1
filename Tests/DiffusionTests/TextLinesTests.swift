import Foundation
import Testing
@testable import Diffusion
@testable import Formats

/// One line splitter for every text input: LF, CRLF and CR; invalid UTF-8 named by line and byte.
@Suite struct TextLinesTests {
    func lines(_ bytes: [UInt8]) throws -> [String] { try TextLines.split(Data(bytes), path: "f.txt") }

    @Test func everyLineEndingSplits() throws {
        for ending in ["\n", "\r\n", "\r"] {
            let text = ["a dog left of a cat", "", "a cat above a dog"].joined(separator: ending) + ending
            #expect(try lines(Array(text.utf8)) == ["a dog left of a cat", "", "a cat above a dog"], "\(ending.debugDescription)")
        }
        #expect(try lines(Array("x\r\ny\rz\nw".utf8)) == ["x", "y", "z", "w"])
        #expect(try lines(Array("\u{FEFF}first\r\n".utf8)) == ["first"])  // a byte-order mark is dropped
        #expect(try lines([]) == [] && lines([0x0A]) == [""] && lines(Array("\r\n\r\n".utf8)) == ["", ""])
    }

    @Test func invalidUTF8IsNamedByLineAndByte() throws {
        let cases: [([UInt8], Int, Int, Int)] = [
            (Array("ok\nab".utf8) + [0x80] + Array("c\n".utf8), 2, 3, 5),    // lone continuation byte
            (Array("x\r\n".utf8) + [0xC0, 0xAF], 2, 1, 3),                  // overlong "/"
            ([0xED, 0xA0, 0x80], 1, 1, 0),                                   // UTF-16 surrogate
            (Array("é".utf8) + [0xE2, 0x82] + [0x0A], 1, 3, 2),             // truncated at the line end
            (Array("a\rb\r".utf8) + [0xF5, 0x80, 0x80, 0x80], 3, 1, 4),    // above U+10FFFF
        ]
        for (bytes, line, column, offset) in cases {
            #expect(throws: TextFileError.invalidUTF8(path: "f.txt", line: line, column: column, offset: offset)) { try lines(bytes) }
        }
        #expect(TextFileError.invalidUTF8(path: "p.txt", line: 2, column: 3, offset: 5).description
                == "p.txt:2: invalid UTF-8 at byte 3 of the line (byte offset 5 in the file)")
    }

    /// The validator agrees with Swift's own UTF-8 decoder on random byte strings.
    @Test func theValidatorAgreesWithSwiftsDecoder() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        let alphabet: [UInt8] = [0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x9F, 0xA0, 0x8F, 0x90]
        var valid = 0
        for _ in 0..<20_000 {
            let bytes = (0..<Int(next() % 8)).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }
            let swift = String(validating: bytes, as: UTF8.self) != nil
            #expect((TextLines.firstInvalidUTF8(bytes[...]) == nil) == swift, "\(bytes)")
            if swift { valid += 1 }
        }
        #expect(valid > 1000)  // both outcomes are exercised
    }

    @Test func aCRLFMergesFileGivesTheSameTokenizer() throws {
        let scratch = try ScratchFolder(copying: "tiny-sd")
        let merges = scratch.path + "/tokenizer/merges.txt"
        let lf = try CLIPTokenizer(folder: scratch.path + "/tokenizer")
        let text = try String(contentsOfFile: merges, encoding: .utf8)
        try text.replacingOccurrences(of: "\n", with: "\r\n").write(toFile: merges, atomically: true, encoding: .utf8)
        let crlf = try CLIPTokenizer(folder: scratch.path + "/tokenizer")
        for prompt in ["a photo of a dog to the left of a cat", "an astronaut riding a horse, 4k", "zebra xylophone"] {
            #expect(crlf.encode(prompt) == lf.encode(prompt), "\(prompt)")
        }
    }

    /// vocab.json with a stray byte: the error names its line and byte (it said only "not a JSON
    /// object of string → id" with the decoder's dump).
    @Test func invalidUTF8InTheVocabularyIsNamedByLineAndByte() throws {
        let scratch = try ScratchFolder(copying: "tiny-sd")
        let path = scratch.path + "/tokenizer/vocab.json"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes.insert(0xFF, at: 1)   // line 1, byte 2
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
            _ = try CLIPTokenizer(folder: scratch.path + "/tokenizer")
            Issue.record("a vocabulary with invalid UTF-8 was accepted")
        } catch {
            #expect("\(error)".contains("vocab.json:1: invalid UTF-8 at byte 2 of the line") && !"\(error)".contains("\n"), "\(error)")
        }
    }
}
