import Foundation
import RPC
import TestSupport
import XCTest

/// The engine's scheduler through the daemon, on the test model: solves that run together
/// in deterministic mode give what each gives alone, and solves that want more KV cells
/// than are free wait for them instead of failing.
final class SchedulerTests: XCTestCase {
    private let problems = [
        "Tom has 3 apples and buys 4 more. How many apples does Tom have now?",
        "A train travels 60 miles in 2 hours. How far does it travel in 5 hours?",
        "Sara has 12 pencils and gives 5 to her friend. How many pencils are left?",
        "A box holds 6 eggs. How many eggs are in 7 boxes?",
        "Lena reads 15 pages a day. How many pages does she read in a week?",
        "A shirt costs 20 dollars and is on sale for 25 percent off. What is the sale price?",
    ]

    /// Each request of `requests` sent at once, each on its own connection: the results in
    /// the same order.
    private func together(_ daemon: DaemonProcess, _ requests: [JSON]) -> [JSON] {
        let lock = NSLock()
        nonisolated(unsafe) var results = [JSON](repeating: .null, count: requests.count)
        let socketPath = daemon.socketPath
        DispatchQueue.concurrentPerform(iterations: requests.count) { index in
            let result = (try? RPCClient(path: socketPath).call("solve", requests[index]).get()) ?? .null
            lock.withLock { results[index] = result }
        }
        return results
    }

    func testDeterministicSolvesGiveTheSameTokensTogetherAsAlone() throws {
        let daemon = try DaemonProcess(extraArguments: ["--deterministic", "--max-concurrent-solves", "8"])
        defer { daemon.stop(); daemon.removeFolder() }
        XCTAssertEqual(try daemon.call("status")["deterministic"], true)
        let requests: [JSON] = problems.map { ["problem": .string($0), "strategy": "greedy", "params": ["max_tokens": 64]] }
            + problems.prefix(2).map {
                ["problem": .string($0), "strategy": "self-consistency", "params": ["n": 4, "max_tokens": 48],
                 "seed": 7]
            }
        let alone = try requests.map { try daemon.call("solve", $0) }
        let atOnce = together(daemon, requests)
        for (index, (one, many)) in zip(alone, atOnce).enumerated() {
            XCTAssertNotNil(one["text"]?.stringValue, "request \(index) alone")
            XCTAssertEqual(many["text"], one["text"], "request \(index): the same text alone and with \(requests.count - 1) others")
            XCTAssertEqual(many["candidates"], one["candidates"], "request \(index): the same samples")
            XCTAssertEqual(many["metrics"]?["flops"], one["metrics"]?["flops"], "request \(index): the same compute")
        }
    }

    func testSolvesWantingMoreCellsThanAreFreeWaitAndFinish() throws {
        // 1024 cells; each solve generates exactly 400 tokens, so four at once want more
        // cells than there are, and each alone fits.
        let daemon = try DaemonProcess(extraArguments: ["--context-size", "1024", "--max-concurrent-solves", "4"],
                                       prepare: { try FixturePlugins.build(into: $0) })
        defer { daemon.stop(); daemon.removeFolder() }
        let requests = [JSON](repeating: ["problem": "x", "strategy": "slow-echo", "params": ["tokens": 400]], count: 4)
        for (index, result) in together(daemon, requests).enumerated() {
            XCTAssertEqual(result["text"], "generated 400 tokens", "request \(index): \(result)")
            XCTAssertEqual(result["stopped_by"], .null, "request \(index) was not stopped for want of KV cells")
            XCTAssertEqual(result["metrics"]?["generated_tokens"], 400)
        }
        // One solve that alone wants more than the cache holds still ends with what it has.
        let tooLong = try daemon.call("solve", ["problem": "x", "strategy": "slow-echo", "params": ["tokens": 1100]])
        XCTAssertEqual(tooLong["stopped_by"], "kv_cache")
    }
}
