import Foundation
import Diffusion

/// One cell of an evaluation grid: a prompt and a seed.
public struct EvalCase: Codable, Equatable, Sendable {
    public var index: Int
    public var prompt: String
    public var seed: UInt64
}

/// The prompt × seed grid, in a fixed order, and its shards (`--shard i/n` takes every n-th case
/// starting at i, so shards are balanced and a merge restores the full grid).
public enum EvalGrid {
    public static func cases(prompts: [String], seeds: Int, firstSeed: UInt64 = 0) -> [EvalCase] {
        var out: [EvalCase] = []
        for (p, prompt) in prompts.enumerated() {
            for s in 0..<seeds { out.append(EvalCase(index: p * seeds + s, prompt: prompt, seed: firstSeed + UInt64(s))) }
        }
        return out
    }

    /// Parses "i/n" (0 ≤ i < n).
    public static func parseShard(_ text: String) -> (index: Int, count: Int)? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else { return nil }
        return (i, n)
    }

    public static func shard(_ cases: [EvalCase], index: Int, count: Int) -> [EvalCase] {
        cases.filter { $0.index % count == index }
    }
}

/// The judged outcome of one generated image.
public struct EvalRecord: Codable, Equatable, Sendable {
    public var index: Int
    public var prompt: String
    public var seed: UInt64
    public var mode: String
    /// Objects named in the prompt and whether each was found.
    public var objects: [String]
    public var found: [Bool]
    /// Each steerable relation ("subject left of object") and whether the image satisfies it.
    public var relations: [String]
    public var satisfied: [Bool]
    public var seconds: Double
    /// The classifier's reading of the final step for each relation (optional diagnostics).
    public var finalTargetProbability: [Float]?

    public var allPresent: Bool { found.allSatisfy { $0 } }
    /// GenEval-style: every object present and every relation satisfied.
    public var correct: Bool { allPresent && satisfied.allSatisfy { $0 } }

    public init(index: Int, prompt: String, seed: UInt64, mode: String, objects: [String], found: [Bool],
                relations: [String], satisfied: [Bool], seconds: Double, finalTargetProbability: [Float]? = nil) {
        self.index = index; self.prompt = prompt; self.seed = seed; self.mode = mode; self.objects = objects
        self.found = found; self.relations = relations; self.satisfied = satisfied; self.seconds = seconds
        self.finalTargetProbability = finalTargetProbability
    }
}

/// Aggregates of a set of records.
public struct EvalSummary: Codable, Equatable, Sendable {
    public var images: Int
    public var presence: Double
    public var accuracy: Double
    /// Accuracy by relation phrase (single-relation prompts: by their relation).
    public var perRelation: [String: Double]
    public var meanSeconds: Double

    public init(records: [EvalRecord]) {
        images = records.count
        let n = Double(max(records.count, 1))
        presence = Double(records.filter(\.allPresent).count) / n
        accuracy = Double(records.filter(\.correct).count) / n
        meanSeconds = records.map(\.seconds).reduce(0, +) / n
        var groups: [String: [Bool]] = [:]
        for r in records {
            for (rel, ok) in zip(r.relations, r.satisfied) {
                let key = ["left of", "right of", "above", "below"].first { rel.contains(" \($0) ") } ?? "other"
                groups[key, default: []].append(ok && r.allPresent)
            }
        }
        perRelation = groups.mapValues { Double($0.filter { $0 }.count) / Double(max($0.count, 1)) }
    }
}

/// JSON-lines I/O for records (one file per shard; `merge` reads several).
public enum EvalRecords {
    public static func append(_ record: EvalRecord, to handle: FileHandle) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var data = try enc.encode(record)
        data.append(0x0A)
        handle.write(data)
    }

    /// Reads records; a malformed line is an error naming the file and line.
    public static func read(_ path: String) throws -> [EvalRecord] {
        let lines: [String]
        do { lines = try TextLines.read(path: path) } catch let e as TextFileError { throw EvalError.unreadable(e.description) }
        var out: [EvalRecord] = []
        for (i, line) in lines.enumerated() where !line.isEmpty {
            do { out.append(try JSONDecoder().decode(EvalRecord.self, from: Data(line.utf8))) } catch {
                throw EvalError.malformed(path, line: i + 1)
            }
        }
        return out
    }

    /// Merges shards: one record per (index, mode); duplicates must agree on the prompt.
    public static func merge(_ shards: [[EvalRecord]]) throws -> [EvalRecord] {
        var byKey: [String: EvalRecord] = [:]
        for r in shards.joined() {
            let key = "\(r.mode)#\(r.index)"
            if let existing = byKey[key], existing.prompt != r.prompt { throw EvalError.conflict(index: r.index) }
            byKey[key] = r
        }
        return byKey.values.sorted { ($0.mode, $0.index) < ($1.mode, $1.index) }
    }
}

public enum EvalError: Error, CustomStringConvertible {
    /// Why the file could not be read (a full message).
    case unreadable(String)
    case malformed(String, line: Int)
    case conflict(index: Int)
    public var description: String {
        switch self {
        case .unreadable(let why): return why
        case .malformed(let p, let l): return "\(p):\(l): not an evaluation record"
        case .conflict(let i): return "shards disagree on the prompt of case \(i) (were they made from different prompt lists?)"
        }
    }
}
