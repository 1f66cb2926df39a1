import Foundation

/// The engine's thread count, used by every parallel loop and by the GEMM splitter.
/// Read once from `L2S_THREADS` (default: the active processor count); `Threads.set(_:)` changes it.
///
/// OpenBLAS itself always runs single-threaded: large GEMMs are split into row or column blocks on
/// our own threads instead (`sgemm`). With both thread pools live, OpenBLAS's idle workers spin in
/// sched_yield against ours (measured: ~15 % of a training step in the scheduler).
public enum Threads {
    nonisolated(unsafe) private static var current: Int = {
        let all = ProcessInfo.processInfo.activeProcessorCount
        var count = all
        if let text = ProcessInfo.processInfo.environment["L2S_THREADS"] {
            if let n = Int(text.trimmingCharacters(in: .whitespaces)), n >= 1 { count = n } else {
                FileHandle.standardError.write(Data("l2s: warning: L2S_THREADS=\(text) is not a whole number ≥ 1; using \(all) thread(s)\n".utf8))
            }
        }
        BLAS.setThreads(1)
        return count
    }()

    /// Threads in use.
    public static var count: Int { current }

    /// Sets the thread count for all parallel work.
    public static func set(_ n: Int) {
        current = max(1, n)
        BLAS.setThreads(1)
    }
}

/// Marks threads that are already running a chunk of a parallel loop, so nested loops run inline
/// instead of oversubscribing the cores.
enum ParallelRegion {
    static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()
    static var isInside: Bool { pthread_getspecific(key) != nil }

    /// Runs `body` marked as inside a parallel region (nested parallel loops and GEMM splits run inline).
    @inline(__always)
    static func run<T>(_ body: () -> T) -> T {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(key, previous) }
        return body()
    }
}

/// Splits `0..<count` into contiguous chunks and runs them on up to `Threads.count` threads.
/// Runs inline when the work is small (`count * costPerItem < grain`) or one thread is configured.
@inline(__always)
public func parallelFor(_ count: Int, costPerItem: Int = 1, grain: Int = 1 << 15,
                        _ body: (Range<Int>) -> Void) {
    let threads = Threads.count
    if threads <= 1 || count < 2 || count * costPerItem < grain || ParallelRegion.isInside {
        body(0..<count)
        return
    }
    let chunks = min(threads, count)
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { ParallelRegion.run { body(lo..<hi) } }
        }
    }
}
