import Answers
import Foundation
import RPC
import StrategyKit
import TestSupport
import XCTest

/// REBASE: the allocation, aggregates and answer selection on their own, then the plugin
/// through the real daemon on the test model (mechanics only: it cannot do maths).
final class RebaseTests: XCTestCase {
    /// The reference's select_softmax written out as it is (rebase.py), with the guard the
    /// paper's port adds for an exhausted width; counts returned in input order. Nil where
    /// width * exp(R/T) overflows: the reference then computes inf/inf and fails.
    func referenceSelectSoftmax(_ nodeWeights: [Double], width: Int, softmaxTemperature: Double) -> [Int]? {
        // sorted(zip(node_list, node_weights), key=lambda pair: pair[1], reverse=True), stable
        let sortedPairs = nodeWeights.enumerated().sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }
        let expWeights = sortedPairs.map { exp($0.element / softmaxTemperature) }
        guard expWeights.allSatisfy({ (Double(width) * $0).isFinite }) else { return nil }
        var sumExpWeights = expWeights.reduce(0, +)
        var remainingWidth = width
        var selectNum: [Int] = []
        for weight in expWeights {
            if sumExpWeights <= 0 || remainingWidth <= 0 {
                selectNum.append(0)
                continue
            }
            let num = Int(ceil(Double(remainingWidth) * weight / sumExpWeights))
            selectNum.append(num)
            remainingWidth -= num
            sumExpWeights -= weight
        }
        var counts = [Int](repeating: 0, count: nodeWeights.count)
        for (pair, num) in zip(sortedPairs, selectNum) { counts[pair.offset] = num }
        return counts
    }

    /// SplitMix64: a seeded generator, so the property tests are reproducible.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    // MARK: allocation

    func testAllocationMatchesTheReferenceLoop() {
        let cases: [(rewards: [Double], width: Int, temperature: Double)] = [
            ([0.9, 0.5, 0.1], 16, 0.2),
            ([0.3, 0.8, 0.55, 0.7, 0.1], 16, 0.2),
            ([0.2, 0.2, 0.9], 5, 0.5),
            ([0.61, 0.62, 0.63, 0.64], 7, 1),
            ([0.95], 16, 0.2),
            ([0.1, 0.4, 0.35, 0.8, 0.05, 0.9, 0.6], 3, 0.2),
            ([0.42, 0.17, 0.88, 0.64, 0.5, 0.5, 0.93, 0.01], 64, 0.1),
        ]
        for (rewards, width, temperature) in cases {
            XCTAssertEqual(RebaseAllocation.allocate(rewards: rewards, width: width, temperature: temperature),
                           referenceSelectSoftmax(rewards, width: width, softmaxTemperature: temperature),
                           "\(rewards) width \(width) T \(temperature)")
        }
    }

    func testAllocationSumsToTheWidthAndFavoursHigherRewards() {
        var generator = SeededGenerator(state: 20_241_216)
        var overAllocations = 0
        for _ in 0..<3000 {
            let count = Int.random(in: 1...24, using: &generator)
            let rewards = (0..<count).map { _ in Double.random(in: 0...1, using: &generator) }
            let width = Int.random(in: 1...64, using: &generator)
            let temperature = exp(Double.random(in: log(0.001)...log(100), using: &generator))
            let counts = RebaseAllocation.allocate(rewards: rewards, width: width, temperature: temperature)
            let context = "\(rewards) width \(width) T \(temperature)"
            XCTAssertEqual(counts.reduce(0, +), width, context)
            XCTAssertTrue(counts.allSatisfy { $0 >= 0 }, context)
            // Walked from the best reward down, the counts never grow.
            let byReward = rewards.indices.sorted { rewards[$0] > rewards[$1] }.map { counts[$0] }
            XCTAssertEqual(byReward, byReward.sorted(by: >), context)
            // The reference agrees, except where its running sum_left, rounded below the
            // last e_i, makes the last share exceed 1 and hands out one child too many.
            guard let reference = referenceSelectSoftmax(rewards, width: width, softmaxTemperature: temperature) else {
                continue
            }
            if reference.reduce(0, +) == width {
                XCTAssertEqual(counts, reference, context)
            } else {
                XCTAssertEqual(reference.reduce(0, +), width + 1, context)
                XCTAssertEqual(zip(counts, reference).filter { $0 != $1 }.count, 1, context)
                overAllocations += 1
            }
        }
        XCTAssertGreaterThan(overAllocations, 0, "the literal loop does hand out width + 1: hence the guard")
    }

    func testAllocationGivesMoreToHigherRewards() {
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [0.1, 0.9], width: 16, temperature: 1), [4, 12])
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [0.1, 0.9], width: 16, temperature: 0.2), [0, 16])
    }

    func testAllocationTiesGoInInputOrder() {
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [0.5, 0.5, 0.5], width: 16, temperature: 0.2), [6, 5, 5])
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [0.5, 0.5], width: 3, temperature: 0.2), [2, 1])
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [0.1, 0.7, 0.7], width: 3, temperature: 0.2), [0, 2, 1])
    }

    func testAllocationAtExtremeTemperatures() {
        // Very small T: everything to the best. The reference's exp(R/T) overflows here (inf/inf).
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [0.7, 0.69, 0.1], width: 16, temperature: 1e-4), [16, 0, 0])
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [1000, 999], width: 16, temperature: 0.001), [16, 0])
        // Very large T: nearly uniform; ceil hands the best its extra unit first.
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [0.9, 0.1, 0.5, 0.3], width: 16, temperature: 1e6), [5, 3, 4, 4])
    }

    func testAllocationEdgeCases() {
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [0.3], width: 16, temperature: 0.2), [16])
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [], width: 16, temperature: 0.2), [])
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [0.3, 0.4], width: 0, temperature: 0.2), [0, 0])
        // Fewer children than candidates: the best come first.
        let counts = RebaseAllocation.allocate(rewards: [0.1, 0.4, 0.35, 0.8, 0.05, 0.9, 0.6], width: 3, temperature: 1)
        XCTAssertEqual(counts, [0, 0, 0, 1, 0, 1, 1])
    }

    func testTruncationKeepsTheBest() {
        let counts = RebaseAllocation.allocate(rewards: [0.2, 0.9, 0.5, 0.7, 0.1], width: 16, temperature: 10,
                                               truncationRatio: 0.5)
        XCTAssertEqual(counts.reduce(0, +), 16)
        XCTAssertEqual(counts.indices.filter { counts[$0] > 0 }, [1, 2, 3], "the top ceil(5 * 0.5) = 3")
        XCTAssertEqual(RebaseAllocation.allocate(rewards: [0.2, 0.9], width: 4, temperature: 10, truncationRatio: 0.01), [0, 4])
    }

    // MARK: aggregates, selection, finished paths, the tree

    func testStepAggregates() {
        let scores = [0.5, 0.8, 0.2]
        XCTAssertEqual(StepAggregate.last(scores), 0.2)
        XCTAssertEqual(StepAggregate.min(scores), 0.2)
        XCTAssertEqual(StepAggregate.mean(scores), 0.5, accuracy: 1e-12)
        XCTAssertEqual(StepAggregate.prod(scores), 0.08, accuracy: 1e-12)
        for aggregate in StepAggregate.allCases { XCTAssertEqual(aggregate([]), 0) }
    }

    func testAnswerSelection() throws {
        func choose(_ selection: AnswerSelection, _ answers: [String?], _ scores: [Double]) throws -> Int? {
            try selection.choose(answers: answers, scores: scores, vote: hostVote).chosen
        }
        let answers: [String?] = ["3", "5", "3", nil, "5"]
        let scores = [0.2, 0.9, 0.3, 0.95, 0.4]
        // "5" weighs 1.3 against 0.5; its best-scored solution is the second.
        XCTAssertEqual(try choose(.weightedMajority, answers, scores), 1)
        // Two votes each: the answer with the better best-scored solution wins through it.
        XCTAssertEqual(try choose(.majority, answers, scores), 1)
        XCTAssertEqual(try choose(.majority, ["3", "5", "3", "5"], [0.5, 0.5, 0.5, 0.5]), 0)
        XCTAssertEqual(try choose(.bestOfN, answers, scores), 3)
        XCTAssertEqual(try choose(.majority, ["7", "8", "8"], [0.9, 0.1, 0.2]), 2)
        XCTAssertEqual(try choose(.weightedMajority, [nil, nil], [0.1, 0.6]), 1)
        for selection in AnswerSelection.allCases { XCTAssertNil(try choose(selection, [], [])) }
        // Candidates carry their answer's tally whatever the selection.
        let outcome = try AnswerSelection.bestOfN.choose(answers: answers, scores: scores, vote: hostVote)
        XCTAssertEqual(outcome.votes, [2, 2, 2, 0, 2])
        XCTAssertEqual(outcome.weights[1], 1.3, accuracy: 1e-12)
    }

    func testFinishedPaths() {
        let lastNumber: (String) -> String? = { text in
            text.split(whereSeparator: { !$0.isNumber }).last.map(String.init)
        }
        func finished(_ text: String, _ finish: Finish = .stop, tokens: Int = 10) -> Bool {
            RebaseStep.isFinished(text: text, finish: finish, pathTokens: tokens, maxTokens: 100, extract: lastNumber)
        }
        XCTAssertFalse(finished("2 + 3 = 5.\n\n"), "a number in the working is no final answer")
        XCTAssertTrue(finished("2 + 3 = 5.\n\nThe answer is 5.\n\n"))
        XCTAssertTrue(finished("so the answer is 5"), "the marker in any case")
        XCTAssertFalse(finished("2 + 3 = 5. The answer is\n\n"), "a marker with nothing after it")
        XCTAssertTrue(finished("Hello", .endOfGeneration))
        XCTAssertTrue(finished("2 + 3", .maxTokens, tokens: 100))
        XCTAssertFalse(finished("2 + 3", .maxTokens, tokens: 99))
    }

    func testTreeConservesTheWidth() {
        var tree = RebaseTree(width: 4, root: 0)
        let first = tree.expand(temperature: 0.2)
        XCTAssertEqual(first.expansions.map(\.children), [4])
        XCTAssertTrue(first.pruned.isEmpty && tree.live.isEmpty)
        let root = first.expansions[0].node
        let children = (1...4).map { id in
            RebaseTree.Node(handle: id, text: root.text + "step \(id)\n\n", tokens: 3, stepScores: [Double(id) / 10])
        }
        tree.end(children: children.map { ($0, $0.handle == 2) }, stepTokens: 3)
        XCTAssertEqual(tree.widthLeft, 3)
        XCTAssertEqual(tree.live.map(\.handle), [1, 3, 4])
        XCTAssertEqual(tree.finished.map(\.handle), [2])
        let second = tree.expand(temperature: 0.2)
        XCTAssertEqual(second.expansions.map(\.node.handle), [3, 4])
        XCTAssertEqual(second.expansions.map(\.children), [1, 2])
        XCTAssertEqual(second.pruned.map(\.handle), [1])
        tree.end(children: [], stepTokens: 0)
        XCTAssertEqual(tree.rounds.map(\.children), [4, 3])
        XCTAssertEqual(tree.rounds.map(\.widthLeft), [4, 3])
        XCTAssertEqual(tree.rounds[0].bestScore, 0.4)
        XCTAssertFalse(tree.canExpand(maxDepth: 25), "no live node left")
        XCTAssertFalse(tree.solutions.partial)

        let unfinished = RebaseTree(width: 2, root: 0)
        XCTAssertTrue(unfinished.solutions.partial)
        XCTAssertFalse(unfinished.canExpand(maxDepth: 0))
    }

    func testAnAnchorIsNeverPrunedAndCompetesForTheRest() {
        var tree = RebaseTree(width: 4, root: 0, anchored: true)
        XCTAssertEqual(tree.expand(temperature: 0.2).expansions.map(\.children), [4])
        // The anchor scores worst: select_softmax alone would prune it (see the test above).
        let children = [RebaseTree.Node(handle: 1, text: "a", tokens: 3, stepScores: [0.1], anchored: true)]
            + (2...4).map { RebaseTree.Node(handle: $0, text: "b", tokens: 3, stepScores: [Double($0) / 10]) }
        tree.end(children: children.map { ($0, false) }, stepTokens: 3)
        let second = tree.expand(temperature: 0.2)
        XCTAssertEqual(second.expansions.map(\.node.handle), [1, 3, 4])
        XCTAssertEqual(second.expansions.map(\.children), [1, 1, 2], "one unit to the anchor, the other 3 by softmax")
        XCTAssertEqual(second.pruned.map(\.handle), [2])

        // The best-scored anchor takes its unit and its softmax share.
        var leading = RebaseTree(width: 4, root: 0, anchored: true)
        _ = leading.expand(temperature: 0.2)
        leading.end(children: [(RebaseTree.Node(handle: 1, text: "a", tokens: 3, stepScores: [0.9], anchored: true), false),
                               (RebaseTree.Node(handle: 2, text: "b", tokens: 3, stepScores: [0.1]), false)], stepTokens: 3)
        let third = leading.expand(temperature: 0.2)
        XCTAssertEqual(third.expansions.map(\.children), [4], "its unit, and all 3 left by softmax at T = 0.2")
        XCTAssertEqual(third.pruned.map(\.handle), [2])
    }

    // MARK: through the daemon

    static let shared = SharedDaemon {
        try DaemonProcess(plugins: ["rebase", "greedy"],
                          prepare: { try CPlugin.compile("Tests/StrategyTests/Fixtures/hash_scorer.c", into: $0, name: "hash-scorer") })
    }
    static let problem = "Tom has 3 apples and buys 4 more. How many apples does he have?"

    func daemon() throws -> DaemonProcess { try Self.shared.get() }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    func solve(_ params: JSON, budget: JSON? = nil, onProgress: (JSON) -> Void = { _ in }) throws -> JSON {
        var request: [String: JSON] = ["problem": .string(RebaseTests.problem), "strategy": "rebase", "params": params,
                                       "seed": 7, "stream": true]
        if let budget { request["budget"] = budget }
        switch try daemon().client().call("solve", .object(request), onNotification: onProgress) {
        case .success(let result): return result
        case .failure(let error): throw error
        }
    }

    func testSolveIsWellFormedConservesWidthAndBatches() throws {
        let width = 4
        var events: [JSON] = []
        let result = try solve(["width": JSON(width), "max_step_tokens": 5, "max_tokens": 20, "scorer": "hash-scorer"]) {
            events.append($0)
        }
        let details = try XCTUnwrap(result["details"])
        let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
        XCTAssertNotNil(result["answer"], "answer is a string or null")
        XCTAssertFalse(candidates.isEmpty)
        XCTAssertTrue(candidates.allSatisfy { $0["text"]?.stringValue != nil && $0["score"]?.doubleValue != nil })
        XCTAssertEqual(result["budget_exhausted"], false)
        XCTAssertEqual(details["partial"], false, "20 tokens end every path")
        XCTAssertEqual(details["finished"]?.intValue, Int64(candidates.count))

        // Width: each depth hands out exactly the width its finished predecessors left.
        let rounds = try XCTUnwrap(details["rounds"]?.arrayValue)
        XCTAssertEqual(rounds.count, Int(details["depths"]?.intValue ?? -1))
        XCTAssertGreaterThanOrEqual(rounds.count, 4, "20 tokens take at least 4 steps of 5")
        var finishedBefore: Int64 = 0
        for round in rounds {
            XCTAssertEqual((round["children"]?.intValue ?? 0) + finishedBefore, Int64(width), round.serialized())
            XCTAssertEqual(round["width_left"], round["children"])
            finishedBefore += round["finished"]?.intValue ?? 0
        }
        XCTAssertLessThanOrEqual(finishedBefore, Int64(width))

        // The prompt is evaluated once, however many children fork from it.
        let metrics = try XCTUnwrap(result["metrics"])
        let greedy = try daemon().call("solve", ["problem": .string(RebaseTests.problem), "params": ["max_tokens": 1]])
        XCTAssertEqual(metrics["prompt_tokens"], greedy["metrics"]?["prompt_tokens"])
        XCTAssertGreaterThan(metrics["forks"]?.intValue ?? 0, 0)
        let prompt = metrics["prompt_tokens"]?.intValue ?? 0
        let generated = metrics["generated_tokens"]?.intValue ?? 0
        XCTAssertLessThanOrEqual(metrics["evaluated_tokens"]?.intValue ?? .max, prompt + generated)

        // Decodes: per depth, at most one per forked parent (its last token, or the
        // prompt), one for the pending tokens of parents that are their own only child,
        // and one per step of the depth's single generate call -- never one per child.
        let bound = rounds.map { ($0["expanded"]?.intValue ?? 0) + 1 + ($0["step_tokens"]?.intValue ?? 0) }.reduce(0, +)
        let decodes = try XCTUnwrap(metrics["decode_calls"]?.intValue)
        XCTAssertLessThanOrEqual(decodes, bound)
        XCTAssertLessThan(decodes, generated, "four children share each decode")

        // One progress event per depth, in order.
        let steps = events.compactMap { $0["params"] }.filter { $0["event"] == "step" }
        XCTAssertEqual(steps.map { $0["depth"]?.intValue ?? -1 }, (0..<Int64(rounds.count)).map { $0 })
        XCTAssertTrue(steps.allSatisfy { $0["live"] != nil && $0["width_left"] != nil && $0["best_score"] != nil })
    }

    func testAFullKVCacheEndsTheSearchWithTheBestSoFar() throws {
        // 16 paths of 24-token steps, each scored by the policy's own logprobs (read from
        // the paths: scoring takes no cells), in a 512-cell cache: the room runs out at the
        // second or third depth, while generating.
        let daemon = try DaemonProcess(plugins: ["rebase", "logprob"], extraArguments: ["--context-size", "512"])
        defer { _ = daemon.stop(); daemon.removeFolder() }
        let result = try daemon.call("solve", ["problem": .string(RebaseTests.problem), "strategy": "rebase", "seed": 7,
                                               "params": ["width": 16, "max_step_tokens": 24, "max_tokens": 256,
                                                          "scorer": "logprob"]])
        XCTAssertEqual(result["budget_exhausted"], true)
        XCTAssertEqual(result["stopped_by"], "kv_cache")
        XCTAssertFalse(try XCTUnwrap(result["candidates"]?.arrayValue).isEmpty)
        XCTAssertLessThanOrEqual(result["metrics"]?["peak_sequences"]?.intValue ?? .max, 16 + 1)
        XCTAssertEqual(try daemon.call("ping"), "pong")
    }

    func testScorerParamsAndSelection() throws {
        let result = try solve(["width": 3, "max_step_tokens": 6, "max_tokens": 12, "scorer": "hash-scorer",
                                "scorer_params": "{\"constant\": 0.25}", "aggregate": "min", "selection": "best_of_n"])
        let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
        XCTAssertEqual(candidates.map { $0["score"]?.doubleValue }, candidates.map { _ in 0.25 })
        XCTAssertEqual(result["text"], candidates.first?["text"], "best-of-n with equal scores: the first")
    }

    func testBudgetCutOffReturnsTheBestSoFar() throws {
        let result = try solve(["width": 4, "max_step_tokens": 16, "max_tokens": 64, "scorer": "hash-scorer"],
                               budget: ["max_tokens": 100])
        XCTAssertEqual(result["budget_exhausted"], true)
        // The budget is checked before every decode, each of which adds one token per child.
        XCTAssertLessThanOrEqual(result["metrics"]?["evaluated_tokens"]?.intValue ?? .max, 100 + 4)
        XCTAssertEqual(result["details"]?["partial"], true, "the first depth was cut off: its paths are partial")
        let answer = try XCTUnwrap(result["answer"])
        XCTAssertTrue(answer == .null || answer.stringValue != nil)
        XCTAssertNotNil(result["text"]?.stringValue)
        XCTAssertNotNil(result["candidates"]?.arrayValue)
        XCTAssertNotNil(result["details"]?["depths"]?.intValue)
    }

    func testUnknownScorerFailsClearly() throws {
        XCTAssertThrowsError(try solve(["width": 2, "max_step_tokens": 2, "scorer": "no-such-scorer"])) { error in
            XCTAssertTrue("\(error)".contains("no-such-scorer"), "\(error)")
        }
    }
}

/// The host's vote (Answers.Vote, what sd_host.vote runs) for strategy code tested without a daemon.
func hostVote(_ answers: [String?], _ weights: [Double]?, _ mode: VoteMode) -> VoteOutcome {
    let outcome = Vote.count(answers: answers, weights: weights, mode: Vote.Mode(rawValue: mode.rawValue)!)
    return VoteOutcome(chosen: outcome.chosen >= 0 ? outcome.chosen : nil, votes: outcome.tallies.map(\.votes),
                       weights: outcome.tallies.map(\.weight))
}
