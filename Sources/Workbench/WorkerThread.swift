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
