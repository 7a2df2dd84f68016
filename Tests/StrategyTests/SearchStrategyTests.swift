import Foundation
import RPC
import TestSupport
import XCTest

/// best-of-n and beam-search through the real daemon on the test model, scored by a C
/// fixture scorer (Fixtures/search_scorer_fixture.c) whose score is a hash of the text:
/// the tests recompute every score and choice from the returned candidates.
final class SearchStrategyTests: XCTestCase {
    static let shared = SharedDaemon {
        try DaemonProcess(plugins: DaemonProcess.builtPlugins + ["best-of-n", "beam-search", "self-eval", "logprob", "combine",
                                                                     "self-certainty"],
                          prepare: { folder in
            try CPlugin.compile("Tests/StrategyTests/Fixtures/search_scorer_fixture.c", into: folder, name: SearchStrategyTests.scorer)
            let delegating = "Tests/StrategyTests/Fixtures/delegating_scorer.c"
            try CPlugin.compile(delegating, into: folder, name: "delegate-reads",
                                defines: [#"-DFIXTURE_NAME="delegate-reads""#, "-DFIXTURE_READS_LOGPROBS"])
            try CPlugin.compile(delegating, into: folder, name: "delegate-blind", defines: [#"-DFIXTURE_NAME="delegate-blind""#])
            try CPlugin.compile(delegating, into: folder, name: "delegate-old",
                                defines: [#"-DFIXTURE_NAME="delegate-old""#, "-DFIXTURE_READS_LOGPROBS",
                                          "-DFIXTURE_PLUGIN_SIZE=SD_PLUGIN_MIN_SIZE"])
            try CPlugin.compile(delegating, into: folder, name: "delegate-self",
                                defines: [#"-DFIXTURE_NAME="delegate-self""#, #"-DFIXTURE_TARGET="delegate-self""#,
                                          "-DFIXTURE_READS_LOGPROBS"])
        })
    }

    static let scorer = "search-fixture"
    static let problem = "What is 2 + 3? Answer with the number."
    /// A problem the test model does not finish in one step, so that a search goes deep.
    static let longProblem = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        + "How many clips did Natalia sell altogether in April and May?"

    func daemon() throws -> DaemonProcess { try Self.shared.get() }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    /// The fixture scorer's score of a solution (FNV-1a of its bytes, salted).
    static func fixtureScore(_ text: String, salt: UInt64 = 0) -> Double {
        var hash: UInt64 = 14_695_981_039_346_656_037 ^ salt
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
        return Double(hash % 1_000_003) / 1_000_002.0
    }

    func solve(_ strategy: String, _ params: JSON, budget: JSON? = nil) throws -> JSON {
        var request: [String: JSON] = ["problem": .string(SearchStrategyTests.problem), "strategy": .string(strategy),
                                       "params": params]
        if let budget { request["budget"] = budget }
        return try daemon().call("solve", .object(request))
    }

    func assertWellFormed(_ result: JSON, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotNil(result["text"]?.stringValue, file: file, line: line)
        XCTAssertTrue(result["answer"] == .null || result["answer"]?.stringValue != nil, file: file, line: line)
        XCTAssertNotNil(result["candidates"]?.arrayValue, file: file, line: line)
        XCTAssertNotNil(result["details"]?.objectValue, file: file, line: line)
        XCTAssertNotNil(result["metrics"]?["decode_calls"]?.intValue, file: file, line: line)
    }

    // MARK: best-of-n

    /// The scorer tokens of best-of-n over two samples of at most 24 tokens.
    func scorerTokens(_ scorer: String, _ scorerParams: String = "{}") throws -> Int64 {
        let result = try solve("best-of-n", ["n": 2, "max_tokens": 24, "scorer": .string(scorer),
                                             "scorer_params": .string(scorerParams)])
        return try XCTUnwrap(result["metrics"]?["scorer_tokens"]?.intValue, result.serialized())
    }

    func testScorersBuildOnTheCachedPrefixOfTheSampleTheyScore() throws {
        // Without the shared cells every score would evaluate the system prompt, the
        // problem and the sample again (over 60 tokens).
        let inline = try scorerTokens("self-eval")
        XCTAssertGreaterThan(inline, 0)
        XCTAssertLessThan(inline, 2 * 30, "the question and the answer cue, per sample")
        // best-of-n samples with logprobs for this scorer: it reads them instead of evaluating
        // the step (at most a token where the text tokenizes otherwise than it was sampled).
        XCTAssertLessThanOrEqual(try scorerTokens("logprob"), 2)
        // So does self-certainty: sampled with logprobs, each token's signals were kept.
        XCTAssertLessThanOrEqual(try scorerTokens("self-certainty"), 2)
        XCTAssertGreaterThan(try scorerTokens("self-eval", #"{"prompt": "fresh"}"#), 2 * 30,
                             "a fresh conversation shares nothing with the samples")
    }

    func testAStrategySamplesWithLogprobsWhenItsScorerDeclaresItReadsThem() throws {
        // Each fixture scores with logprob; only what the plugin declares differs. Read, a
        // score costs at most a token; teacher-forced, the sample's (up to 24) tokens again.
        XCTAssertLessThanOrEqual(try scorerTokens("delegate-reads"), 2)
        XCTAssertGreaterThan(try scorerTokens("delegate-blind"), 10)
        XCTAssertGreaterThan(try scorerTokens("delegate-old"), 10,
                             "a struct the size of one built before reads_logprobs: the field is not read")
        XCTAssertLessThanOrEqual(try scorerTokens("combine", #"{"scorers": "logprob"}"#), 2, "combine answers for its parts")
    }

    func testAScorerThatScoresWithItselfFailsTheSolveNotTheDaemon() throws {
        let response = try daemon().client().call("solve", ["problem": .string(Self.problem), "strategy": "best-of-n",
                                                            "params": ["n": 2, "max_tokens": 8, "scorer": "delegate-self"]])
        guard case .failure(let error) = response else { return XCTFail("a scorer nested without end must fail the solve") }
        XCTAssertTrue(error.message.contains("nested more than"), error.message)
        XCTAssertEqual(try daemon().call("ping"), "pong")
    }

    func testBestOfNMaxPicksTheHighestScoredCandidateFromOneBatch() throws {
        let result = try solve("best-of-n", ["n": 4, "max_tokens": 16, "scorer": .string(SearchStrategyTests.scorer), "select": "max"])
        assertWellFormed(result)
        let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
        XCTAssertEqual(candidates.count, 4)
        let scores = candidates.map { $0["score"]?.doubleValue ?? -1 }
        for (candidate, score) in zip(candidates, scores) {
            // The scorer saw exactly the sample's text.
            XCTAssertEqual(score, SearchStrategyTests.fixtureScore(candidate["text"]?.stringValue ?? ""), accuracy: 1e-9)
        }
        let best = scores.indices.max { scores[$0] < scores[$1] }!
        XCTAssertEqual(result["details"]?["chosen"]?.intValue, Int64(best))
        XCTAssertEqual(result["text"], candidates[best]["text"])
        XCTAssertEqual(result["answer"], candidates[best]["answer"])

        let metrics = try XCTUnwrap(result["metrics"])
        XCTAssertEqual(metrics["forks"], 4)
        // The forks share the prompt: it is evaluated once, as for a single greedy answer.
        let greedy = try solve("greedy", ["max_tokens": 1])
        XCTAssertEqual(metrics["prompt_tokens"], greedy["metrics"]?["prompt_tokens"])
        // One decode for the prompt, then one per step for all four samples (not 4 × 16).
        XCTAssertLessThanOrEqual(metrics["decode_calls"]?.intValue ?? .max, 16 + 1)
    }

    func testBestOfNWeightedPicksTheAnswerWithTheLargestScoreSum() throws {
        let result = try solve("best-of-n", ["n": 6, "max_tokens": 24, "temperature": 1.0, "select": "weighted",
                                             "scorer": .string(SearchStrategyTests.scorer), "scorer_params": "{\"salt\": 5}"])
        assertWellFormed(result)
        let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
        var sums: [String: Double] = [:]
        for candidate in candidates {
            let score = try XCTUnwrap(candidate["score"]?.doubleValue)
            // scorer_params reach the scorer: the salt changes every score.
            XCTAssertEqual(score, SearchStrategyTests.fixtureScore(candidate["text"]?.stringValue ?? "", salt: 5), accuracy: 1e-9)
            if let answer = candidate["answer"]?.stringValue { sums[answer, default: 0] += score }
        }
        let answer = try XCTUnwrap(result["answer"]?.stringValue, "the test model gives some number here: \(result.serialized())")
        XCTAssertEqual(sums[answer], sums.values.max())
        XCTAssertEqual(result["details"]?["answer_scores"]?[answer]?.doubleValue ?? -1, sums[answer] ?? 0, accuracy: 1e-9)
        // The text returned is the answer's best-scored sample; votes count the samples per answer.
        let sameAnswer = candidates.filter { $0["answer"]?.stringValue == answer }
        let best = sameAnswer.max { ($0["score"]?.doubleValue ?? 0) < ($1["score"]?.doubleValue ?? 0) }
        XCTAssertEqual(result["text"], best?["text"])
        XCTAssertEqual(best?["votes"]?.intValue, Int64(sameAnswer.count))
        // Salt 5 makes the vote matter on the test model's samples: the single best-scored
        // sample has another answer (if the samples change, pick a salt for which this holds).
        let top = candidates.max { ($0["score"]?.doubleValue ?? 0) < ($1["score"]?.doubleValue ?? 0) }
        XCTAssertNotEqual(top?["answer"]?.stringValue, answer)
    }

    func testBestOfNStopsAtTheBudgetWithAWellFormedResult() throws {
        let result = try solve("best-of-n", ["n": 4, "max_tokens": 200, "scorer": .string(SearchStrategyTests.scorer)],
                               budget: ["max_tokens": 120])
        assertWellFormed(result)
        XCTAssertEqual(result["budget_exhausted"], true)
        XCTAssertEqual(result["candidates"]?.arrayValue?.count, 4)
        XCTAssertEqual(result["details"]?["scored"], 0, "no scorer compute once the budget is spent")
        // With nothing scored, the first sample of the most common answer.
        let answers = try XCTUnwrap(result["candidates"]?.arrayValue).map { $0["answer"]?.stringValue }
        let counts = Dictionary(answers.compactMap { $0 }.map { ($0, 1) }, uniquingKeysWith: +)
        let expected = answers.indices.first { answers[$0] != nil && counts[answers[$0]!] == counts.values.max() } ?? 0
        XCTAssertEqual(result["details"]?["chosen"]?.intValue, Int64(expected), "\(answers)")
        // Generation stops within one step (4 tokens) of the budget.
        XCTAssertLessThanOrEqual(result["metrics"]?["evaluated_tokens"]?.intValue ?? .max, 120 + 4)
        XCTAssertLessThan(result["metrics"]?["generated_tokens"]?.intValue ?? .max, 4 * 200)
    }

    func testAdaptiveBestOfNStopsAfterTheRoundWhereASampleReachesTheStopScore() throws {
        func adaptive(stopScore: Double) throws -> (result: JSON, texts: [String], scores: [Double]) {
            let result = try solve("best-of-n", ["n": 8, "max_tokens": 16, "temperature": 1.0, "adaptive": true, "round": 2,
                                                 "stop_score": .double(stopScore), "scorer": .string(SearchStrategyTests.scorer),
                                                 "select": "max"])
            assertWellFormed(result)
            let texts = try XCTUnwrap(result["candidates"]?.arrayValue).map { $0["text"]?.stringValue ?? "" }
            return (result, texts, texts.map { SearchStrategyTests.fixtureScore($0) })
        }
        let stopScore = 0.6
        let early = try adaptive(stopScore: stopScore)
        let reached = try XCTUnwrap(early.scores.firstIndex { $0 >= stopScore }, "no sample reached \(stopScore): \(early.scores)")
        // Rounds of two: the draw ends with the round holding the first sample that reached it.
        XCTAssertEqual(early.texts.count, (reached / 2 + 1) * 2, "\(early.scores)")
        XCTAssertLessThan(early.texts.count, 8, "the test means little unless the draw stops early (pick another stop_score)")
        XCTAssertEqual(early.result["details"]?["drawn"]?.intValue, Int64(early.texts.count))
        XCTAssertEqual(early.result["details"]?["stopped_early"], true)
        // select = max: the first of the best-scored samples drawn.
        let best = early.scores.indices.max { early.scores[$0] < early.scores[$1] }!
        XCTAssertEqual(early.result["details"]?["chosen"]?.intValue, Int64(best))

        // A stop score no sample reaches draws all n, beginning with the same samples (a
        // sample's seed is its index, not its round's: each round draws new ones), and the
        // early stop saved the rest's tokens.
        let full = try adaptive(stopScore: 2)
        XCTAssertEqual(full.texts.count, 8)
        XCTAssertEqual(full.result["details"]?["stopped_early"], false)
        XCTAssertEqual(Array(full.texts.prefix(early.texts.count)), early.texts)
        XCTAssertNotEqual(Array(full.texts[0..<2]), Array(full.texts[2..<4]), "a round repeating the first one's seeds")
        XCTAssertLessThan(early.result["metrics"]?["generated_tokens"]?.intValue ?? .max,
                          full.result["metrics"]?["generated_tokens"]?.intValue ?? 0)
    }

    func testAdaptiveWeightedBestOfNStopsOnceNoSampleLeftCanOvertakeTheLeadingAnswer() throws {
        func adaptive(stopScore: Double) throws -> (result: JSON, answers: [String?], scores: [Double]) {
            let result = try solve("best-of-n", ["n": 8, "max_tokens": 16, "temperature": 1.0, "adaptive": true, "round": 2,
                                                 "stop_score": .double(stopScore), "scorer": .string(SearchStrategyTests.scorer)])
            assertWellFormed(result)
            XCTAssertEqual(result["details"]?["select"], "weighted", "the default selection")
            let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
            return (result, candidates.map { $0["answer"]?.stringValue }, candidates.map { $0["score"]?.doubleValue ?? -1 })
        }
        // How far the best score sum leads the next (or a new answer's 0) after the first `drawn` samples.
        func lead(_ answers: [String?], _ scores: [Double], drawn: Int) -> Double {
            var sums: [String: Double] = [:]
            for (answer, score) in zip(answers.prefix(drawn), scores.prefix(drawn)) { if let answer { sums[answer, default: 0] += score } }
            let ranked = sums.values.sorted(by: >)
            return ranked.isEmpty ? 0 : ranked[0] - max(ranked.dropFirst().first ?? 0, 0)
        }
        let stopScore = 0.05
        let early = try adaptive(stopScore: stopScore)
        // Rounds of two: the draw ends with the first round after which the lead exceeds
        // stop_score for each sample left.
        let settledAt = stride(from: 2, to: 8, by: 2).first { drawn in
            lead(early.answers, early.scores, drawn: drawn) > Double(8 - drawn) * stopScore
        } ?? 8
        XCTAssertEqual(early.answers.count, settledAt, "\(early.answers) \(early.scores)")
        XCTAssertLessThan(early.answers.count, 8, "the test means little unless the draw stops early (pick another stop_score)")
        XCTAssertEqual(early.result["details"]?["stopped_early"], true)

        // With stop_score at the top of the scorer's range (the fixture's scores lie in 0...1),
        // the stop keeps the answer all 8 samples of the same seeds give.
        let top = try adaptive(stopScore: 1)
        let full = try adaptive(stopScore: 100)
        XCTAssertEqual(full.answers.count, 8)
        XCTAssertEqual(Array(full.answers.prefix(top.answers.count)), top.answers)
        XCTAssertEqual(top.result["answer"], full.result["answer"])
    }

    // MARK: beam search

    func testBeamSearchConservesWidthBatchesEachStepAndStreamsEachDepth() throws {
        let width = 3, expansions = 2, stepTokens = 8
        var events: [JSON] = []
        let result = try daemon().client().call("solve", [
            "problem": .string(SearchStrategyTests.longProblem), "strategy": "beam-search", "stream": true,
            "params": ["beam_width": .int(Int64(width)), "expansions": .int(Int64(expansions)), "max_depth": 4,
                       "max_step_tokens": .int(Int64(stepTokens)), "scorer": .string(SearchStrategyTests.scorer)],
        ]) { events.append($0["params"] ?? .null) }.get()
        assertWellFormed(result)
        let details = try XCTUnwrap(result["details"])
        let rounds = try XCTUnwrap(details["rounds"]?.arrayValue)
        XCTAssertEqual(Int64(rounds.count), details["depth"]?.intValue)
        XCTAssertGreaterThan(rounds.count, 1, "the search must go deep for this test to mean much")
        var forks: Int64 = 0, decodeBound: Int64 = 0
        var previousLive: Int64 = 1  // the prompt is the only sequence forked at depth 1
        for (index, round) in rounds.enumerated() {
            let live = try XCTUnwrap(round["live"]?.intValue), finished = try XCTUnwrap(round["finished"]?.intValue)
            let expanded = try XCTUnwrap(round["expanded"]?.intValue), children = try XCTUnwrap(round["children"]?.intValue)
            let step = try XCTUnwrap(round["step_tokens"]?.intValue)
            XCTAssertLessThanOrEqual(live + finished, Int64(width), "a finished solution takes a beam's slot")
            XCTAssertEqual(expanded, previousLive, "every live beam, and only those, is expanded")
            // The prompt stands for beam_width beams: depth 1 is as wide as the others.
            XCTAssertEqual(children, (index == 0 ? Int64(width) : expanded) * Int64(expansions))
            XCTAssertLessThanOrEqual(step, Int64(stepTokens))
            previousLive = live
            forks += children
            // One decode evaluates every beam's last sampled token (at depth 1, the prompt)
            // before the forks; then one per generated step for all the children together
            // (the step that ends the last child needs none). The fixture scorer decodes
            // nothing. Unbatched, a depth would cost expanded + children × step decodes.
            decodeBound += 1 + step
        }
        let metrics = try XCTUnwrap(result["metrics"])
        XCTAssertEqual(metrics["forks"]?.intValue, forks)
        XCTAssertLessThanOrEqual(metrics["decode_calls"]?.intValue ?? .max, decodeBound)
        XCTAssertLessThanOrEqual(metrics["peak_sequences"]?.intValue ?? .max, Int64(width * expansions + 1))

        // Candidates: the finished first, then the live, each group best first; the answer is the first's.
        let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
        XCTAssertFalse(candidates.isEmpty)
        XCTAssertLessThanOrEqual(candidates.count, width)
        let finishedCount = Int(details["finished"]?.intValue ?? 0)
        let scores = candidates.map { $0["score"]?.doubleValue ?? -1 }
        for group in [scores.prefix(finishedCount), scores.dropFirst(finishedCount)] {
            XCTAssertEqual(Array(group), group.sorted(by: >))
        }
        for (candidate, score) in zip(candidates, scores) {
            XCTAssertEqual(score, SearchStrategyTests.fixtureScore(candidate["text"]?.stringValue ?? ""), accuracy: 1e-9,
                           "the scorer saw the whole path")
        }
        XCTAssertEqual(result["text"], candidates[0]["text"])
        XCTAssertEqual(result["answer"], candidates[0]["answer"])

        // One progress event per depth, matching the rounds.
        let steps = events.filter { $0["event"] == "step" }
        XCTAssertEqual(steps.map { $0["depth"] }, rounds.map { $0["depth"] })
        XCTAssertEqual(steps.map { $0["live"] }, rounds.map { $0["live"] })
        XCTAssertEqual(steps.map { $0["best_score"] }, rounds.map { $0["best_score"] })
    }

    func testBeamSearchStopsAtTheBudgetWithTheBestSoFar() throws {
        // Short steps and a budget of the prompt and 20 tokens: depth 1 (four children of
        // up to four tokens) completes, and the search is cut in a later depth.
        let prompt = try XCTUnwrap(solve("greedy", ["max_tokens": 1])["metrics"]?["prompt_tokens"]?.intValue)
        let budget = prompt + 20
        let result = try solve("beam-search", ["beam_width": 2, "expansions": 2, "max_step_tokens": 4,
                                               "scorer": .string(SearchStrategyTests.scorer)],
                               budget: ["max_tokens": .int(budget)])
        assertWellFormed(result)
        XCTAssertEqual(result["budget_exhausted"], true)
        XCTAssertEqual(result["details"]?["stop_reason"], "stopped")
        // The candidates are the beams of the last completed depth, best so far.
        let last = try XCTUnwrap(result["details"]?["rounds"]?.arrayValue?.last, "depth 1 fits in the budget")
        XCTAssertEqual(Int64(result["candidates"]?.arrayValue?.count ?? -1),
                       (last["live"]?.intValue ?? 0) + (last["finished"]?.intValue ?? 0))
        // Forking two beams and one step of four children: at most 6 tokens past the budget.
        XCTAssertLessThanOrEqual(result["metrics"]?["evaluated_tokens"]?.intValue ?? .max, budget + 6)
    }

    func testBadScorerParamsAreRefused() throws {
        let client = try daemon().client()
        guard case .failure(let error) = try client.call("solve", [
            "problem": "x", "strategy": "beam-search", "params": ["scorer_params": "[1, 2]"],
        ]) else { return XCTFail("scorer_params that are not an object must be refused") }
        XCTAssertTrue(error.message.contains("scorer_params"), error.message)
    }
}
