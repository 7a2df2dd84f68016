import Foundation

/// A first-come, first-served lock. NSLock lets the thread that just released it take it
/// again at once, so a generation loop could starve every other request for as long as
/// it runs; tickets hand the context to waiters in arrival order.
final class FairLock: @unchecked Sendable {
    private let condition = NSCondition()
    private var nextTicket: UInt64 = 0
    private var serving: UInt64 = 0

    /// `onTicket` runs once the caller's place in the queue is fixed, before it waits. It
    /// runs under this lock's own mutex, so it must not touch this lock.
    func lock(onTicket: () -> Void = {}) {
        condition.lock()
        let ticket = nextTicket
        nextTicket += 1
        onTicket()
        while serving != ticket { condition.wait() }
        condition.unlock()
    }

    func unlock() {
        condition.lock()
        serving += 1
        condition.broadcast()
        condition.unlock()
    }
}
