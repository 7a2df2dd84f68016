import Foundation
import RPC
import TestSupport
import XCTest

/// The prompt cache through the daemon: a solve repeating a recent one's prompt copies its
/// cells, and its metrics stay what they would be alone.
final class PromptCacheTests: XCTestCase {
    func testARepeatedPromptIsCachedAndChargedAsIfEvaluated() throws {
        let daemon = try DaemonProcess(extraArguments: ["--prompt-cache-tokens", "4096"])
        defer { daemon.stop(); daemon.removeFolder() }
        let solve: JSON = ["problem": "Tom has 3 apples and buys 4 more. How many apples does Tom have now?",
                           "strategy": "greedy", "params": ["max_tokens": 8]]
        let cold = try daemon.call("solve", solve)
        let warm = try daemon.call("solve", solve)
        let (coldMetrics, warmMetrics) = (try XCTUnwrap(cold["metrics"]), try XCTUnwrap(warm["metrics"]))
        XCTAssertEqual(coldMetrics["cached_tokens"], 0)
        let cached = try XCTUnwrap(warmMetrics["cached_tokens"]?.intValue)
        XCTAssertEqual(cached, try XCTUnwrap(warmMetrics["prompt_tokens"]?.intValue) - 1)
        XCTAssertEqual(warm["text"], cold["text"])
        XCTAssertEqual(warmMetrics["evaluated_tokens"], coldMetrics["evaluated_tokens"])
        XCTAssertEqual(try XCTUnwrap(warmMetrics["flops"]?.doubleValue), try XCTUnwrap(coldMetrics["flops"]?.doubleValue),
                       accuracy: 1)
        XCTAssertLessThan(try XCTUnwrap(warmMetrics["executed_flops"]?.doubleValue),
                          try XCTUnwrap(coldMetrics["executed_flops"]?.doubleValue) / 2)
        let status = try daemon.call("status")
        XCTAssertEqual(status["prompt_cache"]?["prompts"], 1)
        XCTAssertEqual(status["limits"]?["prompt_cache_tokens"], 4096)
        XCTAssertThrowsError(try DaemonProcess(extraArguments: ["--context-size", "512", "--prompt-cache-tokens", "1024"]),
                             "a cache larger than the context is refused at start")
    }

    func testByDefaultTheCacheIsOffAndNothingIsCached() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop(); daemon.removeFolder() }
        let solve: JSON = ["problem": "Tom has 3 apples and buys 4 more. How many apples does Tom have now?",
                           "strategy": "greedy", "params": ["max_tokens": 4]]
        _ = try daemon.call("solve", solve)
        XCTAssertEqual(try daemon.call("solve", solve)["metrics"]?["cached_tokens"], 0)
        XCTAssertEqual(try daemon.call("status")["prompt_cache"]?["prompts"], 0)
    }
}
