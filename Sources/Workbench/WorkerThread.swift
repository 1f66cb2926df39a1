// The engines' thread: runs a setup closure (model loading), then one job at a time; a newer job
// replaces one that has not started. Shutdown is bounded: the UI never waits forever.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class WorkerThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: (() -> Void)?
    private var stopping = false
    private var finished = false
    private var thread: Thread?

    /// `niceness`: how much lower than the UI this thread (and the pool threads it starts) runs, so
    /// keys stay responsive while the sampler saturates the cores. On Linux nice values are per
    /// thread and new threads inherit them.
    init(name: String, niceness: Int32 = 5, setup: @escaping () -> Void) {
        let t = Thread { [unowned self] in
            if niceness > 0 {
                errno = 0
                let current = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
                if errno == 0 { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, min(current + niceness, 19)) }
            }
            setup()
            self.loop()
        }
        t.name = name
        t.stackSize = 64 << 20
        thread = t
    }

    func start() { thread?.start() }

    /// Lowers every thread of the process except the main (UI) thread to `niceness` below the UI:
    /// the tensor library's pool threads (libdispatch workers, created lazily by whoever first needs
    /// them) would otherwise compete with the UI at equal priority. Linux only: nice is per thread
    /// there, and raising one's own threads' nice needs no privilege. Cheap (one directory listing).
    static func lowerPoolPriority(niceness: Int32 = 5) {
        #if os(Linux)
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        let main = id_t(getpid())
        errno = 0
        let base = getpriority(which, main)
        guard errno == 0, let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return }
        let target = min(base + niceness, 19)
        for t in tasks {
            guard let tid = id_t(t), tid != main else { continue }
            errno = 0
            let current = getpriority(which, tid)
            if errno == 0 && current < target { _ = setpriority(which, tid, target) }
        }
        #endif
    }

    private func loop() {
        while true {
            condition.lock()
            while pending == nil && !stopping { condition.wait() }
            if stopping {
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let job = pending!
            pending = nil
            condition.unlock()
            job()
        }
    }

    /// Queues a job (replacing a queued one that has not started).
    func submit(_ job: @escaping () -> Void) {
        condition.lock()
        pending = job
        condition.broadcast()
        condition.unlock()
    }

    /// Asks the thread to stop after its current job; waits up to `timeout` seconds.
    func shutdown(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        stopping = true
        pending = nil
        condition.broadcast()
        while !finished {
            if !condition.wait(until: deadline) { break }
        }
        let done = finished
        condition.unlock()
        return done
    }
}
