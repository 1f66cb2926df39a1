import Testing
@testable import l2s

/// The progress bar's ETA is this run's rate times what is left.
@Suite struct ProgressTests {
    /// A first update after a batch of 16 (build-dataset) is 16 units of this run's work, not one:
    /// 16 scenes in 40 s with 254 left is 635 s (it read 2:47:46).
    @Test func etaCountsEveryUnitOfTheFirstBatch() {
        #expect(ProgressBar.eta(elapsed: 40, done: 16, total: 270, notDoneHere: 0) == 635)
        // Resumed at 100 of 270 (shards found done): 16 more in 40 s, 154 left.
        #expect(ProgressBar.eta(elapsed: 40, done: 116, total: 270, notDoneHere: 100) == 385)
        #expect(ProgressBar.eta(elapsed: 40, done: 100, total: 270, notDoneHere: 100) == 0)
        #expect(formatDuration(635) == "10:35")
    }
}
