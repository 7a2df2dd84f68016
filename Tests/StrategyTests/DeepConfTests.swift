import RPC
import TestSupport
import XCTest

/// deepconf through the real daemon on the test model: the mechanics (no accuracy).
final class DeepConfTests: XCTestCase {
    static let shared = SharedDaemon { try DaemonProcess(plugins: DaemonProcess.builtPlugins + ["deepconf"]) }

    func daemon() throws -> DaemonProcess { try Self.shared.get() }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    func solve(_ params: [String: JSON], budget: [String: JSON] = [:]) throws -> JSON {
        try daemon().call("solve", ["problem": "What is 12 + 30?", "strategy": "deepconf", "params": .object(params),
                                    "budget": .object(budget)])
    }

    func testATraceBelowTheThresholdStopsAtOnceAndIsChargedButDoesNotVote() throws {
        // A threshold no group reaches: every trace after the warm-up stops at its first full window.
        let result = try solve(["n": 6, "warmup": 2, "round": 2, "window": 4, "threshold": 1000, "max_tokens": 48])
        let details = try XCTUnwrap(result["details"])
        XCTAssertEqual(details["drawn"], 6)
        XCTAssertEqual(details["stopped_low"], 4)
        let tokens = try XCTUnwrap(details["trace_tokens"]?.arrayValue?.compactMap(\.intValue))
        XCTAssertEqual(Array(tokens.suffix(4)), [4, 4, 4, 4])
        // Every trace's tokens are charged, the stopped ones' too.
        XCTAssertEqual(result["metrics"]?["generated_tokens"]?.intValue, tokens.reduce(0, +))
        let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
        XCTAssertEqual(candidates.count, 6)
        for candidate in candidates.suffix(4) { XCTAssertEqual(candidate["votes"], 0) }
        // Scores are trace confidences: positive.
        for candidate in candidates { XCTAssertGreaterThan(candidate["score"]?.doubleValue ?? 0, 0) }
    }

    func testAUnanimousWarmUpStopsSampling() throws {
        let result = try solve(["n": 12, "warmup": 3, "temperature": 0.01, "max_tokens": 24])
        let details = try XCTUnwrap(result["details"])
        XCTAssertNotNil(result["answer"]?.stringValue, "the test model must give some number here: \(result.serialized())")
        XCTAssertEqual(details["drawn"], 3)
        XCTAssertEqual(details["samples_saved"], 9)
        XCTAssertEqual(details["stopped_early"], true)
        XCTAssertEqual(details["consensus"]?.doubleValue ?? 0, 1, accuracy: 1e-9)
    }

    func testOfflineKeepsTheMostConfidentShare() throws {
        let result = try solve(["n": 4, "mode": "offline", "keep": 50, "max_tokens": 24])
        let details = try XCTUnwrap(result["details"])
        XCTAssertEqual(details["voting"], 2)
        XCTAssertEqual(details["stopped_low"], 0)
        let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
        let scores = candidates.compactMap { $0["score"]?.doubleValue }
        let voters = candidates.filter { ($0["votes"]?.intValue ?? 0) > 0 || $0["answer"] == .null }
        // Only the two most confident can have votes.
        let cut = scores.sorted(by: >)[1]
        for candidate in voters where (candidate["votes"]?.intValue ?? 0) > 0 {
            XCTAssertGreaterThanOrEqual(candidate["score"]?.doubleValue ?? 0, cut)
        }
    }

    func testTheBudgetIsRespected() throws {
        let result = try solve(["n": 16, "warmup": 4, "max_tokens": 64, "consensus": 1], budget: ["max_tokens": 150])
        XCTAssertEqual(result["budget_exhausted"], true)
        // Checked between rounds: one round of overrun at most (4 traces of 64 tokens, their prompt).
        XCTAssertLessThanOrEqual(result["metrics"]?["evaluated_tokens"]?.intValue ?? .max, 150 + 4 * 64 + 100)
    }
}
