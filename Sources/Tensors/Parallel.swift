import Foundation
import CBLAS

/// The engine's thread count: OpenBLAS's workers and the parallel element-wise loops both use it.
/// Read once from `L2S_THREADS` (default: the active processor count); `Threads.set(_:)` changes it.
public enum Threads {
    nonisolated(unsafe) private static var current: Int = {
        let env = ProcessInfo.processInfo.environment["L2S_THREADS"].flatMap { Int($0) }
        let n = max(1, env ?? ProcessInfo.processInfo.activeProcessorCount)
        openblas_set_num_threads(Int32(n))
        return n
    }()

    /// Threads in use.
    public static var count: Int { current }

    /// Sets the thread count for OpenBLAS and for the element-wise loops.
    public static func set(_ n: Int) {
        current = max(1, n)
        openblas_set_num_threads(Int32(current))
    }
}

/// Splits `0..<count` into contiguous chunks and runs them on up to `Threads.count` threads.
/// Runs inline when the work is small (`count * costPerItem < grain`) or one thread is configured.
@inline(__always)
public func parallelFor(_ count: Int, costPerItem: Int = 1, grain: Int = 1 << 15,
                        _ body: (Range<Int>) -> Void) {
    let threads = Threads.count
    if threads <= 1 || count < 2 || count * costPerItem < grain {
        body(0..<count)
        return
    }
    let chunks = min(threads, count)
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }
}
