import Foundation
import Formats

/// One cell of an evaluation grid: a prompt and a seed.
public struct EvalCase: Codable, Equatable, Sendable {
    public var index: Int
    public var prompt: String
    public var seed: UInt64
}

/// The prompt × seed grid, in a fixed order, and its shards (`--shard i/n` takes every n-th case
/// starting at i, so shards are balanced and a merge restores the full grid).
public enum EvalGrid {
    /// Every case gets its own seed, `firstSeed + index`: prompt p's k seeds are
    /// `firstSeed + p·seeds …+ seeds − 1`. (Giving every prompt the same seeds would start all of
    /// them from the same noise, so a 224-prompt run would sample the noise once: on the embedded
    /// model seed 0 alone read exact 0.39 and seed 1000 alone 0.02 on the same 56 prompts.)
    public static func cases(prompts: [String], seeds: Int, firstSeed: UInt64 = 0) -> [EvalCase] {
        var out: [EvalCase] = []
        for (p, prompt) in prompts.enumerated() {
            for s in 0..<seeds {
                let index = p * seeds + s
                out.append(EvalCase(index: index, prompt: prompt, seed: firstSeed &+ UInt64(index)))
            }
        }
        return out
    }

    /// Parses "i/n" (0 ≤ i < n).
    public static func parseShard(_ text: String) -> (index: Int, count: Int)? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else { return nil }
        return (i, n)
    }

    /// "i/n", or "auto": the shard the job scheduler gave this process. Slurm job arrays set
    /// SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (and _MIN/_STEP for `--array=1-8` or `0-15:2`);
    /// Kubernetes Indexed Jobs set JOB_COMPLETION_INDEX, with the count in L2S_SHARD_COUNT (the Job's
    /// `completions`). Throws a message saying what is missing.
    public static func resolveShard(_ text: String, environment: [String: String]) throws -> (index: Int, count: Int) {
        func fail(_ m: String) -> ShardError { ShardError(message: m) }
        guard text == "auto" else {
            guard let s = parseShard(text) else { throw fail("--shard must look like i/n with 0 ≤ i < n, or auto") }
            return s
        }
        func int(_ key: String) throws -> Int? {
            guard let v = environment[key] else { return nil }
            guard let n = Int(v.trimmingCharacters(in: .whitespaces)) else { throw fail("--shard auto: \(key)=\(v) is not a whole number") }
            return n
        }
        if let id = try int("SLURM_ARRAY_TASK_ID") {
            guard let count = try int("SLURM_ARRAY_TASK_COUNT") else {
                throw fail("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (is this a job array?)")
            }
            let first = try int("SLURM_ARRAY_TASK_MIN") ?? 0, step = try int("SLURM_ARRAY_TASK_STEP") ?? 1
            guard step >= 1, id >= first, (id - first) % step == 0, count >= 1, (id - first) / step < count else {
                throw fail("--shard auto: task \(id) is not one of \(count) array tasks from \(first) in steps of \(step)")
            }
            return ((id - first) / step, count)
        }
        if let index = try int("JOB_COMPLETION_INDEX") {
            guard let count = try int("L2S_SHARD_COUNT") else {
                throw fail("--shard auto: JOB_COMPLETION_INDEX is set; also set L2S_SHARD_COUNT to the Job's completions")
            }
            guard count >= 1, (0..<count).contains(index) else {
                throw fail("--shard auto: JOB_COMPLETION_INDEX \(index) is outside 0..<\(count) (L2S_SHARD_COUNT)")
            }
            return (index, count)
        }
        throw fail("--shard auto: none of SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (Slurm job array) or JOB_COMPLETION_INDEX (Kubernetes Indexed Job) is set")
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
    /// Instances the detector counts per class name (every blob that passes, not only the largest).
    /// Nil in records written before fidelity was measured.
    public var instances: [String: Int]?
    /// Fidelity: `exact` — exactly the named objects, one each, nothing else; `duplicate` — a named
    /// object appears more than once; `unasked` — an object the prompt does not name appears.
    public var exact: Bool?
    public var duplicate: Bool?
    public var unasked: Bool?
    /// Provenance for `merge` (absent in files from older versions): the shard "i/n" that wrote the
    /// record, the number of cases in the whole grid, and a fingerprint of the run's settings.
    public var shard: String?
    public var grid: Int?
    public var run: String?
    /// Set when the image came out non-finite or constant (e.g. all black): why.
    public var defect: String?

    public var allPresent: Bool { found.allSatisfy { $0 } }
    /// GenEval-style: every object present and every relation satisfied.
    public var correct: Bool { allPresent && satisfied.allSatisfy { $0 } }

    public init(index: Int, prompt: String, seed: UInt64, mode: String, objects: [String], found: [Bool],
                relations: [String], satisfied: [Bool], seconds: Double, finalTargetProbability: [Float]? = nil) {
        self.index = index; self.prompt = prompt; self.seed = seed; self.mode = mode; self.objects = objects
        self.found = found; self.relations = relations; self.satisfied = satisfied; self.seconds = seconds
        self.finalTargetProbability = finalTargetProbability
    }

    /// Records the detector's instance counts and the fidelity they give for the named classes.
    public mutating func setInstances(_ counts: [String: Int], named: [String]) {
        let named = Set(named)
        instances = counts.filter { $0.value > 0 }
        duplicate = named.contains { counts[$0, default: 0] > 1 }
        unasked = counts.contains { $0.value > 0 && !named.contains($0.key) }
        exact = named.allSatisfy { counts[$0, default: 0] == 1 } && unasked == false
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
    /// Fractions of the records that carry fidelity (nil when none does): exactly the named objects,
    /// a named object duplicated, an unasked object present.
    public var exact: Double?
    public var duplicate: Double?
    public var unasked: Double?

    public init(records: [EvalRecord]) {
        images = records.count
        let n = Double(max(records.count, 1))
        presence = Double(records.filter(\.allPresent).count) / n
        accuracy = Double(records.filter(\.correct).count) / n
        let judged = records.filter { $0.exact != nil }
        if !judged.isEmpty {
            let m = Double(judged.count)
            exact = Double(judged.filter { $0.exact == true }.count) / m
            duplicate = Double(judged.filter { $0.duplicate == true }.count) / m
            unasked = Double(judged.filter { $0.unasked == true }.count) / m
        }
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

    /// Reads the complete records of a file being resumed: a final line cut short by an interrupted
    /// write (no newline, not JSON) is dropped and the file truncated to the last complete record.
    public static func readForResume(_ path: String) throws -> [EvalRecord] {
        guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else { return [] }
        if data.last != 0x0A, let cut = data.lastIndex(of: 0x0A).map({ $0 + 1 }) ?? Optional(0),
           (try? JSONDecoder().decode(EvalRecord.self, from: data[cut...])) == nil {
            guard truncate(path, off_t(cut)) == 0 else { throw EvalError.unreadable("cannot truncate \(path): \(String(cString: strerror(errno)))") }
        }
        return try read(path)
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

    /// Merges shard files, checking that they are one run's shards 0..<n, each present exactly once
    /// and complete (every case of its slice, in every mode). Files from older versions (records
    /// without `shard`) merge as before (`merge(_:)`).
    public static func mergeShards(_ files: [(path: String, records: [EvalRecord])]) throws -> [EvalRecord] {
        let all = files.flatMap(\.records)
        if all.allSatisfy({ $0.shard == nil }) { return try merge(files.map(\.records)) }
        var owner: [Int: String] = [:]
        var count: Int?, grid: Int?, run: String?
        let modes = Set(all.map(\.mode))
        for (path, records) in files {
            let shards = Set(records.map { $0.shard ?? "none" })
            guard shards.count == 1, let text = shards.first, let (i, n) = EvalGrid.parseShard(text),
                  let g = records.first?.grid, records.allSatisfy({ $0.grid == g && $0.run == records.first?.run }) else {
                throw EvalError.notOneShard(path)
            }
            if count == nil { count = n; grid = g; run = records.first?.run }
            guard n == count, g == grid, records.first?.run == run else { throw EvalError.differentRuns(path) }
            if let other = owner[i] { throw EvalError.duplicateShard("\(i)/\(n)", other, path) }
            owner[i] = path
            let expected = modes.count * (0..<g).filter { $0 % n == i }.count
            let keys = Set(records.map { "\($0.mode)#\($0.index)" })
            guard keys.count == records.count, keys.count == expected,
                  records.allSatisfy({ $0.index % n == i && $0.index < g }) else {
                throw EvalError.incompleteShard("\(i)/\(n)", path, have: keys.count, expected: expected)
            }
        }
        let missing = (0..<(count ?? 0)).filter { owner[$0] == nil }
        if !missing.isEmpty { throw EvalError.missingShards(missing.map { "\($0)/\(count!)" }) }
        return try merge(files.map(\.records))
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
    case notOneShard(String)
    case differentRuns(String)
    case duplicateShard(String, String, String)
    case incompleteShard(String, String, have: Int, expected: Int)
    case missingShards([String])
    public var description: String {
        switch self {
        case .unreadable(let why): return why
        case .malformed(let p, let l): return "\(p):\(l): not an evaluation record"
        case .conflict(let i): return "shards disagree on the prompt of case \(i) (were they made from different prompt lists?)"
        case .notOneShard(let p): return "\(p): not the records of one shard (mixed or missing shard/grid fields)"
        case .differentRuns(let p): return "\(p): from a different run than the other files (shard count, grid or settings differ)"
        case let .duplicateShard(s, a, b): return "shard \(s) appears twice: \(a) and \(b)"
        case let .incompleteShard(s, p, have, expected):
            return "shard \(s) in \(p) has \(have) of \(expected) records (interrupted? run it again to resume)"
        case .missingShards(let s): return "missing shard(s) \(s.joined(separator: ", ")): no file holds them"
        }
    }
}

/// A `--shard` value that cannot be used (one line saying why).
public struct ShardError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
}
