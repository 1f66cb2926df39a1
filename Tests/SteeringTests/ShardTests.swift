import Foundation
import Relations
import Testing
@testable import Steering

/// `--shard auto` on Slurm job arrays and Kubernetes Indexed Jobs, and `eval merge`'s exactly-once check.
@Suite struct ShardTests {
    /// Regression: every prompt used seeds firstSeed…firstSeed+k−1, so all prompts started from the
    /// same noise and a 224-prompt evaluation sampled the noise only k times.
    @Test func everyCaseOfTheGridHasItsOwnSeed() {
        let cases = EvalGrid.cases(prompts: ["a", "b", "c"], seeds: 2, firstSeed: 10)
        #expect(cases.map(\.index) == [0, 1, 2, 3, 4, 5])
        #expect(cases.map(\.prompt) == ["a", "a", "b", "b", "c", "c"])
        #expect(cases.map(\.seed) == [10, 11, 12, 13, 14, 15])
        #expect(Set(EvalGrid.cases(prompts: Array(repeating: "p", count: 224), seeds: 1).map(\.seed)).count == 224)
    }

    @Test func autoReadsTheSchedulersVariables() throws {
        #expect(try EvalGrid.resolveShard("auto", environment: ["SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"]) == (3, 4))
        // --array=1-8: ids 1…8 are shards 0…7; --array=0-14:2: ids 0, 2, …, 14.
        #expect(try EvalGrid.resolveShard("auto", environment: ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "8",
                                                                 "SLURM_ARRAY_TASK_MIN": "1"]) == (0, 8))
        #expect(try EvalGrid.resolveShard("auto", environment: ["SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_COUNT": "8",
                                                                 "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "2"]) == (3, 8))
        #expect(try EvalGrid.resolveShard("auto", environment: ["JOB_COMPLETION_INDEX": "0", "L2S_SHARD_COUNT": "5"]) == (0, 5))
        #expect(try EvalGrid.resolveShard("2/7", environment: [:]) == (2, 7))
        let bad: [([String: String], String)] = [
            ([:], "none of SLURM_ARRAY_TASK_ID"),
            (["SLURM_ARRAY_TASK_ID": "2"], "SLURM_ARRAY_TASK_COUNT is not"),
            (["SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"], "not one of 4 array tasks"),
            (["SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "4"], "not a whole number"),
            (["JOB_COMPLETION_INDEX": "1"], "L2S_SHARD_COUNT"),
            (["JOB_COMPLETION_INDEX": "5", "L2S_SHARD_COUNT": "5"], "outside 0..<5"),
        ]
        for (env, fragment) in bad {
            #expect { _ = try EvalGrid.resolveShard("auto", environment: env) } throws: { "\($0)".contains(fragment) }
        }
        #expect(throws: ShardError.self) { _ = try EvalGrid.resolveShard("3/2", environment: [:]) }
    }

    func shardRecords(_ i: Int, of n: Int, grid: Int, modes: [String] = ["base"], run: String = "r1") -> [EvalRecord] {
        var out: [EvalRecord] = []
        for index in stride(from: i, to: grid, by: n) {
            for mode in modes {
                var r = EvalRecord(index: index, prompt: "p\(index)", seed: 0, mode: mode, objects: [], found: [], relations: [],
                                   satisfied: [], seconds: 0)
                r.shard = "\(i)/\(n)"; r.grid = grid; r.run = run
                out.append(r)
            }
        }
        return out
    }

    @Test func mergeChecksEveryShardExactlyOnce() throws {
        let a = shardRecords(0, of: 3, grid: 7, modes: ["base", "steered"]), b = shardRecords(1, of: 3, grid: 7, modes: ["base", "steered"])
        let c = shardRecords(2, of: 3, grid: 7, modes: ["base", "steered"])
        #expect(try EvalRecords.mergeShards([("a", a), ("b", b), ("c", c)]).count == 14)
        func fails(_ files: [(String, [EvalRecord])], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(sourceLocation: sourceLocation) { _ = try EvalRecords.mergeShards(files.map { (path: $0.0, records: $0.1) }) }
                throws: { "\($0)".contains(fragment) }
        }
        fails([("a", a), ("c", c)], "missing shard(s) 1/3")
        fails([("a", a), ("b", b), ("c", c), ("b2", b)], "shard 1/3 appears twice: b and b2")
        fails([("a", a), ("b", Array(b.dropLast())), ("c", c)], "shard 1/3 in b has 3 of 4 records")
        fails([("a", a), ("b", shardRecords(1, of: 3, grid: 7, modes: ["base", "steered"], run: "r2")), ("c", c)], "b: from a different run")
        fails([("a", a), ("b", shardRecords(1, of: 4, grid: 7, modes: ["base", "steered"])), ("c", c)], "b: from a different run")
        fails([("ab", a + b), ("c", c)], "ab: not the records of one shard")
        // Files from before shards were recorded merge as they did.
        var legacy = EvalRecord(index: 0, prompt: "p", seed: 0, mode: "base", objects: [], found: [], relations: [], satisfied: [], seconds: 0)
        #expect(try EvalRecords.mergeShards([("x", [legacy])]).count == 1)
        legacy.index = 1
        #expect(try EvalRecords.mergeShards([("x", [legacy]), ("y", [legacy])]).count == 1)
    }

    @Test func aCutFinalLineIsDroppedOnResume() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let records = shardRecords(0, of: 1, grid: 3)
        var data = Data()
        for r in records.prefix(2) { data.append(try enc.encode(r)); data.append(0x0A) }
        let complete = data.count
        data.append(try enc.encode(records[2]).prefix(20))
        try data.write(to: URL(fileURLWithPath: path))
        #expect(try EvalRecords.readForResume(path) == Array(records.prefix(2)))
        #expect(FileManager.default.contents(atPath: path)?.count == complete)
    }
}
