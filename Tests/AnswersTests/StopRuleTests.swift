import Answers
import XCTest

/// The stop rules of adaptive sampling stop exactly when their rule says, on fixed vote
/// sequences.
final class StopRuleTests: XCTestCase {
    func testBetaProbabilityIsTheBinomialTail() {
        // P(X > 1/2), X ~ Beta(a + 1, b + 1) = P(Binomial(a + b + 1, 1/2) <= a).
        XCTAssertEqual(StopRule.leaderIsLikelier(0, 0), 0.5, accuracy: 1e-12)
        XCTAssertEqual(StopRule.leaderIsLikelier(3, 0), 15.0 / 16, accuracy: 1e-12)
        XCTAssertEqual(StopRule.leaderIsLikelier(4, 0), 31.0 / 32, accuracy: 1e-12)
        XCTAssertEqual(StopRule.leaderIsLikelier(3, 1), 26.0 / 32, accuracy: 1e-12)
        XCTAssertEqual(StopRule.leaderIsLikelier(2, 2), 0.5, accuracy: 1e-12)
        XCTAssertEqual(StopRule.leaderIsLikelier(60, 0), 1, accuracy: 1e-12)
    }

    func testBetaStopsAtTheFirstDrawThatReachesTheThreshold() {
        let draws: [String?] = ["7", "7", "7", "7", "7"]
        let stops = (1...draws.count).map { StopRule.beta.decide(Array(draws.prefix($0)), parameter: 0.95).stop }
        // 3/4, 7/8, 15/16 are below 0.95; 31/32 is not.
        XCTAssertEqual(stops, [false, false, false, true, true])
        // A runner-up holds it back; answers without a number do not vote.
        let contested: [String?] = ["7", "7", "7", "7", "8", nil, ""]
        let decision = StopRule.beta.decide(contested, parameter: 0.95)
        XCTAssertFalse(decision.stop)
        XCTAssertEqual(decision.measure, StopRule.leaderIsLikelier(4, 1), accuracy: 1e-12)
        XCTAssertFalse(StopRule.beta.decide([nil, nil], parameter: 0.6).stop)
    }

    func testESCStopsOnAUnanimousWindowOnly() {
        XCTAssertFalse(StopRule.esc.decide(["7", "7"], parameter: 3).stop)        // fewer than the window
        XCTAssertTrue(StopRule.esc.decide(["8", "7", "7", "7"], parameter: 3).stop)
        XCTAssertFalse(StopRule.esc.decide(["7", "7", "8"], parameter: 3).stop)
        XCTAssertFalse(StopRule.esc.decide(["7", nil, "7"], parameter: 3).stop)    // no answer breaks it
        XCTAssertEqual(StopRule.esc.decide(["7", "8", "7"], parameter: 3).measure, 2.0 / 3, accuracy: 1e-12)
        XCTAssertTrue(StopRule.esc.decide(["5"], parameter: 1).stop)
    }
}
