import Foundation
import RPC
import StrategyKit
import TestSupport
import XCTest

/// escalate and auto through the real daemon on the test model: the mechanics (no accuracy).
final class EscalateTests: XCTestCase {
    static let shared = SharedDaemon { try DaemonProcess(plugins: DaemonProcess.builtPlugins + ["escalate"]) }

    func daemon() throws -> DaemonProcess { try Self.shared.get() }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    func solve(_ params: [String: JSON], budget: [String: JSON] = [:]) throws -> JSON {
        try daemon().call("solve", ["problem": "What is 2 + 3? Answer with the number.", "strategy": "escalate",
                                    "params": .object(params), "budget": .object(budget)])
    }

    func testAConfidentGreedyAnswerIsNotEscalated() throws {
        let result = try solve(["threshold": 0, "max_tokens": 24])
        let details = try XCTUnwrap(result["details"])
        XCTAssertEqual(details["escalated"], false)
        XCTAssertEqual(result["candidates"]?.arrayValue?.count, 1)
        XCTAssertEqual(details["greedy_tokens"]?.intValue, result["metrics"]?["generated_tokens"]?.intValue)
    }

    func testAnUnsureOneSamplesUntilTheStopRuleSettles() throws {
        // A threshold nothing reaches forces the escalation; near-greedy samples agree with
        // greedy, so the Beta rule (0.95) stops at 5 votes (greedy and 4 samples): 63/64.
        let result = try solve(["threshold": 1000, "n": 8, "round": 2, "temperature": 0.01, "max_tokens": 24,
                                "stop_threshold": 0.95])
        let details = try XCTUnwrap(result["details"])
        XCTAssertNotNil(result["answer"]?.stringValue, "the test model must give some number here: \(result.serialized())")
        XCTAssertEqual(details["escalated"], true)
        XCTAssertEqual(details["samples"], 4)
        XCTAssertEqual(details["settled"], true)
        XCTAssertEqual(result["candidates"]?.arrayValue?.count, 5)
        XCTAssertGreaterThan(details["escalation_flops"]?.doubleValue ?? 0, 0)
    }

    func testEverySignalGivesAConfidence() throws {
        let result = try solve(["signal": "tail", "threshold": 0, "max_tokens": 24, "window": 8])
        let signals = try XCTUnwrap(result["details"]?["signals"]?.objectValue)
        XCTAssertEqual(Set(signals.keys), ["lowest_group", "tail", "answer_margin", "certainty"])
        for (signal, value) in signals {
            let confidence = try XCTUnwrap(value.doubleValue, signal)
            XCTAssertTrue(confidence.isFinite && confidence >= 0, "\(signal): \(confidence)")
        }
        XCTAssertEqual(result["details"]?["confidence"], signals["tail"])
    }

    func testTheBudgetIsRespected() throws {
        // Nine agreeing samples before the Beta rule at 0.999 could stop: the budget ends first.
        let result = try solve(["threshold": 1000, "n": 16, "round": 2, "max_tokens": 64, "stop_threshold": 0.999],
                               budget: ["max_tokens": 200])
        XCTAssertEqual(result["budget_exhausted"], true)
        // Checked between rounds: one round of overrun at most.
        XCTAssertLessThanOrEqual(result["metrics"]?["evaluated_tokens"]?.intValue ?? .max, 200 + 2 * 64 + 100)
    }

    func testTheAnswerSpanIsTheTokensSpellingTheLastAnswer() {
        let pieces = ["So", " 1", "2", " is", " 1", "2", "."].map { Array($0.utf8) }
        XCTAssertEqual(AnswerSpan.tokens(spelling: "12", in: pieces), [4, 5])
        XCTAssertEqual(AnswerSpan.tokens(spelling: "2 is", in: pieces), [2, 3])
        XCTAssertNil(AnswerSpan.tokens(spelling: "13", in: pieces))
        // The daemon's canonical spellings, against the layout a solution writes.
        let grouped = ["It is", " 1", ",", "080", " dollars", "."].map { Array($0.utf8) }
        XCTAssertEqual(AnswerSpan.tokens(spelling: "1080", in: grouped), [1, 2, 3])
        let spaced = ["is $", "x", "^", "2", " +", " 1", "$."].map { Array($0.utf8) }
        XCTAssertEqual(AnswerSpan.tokens(spelling: "x^2+1", in: spaced), [1, 2, 3, 4, 5])
        let tuple = ["(", "3", ",", " 4", ")"].map { Array($0.utf8) }
        XCTAssertEqual(AnswerSpan.tokens(spelling: "(3,4)", in: tuple), [0, 1, 2, 3, 4])
        let list = ["We need", " 1", ",", " 2", " or", " 3", "."].map { Array($0.utf8) }
        XCTAssertNil(AnswerSpan.tokens(spelling: "12", in: list), "a comma in a list groups no thousands")
    }
}

final class AutoTests: XCTestCase {
    static let folder = FileManager.default.temporaryDirectory.appendingPathComponent("auto-\(getpid())")
    static let calibration = folder.appendingPathComponent("calibration.json")
    static let shared = SharedDaemon {
        try DaemonProcess(plugins: DaemonProcess.builtPlugins + ["auto", "escalate"],
                          extraArguments: ["--plugin-config", "auto.calibration=\(calibration.path)"])
    }

    func daemon() throws -> DaemonProcess { try Self.shared.get() }

    override class func tearDown() {
        shared.stop()
        try? FileManager.default.removeItem(at: folder)
        super.tearDown()
    }

    /// A calibration with three frontier specs (and one off it) for `sha256`.
    func writeCalibration(sha256: String, name: String = "the test model") throws {
        try FileManager.default.createDirectory(at: Self.folder, withIntermediateDirectories: true)
        let spec = { (spec: String, strategy: String, params: JSON, accuracy: Double, flops: Double, frontier: Bool) -> JSON in
            ["spec": .string(spec), "strategy": .string(strategy), "params": params, "problems": 32, "solved": 0,
             "accuracy": JSON(accuracy), "mean_flops": JSON(flops), "frontier": .bool(frontier)]
        }
        let file: JSON = ["format": "strategyd-calibration/1", "models": [[
            "name": .string(name), "sha256": .string(sha256), "dataset": "gsm8k-train",
            "specs": [
                spec("greedy:max_tokens=16", "greedy", ["max_tokens": 16], 0.3, 1e9, true),
                spec("escalate:threshold=1000", "escalate", ["threshold": 1000, "max_tokens": 16, "n": 2], 0.4, 5e9, true),
                spec("best-of-n", "best-of-n", [:], 0.35, 6e9, false),
                spec("self-consistency:k=3", "self-consistency", ["n": 3, "max_tokens": 16], 0.5, 2e10, true),
            ],
        ]]]
        try file.serialized().write(to: Self.calibration, atomically: true, encoding: .utf8)
    }

    func solve(_ params: [String: JSON] = [:], budget: [String: JSON] = [:]) throws -> JSON {
        try daemon().call("solve", ["problem": "What is 2 + 3?", "strategy": "auto", "params": .object(params),
                                    "budget": .object(budget)])
    }

    /// The loaded model's sha256, which the daemon computes in the background after it starts.
    func modelSHA256() throws -> String {
        var sha256: String?
        let deadline = Date().addingTimeInterval(60)
        while sha256 == nil && Date() < deadline {
            sha256 = try daemon().call("models.info")["sha256"]?.stringValue
            if sha256 == nil { Thread.sleep(forTimeInterval: 0.1) }
        }
        return try XCTUnwrap(sha256, "models.info has no sha256 after a minute")
    }

    func testChoosesWhatTheCalibrationSaysAtEachBudget() throws {
        try writeCalibration(sha256: try modelSHA256())
        let cases: [(budget: [String: JSON], params: [String: JSON], spec: String)] = [
            (["max_flops": 5e8], [:], "greedy:max_tokens=16"),          // none fits: the cheapest
            (["max_flops": 2e9], [:], "greedy:max_tokens=16"),
            (["max_flops": 1e10], [:], "escalate:threshold=1000"),     // best-of-n is off the frontier
            (["max_flops": 1e12], [:], "self-consistency:k=3"),
            ([:], ["target_accuracy": 0.35], "escalate:threshold=1000"),
            ([:], ["target_accuracy": 0.9], "self-consistency:k=3"),  // none reaches it: the most accurate
        ]
        for (budget, params, spec) in cases {
            let result = try solve(params, budget: budget)
            let chosen = try XCTUnwrap(result["details"]?["chosen"])
            XCTAssertEqual(chosen["spec"]?.stringValue, spec, "\(budget) \(params)")
            XCTAssertEqual(chosen["calibrated"], true)
            XCTAssertEqual(result["strategy"]?["name"], "auto")
            // It ran what it chose: that strategy's details come along.
            XCTAssertNotNil(result["details"]?["strategy_details"]?.objectValue)
        }
    }

    func testUnderACapChoosesByWhatEachSpecSolvedWithinIt() throws {
        let hash = try modelSHA256()
        try FileManager.default.createDirectory(at: Self.folder, withIntermediateDirectories: true)
        // escalate's mean (3e9) fits a 4e9 cap, but its two dearest solves do not; greedy's all do.
        let spec = { (spec: String, strategy: String, params: JSON, flops: Double, solves: [(Double, Bool)]) -> JSON in
            let solved = solves.filter(\.1).count
            return ["spec": .string(spec), "strategy": .string(strategy), "params": params, "problems": 4,
                    "solved": JSON(solved), "accuracy": JSON(Double(solved) / 4), "mean_flops": JSON(flops), "frontier": true,
                    "solves": .array(solves.map { ["flops": JSON($0.0), "correct": .bool($0.1)] })]
        }
        let file: JSON = ["format": "strategyd-calibration/1", "models": [[
            "name": "the test model", "sha256": .string(hash), "dataset": "gsm8k-train",
            "specs": [
                spec("greedy:max_tokens=16", "greedy", ["max_tokens": 16], 1e9,
                     [(1e9, true), (1e9, true), (1e9, false), (1e9, false)]),
                spec("escalate:threshold=1000", "escalate", ["threshold": 1000, "max_tokens": 16, "n": 2], 3e9,
                     [(1e9, true), (1e9, false), (5e9, true), (5e9, true)]),
                spec("self-consistency:k=3", "self-consistency", ["n": 3, "max_tokens": 16], 8e9,
                     [(8e9, true), (8e9, true), (8e9, true), (8e9, true)]),
            ],
        ]]]
        try file.serialized().write(to: Self.calibration, atomically: true, encoding: .utf8)
        let cases: [(maxFlops: Double, spec: String, within: Double)] = [
            (4e9, "greedy:max_tokens=16", 0.5),         // escalate solves 1 of 4 under it; by the mean it would run
            (6e9, "escalate:threshold=1000", 0.75),
            (1e10, "self-consistency:k=3", 1),
        ]
        for (maxFlops, expected, within) in cases {
            let chosen = try XCTUnwrap(solve(budget: ["max_flops": JSON(maxFlops)])["details"]?["chosen"])
            XCTAssertEqual(chosen["spec"]?.stringValue, expected, "max_flops \(maxFlops)")
            XCTAssertEqual(chosen["accuracy_within_budget"]?.doubleValue, within, "max_flops \(maxFlops)")
        }
        let none = try XCTUnwrap(solve(budget: ["max_flops": 5e8])["details"]?["chosen"])
        XCTAssertEqual(none["spec"]?.stringValue, "greedy:max_tokens=16")  // nothing solved under it: the cheapest
        XCTAssertNil(none["accuracy_within_budget"]?.doubleValue)
    }

    func testRefusesACalibrationForAnotherModelByName() throws {
        try writeCalibration(sha256: String(repeating: "ab", count: 32), name: "some-other-model")
        let result = try solve([:], budget: ["max_flops": 1e15])
        let chosen = try XCTUnwrap(result["details"]?["chosen"])
        XCTAssertEqual(chosen["calibrated"], false)
        let why = try XCTUnwrap(chosen["why"]?.stringValue)
        XCTAssertTrue(why.contains("some-other-model") && why.contains("default ladder"), why)
        XCTAssertEqual(chosen["strategy"], "self-consistency")  // the ladder's top rung at a large budget
    }

    func testTheChosenStrategyRunsOnTheRequestsBudget() throws {
        try writeCalibration(sha256: String(repeating: "ab", count: 32), name: "some-other-model")
        let result = try solve(["target_accuracy": 0.9], budget: ["max_tokens": 120])  // the ladder's top rung
        XCTAssertEqual(result["budget_exhausted"], true)
        XCTAssertEqual(result["stopped_by"], "max_tokens")
        XCTAssertLessThanOrEqual(result["metrics"]?["evaluated_tokens"]?.intValue ?? .max, 120 + 16)
    }
}

final class CoTDecodingTests: XCTestCase {
    static let shared = SharedDaemon { try DaemonProcess(plugins: DaemonProcess.builtPlugins + ["cot-decoding"]) }

    func daemon() throws -> DaemonProcess { try Self.shared.get() }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    func testBranchesOnTheTopFirstTokensAndKeepsTheLargestMargin() throws {
        let result = try daemon().call("solve", ["problem": "What is 12 + 30?", "strategy": "cot-decoding",
                                                 "params": ["k": 4, "max_tokens": 32, "select": "max"]])
        let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
        XCTAssertEqual(candidates.count, 4)
        // Each branch starts with its own first token: greedy continuations of one prefix would agree.
        let texts = candidates.compactMap { $0["text"]?.stringValue }
        XCTAssertEqual(Set(texts).count, 4)
        let margins = candidates.compactMap { $0["score"]?.doubleValue }
        let best = try XCTUnwrap(margins.indices.max { margins[$0] < margins[$1] })
        XCTAssertEqual(result["details"]?["chosen"]?.intValue, Int64(best))
        XCTAssertEqual(result["text"]?.stringValue, texts[best])
        for margin in margins { XCTAssertTrue(margin >= 0 && margin <= 1, "\(margin)") }
        // Four branches in one batch: one decode per step, not four.
        XCTAssertLessThanOrEqual(result["metrics"]?["decode_calls"]?.intValue ?? .max, 34)
    }

    func testByDefaultTheAnswerWhoseMarginsSumHighestWins() throws {
        let result = try daemon().call("solve", ["problem": "What is 12 + 30?", "strategy": "cot-decoding",
                                                 "params": ["k": 4, "max_tokens": 48]])
        XCTAssertEqual(result["details"]?["select"]?.stringValue, "aggregate")
        let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
        let chosen = try XCTUnwrap(result["details"]?["chosen"]?.intValue)
        let margins = candidates.map { $0["score"]?.doubleValue ?? -1 }
        let answers = candidates.map { $0["answer"]?.stringValue }
        guard answers.contains(where: { $0 != nil }) else {
            // No branch answered: the largest margin, as with select=max.
            return XCTAssertEqual(chosen, Int64(margins.indices.max { margins[$0] < margins[$1] }!))
        }
        // Each answered branch carries its answer's tally: the sum of the margins of the branches giving it.
        var sums: [String: Double] = [:]
        for (answer, margin) in zip(answers, margins) { if let answer { sums[answer, default: 0] += margin } }
        for (candidate, answer) in zip(candidates, answers) {
            guard let answer else { continue }
            XCTAssertEqual(candidate["vote_weight"]?.doubleValue ?? -1, sums[answer]!, accuracy: 1e-6)
        }
        let winner = try XCTUnwrap(answers[Int(chosen)])
        XCTAssertEqual(sums[winner]!, sums.values.max()!, accuracy: 1e-9)
        XCTAssertEqual(result["answer"]?.stringValue, winner)
    }

    func testTheBudgetIsRespected() throws {
        let result = try daemon().call("solve", ["problem": "What is 12 + 30?", "strategy": "cot-decoding",
                                                 "params": ["k": 4, "max_tokens": 256], "budget": ["max_tokens": 150]])
        XCTAssertEqual(result["budget_exhausted"], true)
        // Checked before each step of the four branches.
        XCTAssertLessThanOrEqual(result["metrics"]?["evaluated_tokens"]?.intValue ?? .max, 150 + 4)
    }
}
