import RPC
import TestSupport
import XCTest

/// self-consistency (the C plugin) through the real daemon on the test model.
final class SelfConsistencyTests: XCTestCase {
    static let shared = SharedDaemon { try DaemonProcess() }

    func daemon() throws -> DaemonProcess { try Self.shared.get() }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    func testVotesOverKSamplesInBatches() throws {
        let result = try daemon().call("solve", ["problem": "What is 2 + 3?", "strategy": "self-consistency",
                                                 "params": ["k": 4, "max_tokens": 16]])
        let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
        XCTAssertEqual(candidates.count, 4)
        // Each candidate carries its answer's tally from the host's vote: a plain vote, so
        // the weight is the count, and candidates sharing an answer share a tally.
        let votes = candidates.compactMap { $0["votes"]?.intValue }
        XCTAssertEqual(votes.count, 4)
        for candidate in candidates {
            XCTAssertEqual(candidate["vote_weight"]?.doubleValue, candidate["votes"]?.doubleValue)
            let same = candidates.filter { $0["answer"] != .null && $0["answer"] == candidate["answer"] }.count
            XCTAssertEqual(candidate["votes"]?.intValue, Int64(same))
        }
        // The chosen answer has the most votes.
        if let answer = result["answer"]?.stringValue {
            let chosen = candidates.first { $0["answer"]?.stringValue == answer }
            XCTAssertEqual(chosen?["votes"]?.intValue, votes.max())
        }
        let metrics = try XCTUnwrap(result["metrics"])
        // One decode per step for the 4 samples, plus the prompt: far fewer than 4 * 16.
        XCTAssertLessThanOrEqual(metrics["decode_calls"]?.intValue ?? .max, 17)
    }

    func testAdaptiveModeStopsEarlyOnAUnanimousVote() throws {
        // Near-greedy sampling makes every sample the same, so the vote is unanimous.
        let result = try daemon().call("solve", ["problem": "What is 2 + 3? Answer with the number.", "strategy": "self-consistency",
                                                 "params": ["k": 8, "round": 2, "adaptive": true, "confidence": 0.9,
                                                            "temperature": 0.01, "max_tokens": 24]])
        let details = try XCTUnwrap(result["details"])
        XCTAssertNotNil(result["answer"]?.stringValue, "the test model must give some number here: \(result.serialized())")
        XCTAssertEqual(details["stopped_early"], true)
        XCTAssertEqual(details["samples"], 2)
        XCTAssertEqual(details["samples_saved"], 6)
    }

    func testBetaRuleStopsWhenItsProbabilityReachesTheThreshold() throws {
        // Unanimous near-greedy samples in rounds of 2: P = 7/8 after two, 31/32 after four.
        let result = try daemon().call("solve", ["problem": "What is 2 + 3? Answer with the number.", "strategy": "self-consistency",
                                                 "params": ["k": 8, "round": 2, "adaptive": true, "stop_rule": "beta",
                                                            "stop_threshold": 0.95, "temperature": 0.01, "max_tokens": 24]])
        let details = try XCTUnwrap(result["details"])
        XCTAssertNotNil(result["answer"]?.stringValue, "the test model must give some number here: \(result.serialized())")
        XCTAssertEqual(details["stop_rule"], "beta")
        XCTAssertEqual(details["samples"], 4)
        XCTAssertEqual(details["samples_saved"], 4)
    }

    func testESCStopsAfterTheFirstUnanimousRound() throws {
        let result = try daemon().call("solve", ["problem": "What is 2 + 3? Answer with the number.", "strategy": "self-consistency",
                                                 "params": ["k": 8, "round": 2, "adaptive": true, "stop_rule": "esc",
                                                            "temperature": 0.01, "max_tokens": 24]])
        let details = try XCTUnwrap(result["details"])
        XCTAssertEqual(details["stop_rule"], "esc")
        XCTAssertEqual(details["samples"], 2)
        XCTAssertEqual(details["stopped_early"], true)
    }

    func testAdaptiveDefaultsStopAfterOneUnanimousRound() throws {
        // k = 8 in rounds of 4 (the defaults): the leader of a first round can never be out of
        // reach of the 4 samples left, so only the unanimity rule (confidence 1) stops here.
        let result = try daemon().call("solve", ["problem": "What is 2 + 3? Answer with the number.", "strategy": "self-consistency",
                                                 "params": ["k": 8, "adaptive": true, "temperature": 0.01, "max_tokens": 24]])
        let details = try XCTUnwrap(result["details"])
        XCTAssertNotNil(result["answer"]?.stringValue, "the test model must give some number here: \(result.serialized())")
        XCTAssertEqual(details["stopped_early"], true)
        XCTAssertEqual(details["samples"], 4)
        XCTAssertEqual(result["candidates"]?.arrayValue?.count, 4)
        XCTAssertEqual(result["metrics"]?["forks"], 4, "the second round was never forked")
    }

    func testWithoutAdaptiveEverySampleIsDrawn() throws {
        let result = try daemon().call("solve", ["problem": "What is 2 + 3? Answer with the number.", "strategy": "self-consistency",
                                                 "params": ["k": 4, "temperature": 0.01, "max_tokens": 24]])
        XCTAssertEqual(result["details"]?["samples"], 4)
        XCTAssertEqual(result["details"]?["stopped_early"], false)
    }
}
