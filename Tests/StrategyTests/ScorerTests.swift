import Foundation
import RPC
import TestSupport
import XCTest

/// The scorer plugins through the real daemon, called by the score-probe fixture strategy
/// (Fixtures/score_probe.c). The test model cannot judge maths: the model-based scorers'
/// tests check mechanics (range, accounting, determinism); arith's check exact values.
final class ScorerTests: XCTestCase {
    static let scorers = ["arith", "self-eval", "logprob", "prm", "combine", "self-certainty"]
    static let problem = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        + "How many clips did Natalia sell altogether in April and May?"
    static let rightSolution = "In May she sold 48 / 2 = 24 clips.\n\nAltogether she sold 48 + 24 = 72 clips.\n\nThe answer is 72."
    static let wrongSolution = "In May she sold 48 * 2 = 96 clips.\n\nAltogether she sold 48 + 96 = 150 clips.\n\nThe answer is 150."

    /// One daemon for the class, the test model standing in as the reward model too.
    static let shared = SharedDaemon { try startDaemon(extraArguments: ["--plugin-config", "prm.model=\(try TestAssets.model())"]) }

    func daemon() throws -> DaemonProcess { try Self.shared.get() }

    static func startDaemon(extraArguments: [String] = []) throws -> DaemonProcess {
        try DaemonProcess(plugins: DaemonProcess.builtPlugins + scorers, extraArguments: extraArguments,
                          prepare: { try CPlugin.compile("Tests/StrategyTests/Fixtures/score_probe.c", into: $0, name: "score-probe",
                                                                 libraries: ["jansson"]) })
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    struct Scored {
        var score: Double
        var metrics: JSON
        func metric(_ name: String) -> Double { metrics[name]?.doubleValue ?? .nan }
    }

    func score(_ scorer: String, _ solution: String, params: JSON = [:], daemon: DaemonProcess? = nil) throws -> Scored {
        let result = try (daemon ?? self.daemon()).call("solve", [
            "problem": .string(ScorerTests.problem), "strategy": "score-probe",
            "params": ["scorer": .string(scorer), "solution": .string(solution), "scorer_params": .string(params.serialized())],
        ])
        return Scored(score: try XCTUnwrap(result["details"]?["score"]?.doubleValue, result.serialized()),
                      metrics: try XCTUnwrap(result["metrics"]))
    }

    /// The message of the error scoring fails with.
    func failure(_ scorer: String, _ solution: String, params: JSON = [:], daemon: DaemonProcess? = nil,
                 file: StaticString = #filePath, line: UInt = #line) throws -> String {
        do {
            let scored = try score(scorer, solution, params: params, daemon: daemon)
            XCTFail("expected a failure, got score \(scored.score)", file: file, line: line)
            return ""
        } catch let error as RPCError {
            XCTAssertEqual(error.code, RPCError.pluginFailedCode, "\(error)", file: file, line: line)
            return error.message
        }
    }

    // MARK: arith

    func testArithScoresTheShareOfEquationsThatHold() throws {
        let expected: [(String, Double)] = [
            ("3 + 4 = 7\n\n5 * 6 = 31", 0.5),
            ("<<48/2=24>>", 1),
            ("<<48/2=25>>", 0),
            ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.", 1),
            ("2 + 3 + 4 = 9 and (2 + 3) * 4 = 20", 1),
            ("$1,200 / 4 = $300, then 3 x 4 = 12 and 2 × 5 = 11.", 2.0 / 3),
            ("10 / 3 = 3.33 but 10 / 3 = 3", 0.5),
            ("50% * 20 = 10, 0.5 - 1.25 = -0.75", 1),
            ("3 + 4 = 7 + 2 = 9", 0.5),
            (ScorerTests.rightSolution, 1),
            (ScorerTests.wrongSolution, 0.5),
        ]
        for (solution, share) in expected {
            XCTAssertEqual(try score("arith", solution).score, share, accuracy: 1e-12, solution)
        }
    }

    func testArithNeutralScoreAndScope() throws {
        XCTAssertEqual(try score("arith", "x = 5, Total = 20: she sold 72 clips.").score, 0.5)
        XCTAssertEqual(try score("arith", "She sold 72 clips.", params: ["neutral": 0.2]).score, 0.2, accuracy: 1e-12)
        let lastStepRight = "3 + 4 = 8\n\n5 * 6 = 30\n\n"
        XCTAssertEqual(try score("arith", lastStepRight).score, 0.5)
        XCTAssertEqual(try score("arith", lastStepRight, params: ["scope": "last-step"]).score, 1)
    }

    func testArithEvaluatesNoTokens() throws {
        let metrics = try score("arith", ScorerTests.rightSolution).metrics
        XCTAssertEqual(metrics["scorer_tokens"]?.intValue, 0)
        XCTAssertEqual(metrics["scorer_flops"]?.doubleValue, 0)
        XCTAssertEqual(metrics["evaluated_tokens"]?.intValue, 0)
    }

    // MARK: self-eval

    func testSelfEvalIsAProbabilityOfYesThatDependsOnTheSolution() throws {
        let right = try score("self-eval", ScorerTests.rightSolution)
        let wrong = try score("self-eval", ScorerTests.wrongSolution)
        for scored in [right, wrong] {
            XCTAssert((0...1).contains(scored.score), "\(scored.score)")
            XCTAssertGreaterThan(scored.metric("scorer_tokens"), 0)
            XCTAssertGreaterThan(scored.metric("scorer_flops"), 0)
            // The probe evaluates nothing itself: every token is the scorer's.
            XCTAssertEqual(scored.metric("scorer_tokens"), scored.metric("evaluated_tokens"))
        }
        XCTAssertNotEqual(right.score, wrong.score)
        // P(Yes) alone can only be smaller than its share of P(Yes) + P(No).
        let raw = try score("self-eval", ScorerTests.rightSolution, params: ["normalize": false]).score
        XCTAssertLessThanOrEqual(raw, right.score)
        XCTAssertNotEqual(try score("self-eval", ScorerTests.rightSolution, params: ["question": "on-track"]).score, right.score)
    }

    // MARK: logprob

    func testLogprobScoresTheLastStepInOneBatch() throws {
        let right = try score("logprob", ScorerTests.rightSolution)
        let wrong = try score("logprob", ScorerTests.wrongSolution)
        for scored in [right, wrong] {
            XCTAssert(scored.score > 0 && scored.score <= 1, "\(scored.score)")
            XCTAssertGreaterThan(scored.metric("scorer_tokens"), 0)
            XCTAssertGreaterThan(scored.metric("scorer_flops"), 0)
        }
        XCTAssertNotEqual(right.score, wrong.score)
        // The prompt and earlier steps take one decode, the step one more: all its tokens
        // but the last (whose output would predict nothing scored) in one batch.
        let one = try score("logprob", ScorerTests.rightSolution, params: ["max_step_tokens": 1])
        let four = try score("logprob", ScorerTests.rightSolution, params: ["max_step_tokens": 4])
        XCTAssertEqual(one.metric("decode_calls"), 1)
        XCTAssertEqual(four.metric("decode_calls"), 2)
        XCTAssertEqual(four.metric("scorer_tokens") - one.metric("scorer_tokens"), 3)
        XCTAssertTrue(try failure("logprob", "\n\n").contains("logprob scorer: the solution has no step to score"))
    }

    // MARK: self-certainty

    func testSelfCertaintyTeacherForcesTheSolutionInOneBatch() throws {
        let right = try score("self-certainty", ScorerTests.rightSolution)
        let wrong = try score("self-certainty", ScorerTests.wrongSolution)
        for scored in [right, wrong] {
            XCTAssert(scored.score > 0 && scored.score < 1, "\(scored.score)")
            XCTAssertGreaterThan(scored.metric("scorer_flops"), 0)
        }
        XCTAssertNotEqual(right.score, wrong.score)
        XCTAssertEqual(try score("self-certainty", ScorerTests.rightSolution).score, right.score, "deterministic")
        // The prompt, then the solution's tokens in one batch: one more token, one more scorer token.
        let four = try score("self-certainty", ScorerTests.rightSolution, params: ["max_tokens": 4])
        let five = try score("self-certainty", ScorerTests.rightSolution, params: ["max_tokens": 5])
        XCTAssertEqual(five.metric("scorer_tokens") - four.metric("scorer_tokens"), 1)
        XCTAssertEqual(four.metric("decode_calls"), 2)
        // scale is where the score is one half: a larger scale gives a lower score.
        XCTAssertLessThan(try score("self-certainty", ScorerTests.rightSolution, params: ["scale": 100]).score, right.score)
    }

    // MARK: prm

    func testPrmScoresWithTheRewardModel() throws {
        let scored = try score("prm", ScorerTests.rightSolution)
        XCTAssert((0...1).contains(scored.score), "\(scored.score)")
        XCTAssertGreaterThan(scored.metric("scorer_tokens"), 0)
        XCTAssertGreaterThan(scored.metric("scorer_flops"), 0)
        XCTAssertNotEqual(try score("prm", ScorerTests.rightSolution, params: ["good_token": "-", "bad_token": "+"]).score,
                          scored.score, "swapping the tokens changes the score")
    }

    func testPrmWithoutARewardModelFailsClearly() throws {
        let daemon = try ScorerTests.startDaemon()
        defer { daemon.stop(); daemon.removeFolder() }
        let message = try failure("prm", ScorerTests.rightSolution, daemon: daemon)
        XCTAssertTrue(message.contains("prm scorer: no reward model is resident"), message)
    }

    // MARK: combine

    func testCombineIsTheWeightedMeanOfItsParts() throws {
        let arith = try score("arith", ScorerTests.wrongSolution)
        let selfEval = try score("self-eval", ScorerTests.wrongSolution)
        let combined = try score("combine", ScorerTests.wrongSolution, params: ["scorers": "arith:0.25, self-eval:0.75"])
        XCTAssertEqual(combined.score, 0.25 * arith.score + 0.75 * selfEval.score, accuracy: 1e-9)
        XCTAssertEqual(combined.metric("scorer_tokens"), selfEval.metric("scorer_tokens"), "arith adds no tokens")
        let defaults = try score("combine", ScorerTests.wrongSolution)
        XCTAssertEqual(defaults.score, 0.5 * arith.score + 0.5 * selfEval.score, accuracy: 1e-9)
    }

    func testUnknownScorersAndBadListsFailClearly() throws {
        var message = try failure("no-such-scorer", ScorerTests.rightSolution)
        XCTAssertTrue(message.contains("unknown scorer 'no-such-scorer'"), message)
        message = try failure("combine", ScorerTests.rightSolution, params: ["scorers": "arith:1,no-such-scorer:1"])
        XCTAssertTrue(message.contains("combine scorer: unknown scorer 'no-such-scorer'"), message)
        message = try failure("combine", ScorerTests.rightSolution, params: ["scorers": "arith:0"])
        XCTAssertTrue(message.contains("the weight of 'arith' must be a number > 0"), message)
        message = try failure("combine", ScorerTests.rightSolution, params: ["scorers": "Arith:1"])
        XCTAssertTrue(message.contains("[a-z0-9-]+"), message)
        message = try failure("combine", ScorerTests.rightSolution, params: ["scorers": "combine:1"])
        XCTAssertTrue(message.contains("combine cannot include itself"), message)
    }
}
