import Foundation
import RPC
import StrategyKit
import TestSupport
import XCTest

/// Quiet-STaR thought mixing: the mixture and the heads on fixed numbers, then quiet-star
/// and quiet-rebase through the real daemon on the test model (mechanics: it cannot do maths).
final class QuietStarTests: XCTestCase {
    // MARK: the mixture on fixed numbers

    func testLogitMixtureIsTheHiddenStateMixtureThroughALinearHead() {
        // lm_head((1 - w) h_base + w h_thought) with a bias-free head W equals
        // (1 - w) W h_base + w W h_thought: what the plugin mixes.
        let head: [[Float]] = [[0.5, -1, 2], [1.5, 0.25, -0.5], [-2, 1, 1], [0.1, 0.2, 0.3]]
        let base: [Float] = [0.3, -1.2, 0.8], thought: [Float] = [1.1, 0.4, -0.6]
        func apply(_ h: [Float]) -> [Float] { head.map { row in zip(row, h).map(*).reduce(0, +) } }
        for w in [0.0, 0.25, 0.5, 1.0] {
            let hidden = zip(base, thought).map { Float(1 - w) * $0 + Float(w) * $1 }
            let mixed = ThoughtMixture.mix(base: apply(base), thoughts: [apply(thought)], weights: [w], space: .logits)
            for (a, b) in zip(mixed, apply(hidden)) { XCTAssertEqual(a, b, accuracy: 1e-5, "w \(w)") }
        }
    }

    func testMixtureFormulaWithSeveralThoughts() {
        let base: [Float] = [1, 2, 3], first: [Float] = [3, 0, 1], second: [Float] = [0, 0, 5]
        let logits = ThoughtMixture.mix(base: base, thoughts: [first, second], weights: [0.25, 0.5], space: .logits)
        let expected: [Float] = (0..<3).map { index -> Float in
            let withFirst: Float = 0.75 * base[index] + 0.25 * first[index]
            let withSecond: Float = 0.5 * base[index] + 0.5 * second[index]
            return (withFirst + withSecond) / 2
        }
        for (a, b) in zip(logits, expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }

        func softmax(_ x: [Float]) -> [Double] {
            let e = x.map { exp(Double($0)) }
            return e.map { $0 / e.reduce(0, +) }
        }
        let probabilities = ThoughtMixture.mix(base: base, thoughts: [first, second], weights: [0.25, 0.5], space: .probabilities)
        let (pb, p1, p2) = (softmax(base), softmax(first), softmax(second))
        for index in 0..<3 {
            let expected = ((0.75 * pb[index] + 0.25 * p1[index]) + (0.5 * pb[index] + 0.5 * p2[index])) / 2
            XCTAssertEqual(exp(Double(probabilities[index])), expected, accuracy: 1e-6)
        }
        XCTAssertEqual(ThoughtMixture.mix(base: base, thoughts: [first], weights: [0], space: .logits), base, "w = 0 is the base")
    }

    func testEntropyAndTheEntropyGatedWeight() {
        XCTAssertEqual(ThoughtMixture.entropy([0, 0, 0, 0]), log(4), accuracy: 1e-6)
        XCTAssertEqual(ThoughtMixture.entropy([100, 0, 0, 0]), 0, accuracy: 1e-6)
        let head = MixingHead.entropyGated(weight: 0.6, low: 1, high: 3)
        XCTAssertEqual(head.weight(entropy: 0.5, base: nil, thought: nil), 0)
        XCTAssertEqual(head.weight(entropy: 2, base: nil, thought: nil), 0.3, accuracy: 1e-12)
        XCTAssertEqual(head.weight(entropy: 9, base: nil, thought: nil), 0.6)
        XCTAssertEqual(MixingHead.constant(weight: 0.2).weight(entropy: 9, base: nil, thought: nil), 0.2)
    }

    // MARK: the learned head's file

    static var smallModel: [String: Any] { ["name": "tiny", "architecture": "llama", "embedding_width": 2, "vocabulary_size": 10] }

    func headFile(_ head: LearnedMixingHead) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("head-\(UUID().uuidString.prefix(8)).json").path
        try JSONSerialization.data(withJSONObject: head.json).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testLearnedHeadRoundTripsThroughItsFile() throws {
        let head = LearnedMixingHead(layers: [
            .init(weight: [[0.5, -1, 0.25, 2], [1, 1, -1, 0.5], [0, 0.1, 0.2, -0.3]], bias: [0.1, -0.2, 0.3]),
            .init(weight: [[1, -0.5, 2]], bias: [-0.25]),
        ], model: Self.smallModel, training: ["positions": 12])
        let loaded = try LearnedMixingHead(path: try headFile(head), modelInfo: Self.smallModel)
        XCTAssertEqual(loaded.layers.map(\.weight), head.layers.map(\.weight))
        XCTAssertEqual(loaded.layers.map(\.bias), head.layers.map(\.bias))
        // The forward pass by hand: relu(W1 x + b1), then sigmoid(W2 h + b2).
        let x: [Float] = [0.3, -0.7, 1.2, 0.4]
        let hidden = zip(head.layers[0].weight, head.layers[0].bias).map { row, bias in max(0, zip(row, x).map(*).reduce(0, +) + bias) }
        let z = zip(head.layers[1].weight[0], hidden).map(*).reduce(0, +) + head.layers[1].bias[0]
        XCTAssertEqual(loaded.weight(base: [0.3, -0.7], thought: [1.2, 0.4]), 1 / (1 + exp(-Double(z))), accuracy: 1e-6)
    }

    func testLearnedHeadForAnotherModelIsRefused() throws {
        let head = LearnedMixingHead(layers: [.init(weight: [[1, 1, 1, 1]], bias: [0])], model: Self.smallModel)
        let path = try headFile(head)
        var other = Self.smallModel
        other["name"] = "bigger"
        XCTAssertThrowsError(try LearnedMixingHead(path: path, modelInfo: other)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("trained for tiny") && message.contains("runs bigger"), message)
        }
        var wider = Self.smallModel
        wider["embedding_width"] = 3
        XCTAssertThrowsError(try LearnedMixingHead(path: path, modelInfo: wider)) { error in
            XCTAssertTrue("\(error)".contains("embedding_width 2"), "\(error)")
        }
        XCTAssertThrowsError(try LearnedMixingHead(path: path + ".missing.json", modelInfo: Self.smallModel)) { error in
            XCTAssertTrue("\(error)".contains("no such readable file"), "\(error)")
        }
    }

    // MARK: through the daemon

    static let shared = SharedDaemon {
        try DaemonProcess(plugins: ["quiet-star", "quiet-rebase", "rebase", "greedy"], extraArguments: ["--plugin-config", "quiet-star.hidden_states=true",
                                                                                                  "--plugin-config", "quiet-rebase.hidden_states=true"],
                          prepare: { try CPlugin.compile("Tests/StrategyTests/Fixtures/hash_scorer.c", into: $0, name: "hash-scorer") })
    }
    static let problem = "Tom has 3 apples and buys 4 more. How many apples does he have?"

    func daemon() throws -> DaemonProcess { try Self.shared.get() }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    func solve(_ strategy: String, _ params: JSON, budget: JSON? = nil) throws -> JSON {
        var request: [String: JSON] = ["problem": .string(QuietStarTests.problem), "strategy": .string(strategy),
                                       "params": params, "seed": 3]
        if let budget { request["budget"] = budget }
        return try daemon().call("solve", .object(request))
    }

    func testZeroWeightReproducesPlainDecodingTokenForToken() throws {
        let greedy = try solve("greedy", ["max_tokens": 16])
        let quiet = try solve("quiet-star", ["max_tokens": 16, "mixing": "constant", "weight": 0, "thought_len": 2])
        XCTAssertEqual(quiet["text"], greedy["text"])
        XCTAssertEqual(quiet["details"]?["positions"], greedy["details"]?["tokens"])
        XCTAssertEqual(quiet["metrics"]?["generated_tokens"], greedy["metrics"]?["generated_tokens"],
                       "a token the plugin sampled counts as generated, evaluated or not")
        XCTAssertGreaterThan(quiet["metrics"]?["thought_tokens"]?.intValue ?? 0, 0, "it thought, and the thoughts changed nothing")
    }

    func testThoughtTokensAreCountedAndNeverInTheText() throws {
        let result = try solve("quiet-star", ["max_tokens": 8, "weight": 0.5, "thought_len": 3, "start_marker": "<think>",
                                              "end_marker": "</think>"])
        let metrics = try XCTUnwrap(result["metrics"]), details = try XCTUnwrap(result["details"])
        let positions = try XCTUnwrap(details["positions"]?.intValue)
        XCTAssertEqual(details["thought_positions"]?.intValue, positions, "when=always thinks at every position")
        // The host's count (what FLOPs are computed from) is the plugin's: every thought
        // token of every position, markers included, at least 3 sampled ones each.
        XCTAssertEqual(metrics["thought_tokens"], details["thought_tokens"])
        XCTAssertGreaterThanOrEqual(metrics["thought_tokens"]?.intValue ?? 0, positions * 4)
        let text = try XCTUnwrap(result["text"]?.stringValue)
        XCTAssertFalse(text.contains("<think>") || text.contains("</think>"), text)
        XCTAssertFalse((details["example_thoughts"]?.arrayValue ?? []).isEmpty)
        // Every thought token is evaluated, so in the FLOPs.
        XCTAssertGreaterThanOrEqual(metrics["evaluated_tokens"]?.intValue ?? 0,
                                    (metrics["prompt_tokens"]?.intValue ?? .max) + (metrics["thought_tokens"]?.intValue ?? .max))
        let plain = try solve("quiet-star", ["max_tokens": 8, "when": "entropy", "entropy_threshold": 20])
        XCTAssertEqual(plain["metrics"]?["thought_tokens"], 0)
        XCTAssertGreaterThan(metrics["flops"]?.doubleValue ?? 0, plain["metrics"]?["flops"]?.doubleValue ?? .infinity)
    }

    func testEntropyGateThinksOnlyWhereTheBaseEntropyIsHigh() throws {
        // weight 0: the text is the same whatever the gate, so positions line up.
        let all = try solve("quiet-star", ["max_tokens": 16, "weight": 0, "thought_len": 1, "trace": true])
        let entropies = try XCTUnwrap(all["details"]?["trace"]?.arrayValue?.first?.arrayValue).map { $0["entropy"]?.doubleValue ?? -1 }
        XCTAssertEqual(entropies.count, 16)
        let threshold = entropies.sorted()[entropies.count / 2]
        let gated = try solve("quiet-star", ["max_tokens": 16, "weight": 0, "thought_len": 1, "trace": true, "when": "entropy",
                                             "entropy_threshold": .double(threshold)])
        let trace = try XCTUnwrap(gated["details"]?["trace"]?.arrayValue?.first?.arrayValue)
        XCTAssertEqual(trace.count, entropies.count)
        let thoughtAt = trace.enumerated().filter { $0.element["weight"] != .null }.map(\.offset)
        let expected = trace.enumerated().filter { ($0.element["entropy"]?.doubleValue ?? 0) > threshold }.map(\.offset)
        XCTAssertEqual(thoughtAt, expected)
        XCTAssertFalse(expected.isEmpty)
        XCTAssertLessThan(expected.count, 16)
        XCTAssertEqual(gated["details"]?["thought_positions"]?.intValue, Int64(expected.count))
        // The thoughts were cheaper: only the gated positions paid for them.
        XCTAssertLessThan(gated["metrics"]?["thought_tokens"]?.intValue ?? .max, all["metrics"]?["thought_tokens"]?.intValue ?? 0)
    }

    func testVotesAreAMajority() throws {
        let result = try solve("quiet-star", ["max_tokens": 6, "votes": 3, "temperature": 0.9, "thought_len": 1])
        let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
        XCTAssertEqual(candidates.count, 3)
        XCTAssertEqual(result["details"]?["votes"], 3)
    }

    func testTeacherForcingReturnsTrainingFeatures() throws {
        let teacher = "He has 3 + 4 = 7 apples."
        let result = try solve("quiet-star", ["teacher": .string(teacher), "thought_len": 2])
        let features = try XCTUnwrap(result["details"]?["features"]?.arrayValue)
        let width = try XCTUnwrap(daemon().call("models.info")["embedding_width"]?.intValue)
        XCTAssertEqual(Int64(features.count), result["details"]?["teacher_tokens"]?.intValue)
        XCTAssertEqual(result["text"]?.stringValue, teacher, "the teacher's tokens, not sampled ones")
        for feature in features {
            XCTAssertEqual(Int64(feature["h_base"]?.arrayValue?.count ?? 0), width)
            XCTAssertEqual(Int64(feature["h_thought"]?.arrayValue?.count ?? 0), width)
            XCTAssertLessThanOrEqual(feature["logp_base"]?.doubleValue ?? 1, 0)
            XCTAssertLessThanOrEqual(feature["logp_thought"]?.doubleValue ?? 1, 0)
        }
    }

    func testLearnedHeadLoadsForThisModelAndIsRefusedForAnother() throws {
        let info = try daemon().call("models.info")
        let width = Int(try XCTUnwrap(info["embedding_width"]?.intValue))
        var model: [String: Any] = [:]
        for key in LearnedMixingHead.modelKeys {
            switch info[key] {
            case .string(let value)?: model[key] = value
            case let value?: model[key] = value.intValue.map(Int.init) ?? 0
            case nil: break
            }
        }
        // Heads are read from the plugin's heads_dir setting only (default: heads/ in the plugin folder).
        let heads = try daemon().pluginDirectory.appendingPathComponent("heads")
        try FileManager.default.createDirectory(at: heads, withIntermediateDirectories: true)
        let quietStar = try daemon().call("plugins.list").arrayValue?.first { $0["name"] == "quiet-star" }
        XCTAssertEqual(quietStar?["settings"]?["heads_dir"]?.stringValue, heads.path)
        func install(_ head: LearnedMixingHead, as name: String) throws {
            try JSONSerialization.data(withJSONObject: head.json).write(to: heads.appendingPathComponent(name))
        }
        let head = LearnedMixingHead(layers: [.init(weight: [[Float]](repeating: [Float](repeating: 0.001, count: 2 * width), count: 1),
                                                    bias: [0])], model: model)
        try install(head, as: "this-model.json")
        let result = try solve("quiet-star", ["max_tokens": 4, "mixing": "learned", "head": "this-model.json", "thought_len": 1])
        XCTAssertEqual(result["details"]?["settings"]?["head"]?["kind"], "learned")
        XCTAssertGreaterThan(result["details"]?["mean_weight"]?.doubleValue ?? 0, 0)

        // A path is refused before anything is read, even to a good head file.
        for path in [heads.appendingPathComponent("this-model.json").path, "../heads/this-model.json"] {
            XCTAssertThrowsError(try solve("quiet-star", ["max_tokens": 4, "mixing": "learned", "head": .string(path)])) { error in
                XCTAssertTrue("\(error)".contains("no path"), "\(error)")
            }
        }

        model["name"] = "some-other-model"
        try install(LearnedMixingHead(layers: head.layers, model: model), as: "other-model.json")
        XCTAssertThrowsError(try solve("quiet-star", ["max_tokens": 4, "mixing": "learned", "head": "other-model.json"])) { error in
            XCTAssertTrue("\(error)".contains("trained for some-other-model"), "\(error)")
        }
        XCTAssertThrowsError(try solve("quiet-star", ["max_tokens": 4, "mixing": "learned"])) { error in
            XCTAssertTrue("\(error)".contains("needs the param `head`"), "\(error)")
        }
    }

    // MARK: quiet-rebase

    func testZeroWeightStepsEndAtTheStopLikeREBASEs() throws {
        // Steps of one word: the thought decoder's stop check must cut every step where
        // the engine's does, so with w = 0 and argmax decoding the trees are the same.
        let search: JSON = ["width": 1, "temperature": 0, "stop": " ", "max_step_tokens": 6, "max_tokens": 14,
                            "scorer": "hash-scorer"]
        var quietParams = search.objectValue!
        quietParams.merge(["mixing": "constant", "weight": 0, "thought_len": 2]) { $1 }
        let plain = try solve("rebase", search)
        let quiet = try solve("quiet-rebase", .object(quietParams))
        let depth = try XCTUnwrap(plain["details"]?["rounds"]?.arrayValue?.count)
        XCTAssertGreaterThan(depth, 2, "several one-word steps: \(plain.serialized())")
        XCTAssertEqual(quiet["details"]?["rounds"]?.arrayValue?.count, depth)
        XCTAssertEqual(quiet["text"], plain["text"])
        XCTAssertGreaterThan(quiet["metrics"]?["thought_tokens"]?.intValue ?? 0, 0)
    }

    func testQuietRebaseIsWellFormedConservesWidthAndThinks() throws {
        let width = 3
        for variant in ["faithful", "gated", "anchored"] {
            let result = try solve("quiet-rebase", ["width": JSON(width), "max_step_tokens": 4, "max_tokens": 8, "scorer": "hash-scorer",
                                                    "thought_len": 2, "variant": .string(variant), "entropy_threshold": 0])
            let details = try XCTUnwrap(result["details"])
            let candidates = try XCTUnwrap(result["candidates"]?.arrayValue)
            XCTAssertFalse(candidates.isEmpty)
            XCTAssertEqual(details["partial"], false, "8 tokens end every path")
            XCTAssertEqual(details["finished"]?.intValue, Int64(candidates.count))
            var finishedBefore: Int64 = 0
            for round in try XCTUnwrap(details["rounds"]?.arrayValue) {
                XCTAssertEqual((round["children"]?.intValue ?? 0) + finishedBefore, Int64(width), round.serialized())
                finishedBefore += round["finished"]?.intValue ?? 0
            }
            XCTAssertEqual(details["variant"]?.stringValue, variant)
            XCTAssertEqual(details["thinking"]?["thought_tokens"], result["metrics"]?["thought_tokens"], variant)
            XCTAssertGreaterThan(result["metrics"]?["thought_tokens"]?.intValue ?? 0, 0, variant)
            for candidate in candidates {
                XCTAssertFalse(candidate["text"]?.stringValue?.contains("<think>") ?? true)
            }
        }
        // anchored: only the anchor thinks, at most at every position of its one path.
        let anchored = try solve("quiet-rebase", ["width": 3, "max_step_tokens": 4, "max_tokens": 8, "scorer": "hash-scorer",
                                                  "thought_len": 2, "variant": "anchored", "entropy_threshold": 0])
        let thinking = try XCTUnwrap(anchored["details"]?["thinking"])
        XCTAssertEqual(thinking["thought_positions"], thinking["positions"], "a threshold of 0: it thinks everywhere")
        XCTAssertLessThanOrEqual(thinking["positions"]?.intValue ?? 99, 8, "one path of at most 8 tokens: \(thinking.serialized())")
        XCTAssertLessThan(thinking["positions"]?.intValue ?? 99, anchored["metrics"]?["generated_tokens"]?.intValue ?? 0,
                          "the other paths decode without thoughts")
        let anchorText = try XCTUnwrap(anchored["details"]?["anchor"]?["text"]?.stringValue)
        XCTAssertTrue(anchored["candidates"]?.arrayValue?.contains { $0["text"]?.stringValue == anchorText } ?? false,
                      "the anchor's solution is one of the candidates")

        // anchor_weight: with best_of_n selection, a large weight makes the anchor the
        // choice and a zero weight makes it lose to any path scored above 0.
        for (weight, chosen) in [(256.0, true), (0.0, false)] {
            let result = try solve("quiet-rebase", ["width": 3, "max_step_tokens": 4, "max_tokens": 8, "scorer": "hash-scorer",
                                                    "thought_len": 2, "variant": "anchored", "selection": "best_of_n",
                                                    "anchor_weight": JSON(weight)])
            let anchor = try XCTUnwrap(result["details"]?["anchor"])
            XCTAssertGreaterThan(anchor["score"]?.doubleValue ?? 0, 0, "hash scores are almost never 0: \(anchor.serialized())")
            XCTAssertEqual(result["text"] == anchor["text"], chosen, "anchor_weight \(weight): \(result.serialized())")
        }

        // gated with a threshold no position reaches: plain REBASE, no thought at all.
        let plain = try solve("quiet-rebase", ["width": 2, "max_step_tokens": 4, "max_tokens": 8, "scorer": "hash-scorer",
                                               "variant": "gated", "entropy_threshold": 20])
        XCTAssertEqual(plain["metrics"]?["thought_tokens"], 0)
        XCTAssertEqual(plain["details"]?["settings"]?["when"], "entropy")
    }
}
