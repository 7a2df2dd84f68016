import Foundation
import StrategyKit

/// auto: solves with the strategy that is best for this model at the request's budget.
/// It reads the calibration file its administrator configured (the `calibration` setting;
/// written by `strategyd-bench calibrate RUN.jsonl...` from the user's own runs): for each
/// model, by sha256, each spec's accuracy and mean FLOPs per problem, which are on the
/// compute-optimal frontier, and each problem's FLOPs and outcome. `budget.max_flops` caps every solve, so under it auto runs the
/// spec that solved the most calibration problems within that cap, counting a solve the cap
/// would have cut as wrong (the cheapest when none fits); with `target_accuracy`, the
/// cheapest frontier spec that reaches it (the most accurate when none does); with
/// neither, the most accurate. Without a calibration file, or with one for other models only, it says so and
/// climbs a default ladder by the budget (docs/strategies.md). `details.chosen` says what
/// it ran and why; the chosen strategy's own details follow.
struct Auto: Strategy {
    static let name = "auto"
    static let version = "1.1.0"
    static let description = "auto: the compute-optimal strategy for this model at the request's FLOPs budget, from a calibration of the user's runs"
    static let settings: [Param] = [
        .path("calibration", "calibration.json",
              "the calibration file strategyd-bench calibrate wrote, relative to the plugin folder (absent: the default ladder)"),
    ]
    static let params: [Param] = [
        .number("target_accuracy", 0, 0...1, "the cheapest calibrated spec reaching this accuracy (0: choose by budget.max_flops)"),
    ]

    /// Without a calibration: rungs by multiples of a greedy solve's FLOPs, estimated as
    /// 2 x the model's non-embedding parameters x 400 tokens (a GSM8K prompt and solution).
    static var ladder: [(multiple: Double, strategy: String, params: [String: Any])] {
        [
            (1, "greedy", [:]),
            (3, "self-consistency", ["n": 4, "adaptive": true, "stop_rule": "beta"]),
            (6, "self-consistency", ["n": 8, "adaptive": true, "stop_rule": "beta"]),
            (12, "self-consistency", ["n": 16, "adaptive": true, "stop_rule": "beta"]),
        ]
    }

    init() {}

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        let budget = try request.budget()
        let model = request.modelInfo
        let sha256 = model["sha256"] as? String
        let target = params.double("target_accuracy")
        let choice = try Self.choose(calibrationPath: request.settings.string("calibration"), sha256: sha256,
                                     nonEmbeddingParameters: (model["non_embedding_parameters"] as? NSNumber)?.doubleValue ?? 0,
                                     maxFlops: budget.maxFlops, targetAccuracy: target > 0 ? target : nil)
        request.progress(["event": "step", "phase": "chosen", "chosen": choice.summary])
        let result = try request.solve(with: choice.strategy, params: choice.params)
        return Solution(result: result, details: ["chosen": choice.summary])
    }

    struct Choice {
        var strategy: String
        var params: [String: Any]
        var summary: [String: Any]
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// What to run, and why: pure, so that the tests can hold it to a calibration file.
    static func choose(calibrationPath: String, sha256: String?, nonEmbeddingParameters: Double,
                       maxFlops: Double?, targetAccuracy: Double?) throws -> Choice {
        var refusal = "no calibration file at \(calibrationPath)"
        if FileManager.default.fileExists(atPath: calibrationPath) {
            let calibration = try Calibration.load(calibrationPath)
            if let sha256, let entry = calibration.models.first(where: { $0.sha256 == sha256 }) {
                return try entry.choose(maxFlops: maxFlops, targetAccuracy: targetAccuracy, file: calibrationPath)
            }
            let others = calibration.models.map { "\($0.name) (\($0.sha256.prefix(12)))" }.joined(separator: ", ")
            refusal = "the calibration \(calibrationPath) is for \(others.isEmpty ? "no model" : others), not this model (\(sha256.map { String($0.prefix(12)) } ?? "sha256 unknown"))"
        }
        let greedy = 2 * nonEmbeddingParameters * 400
        var rung = ladder[0]
        if let maxFlops, greedy > 0 {
            rung = ladder.last { $0.multiple * greedy <= maxFlops } ?? ladder[0]
        } else if maxFlops == nil {
            rung = targetAccuracy == nil ? ladder[0] : ladder[ladder.count - 1]
        }
        return Choice(strategy: rung.strategy, params: rung.params, summary: [
            "strategy": rung.strategy, "params": rung.params, "calibrated": false,
            "why": "\(refusal): the default ladder, rung \(Int(rung.multiple))x a greedy solve's estimated \(String(format: "%.3g", greedy)) FLOPs"
                + (maxFlops.map { " under max_flops \(String(format: "%.3g", $0))" } ?? ""),
        ])
    }
}

/// The file `strategyd-bench calibrate` writes (docs/strategies.md, "auto").
struct Calibration: Decodable {
    struct Spec: Decodable {
        var spec: String
        var strategy: String
        var params: [String: JSONValue]
        /// The budget it was measured under, if its own (auto does not choose those).
        var budget: [String: JSONValue]?
        var problems: Int
        var accuracy: Double
        var meanFlops: Double
        var frontier: Bool
        /// Each calibration problem's FLOPs and outcome; absent in files from before they were written.
        var solves: [Solve]?

        /// How many of its calibration problems it solved within `maxFlops` FLOPs, of how many.
        func solved(within maxFlops: Double) -> (solved: Int, of: Int)? {
            guard let solves, !solves.isEmpty else { return nil }
            return (solves.filter { $0.correct && $0.flops <= maxFlops }.count, solves.count)
        }
    }

    struct Solve: Decodable {
        var flops: Double
        var correct: Bool
    }

    struct Model: Decodable {
        var name: String
        var sha256: String
        var dataset: String
        var specs: [Spec]

        func choose(maxFlops: Double?, targetAccuracy: Double?, file: String) throws -> Auto.Choice {
            // Figures measured under a spec's own budget hold only there, and auto never runs itself.
            let choosable = specs.filter { ($0.budget ?? [:]).isEmpty && $0.strategy != Auto.name }
            let frontier = choosable.filter(\.frontier).sorted { $0.meanFlops < $1.meanFlops }
            guard let cheapest = frontier.first, let best = frontier.last else {
                throw Auto.Failure(description: "the calibration \(file) has no frontier for \(name)")
            }
            // What each spec solved under the cap; nil for a file without per-problem FLOPs.
            let capped: [(spec: Spec, solved: Int, of: Int)]? = maxFlops.flatMap { cap in
                let counts = choosable.compactMap { spec in spec.solved(within: cap).map { (spec, $0.solved, $0.of) } }
                return counts.count == choosable.count ? counts : nil
            }
            let picked: Spec
            let why: String
            var withinBudget: Double?
            if let targetAccuracy {
                if let spec = frontier.first(where: { $0.accuracy >= targetAccuracy }) {
                    (picked, why) = (spec, "the cheapest frontier spec reaching accuracy \(targetAccuracy)")
                } else {
                    (picked, why) = (best, "no frontier spec reaches accuracy \(targetAccuracy): the most accurate")
                }
            } else if let maxFlops, let capped {
                // max_flops ends every solve that reaches it, so a spec whose mean fits can still
                // lose its dearer solves, often the ones it gets right: judge each by what it
                // solved under the cap.
                let share = { (count: (spec: Spec, solved: Int, of: Int)) in Double(count.solved) / Double(count.of) }
                let top = capped.min { share($0) != share($1) ? share($0) > share($1) : $0.spec.meanFlops < $1.spec.meanFlops }
                if let top, top.solved > 0 {
                    (picked, withinBudget) = (top.spec, share(top))
                    why = "the spec that solved the most calibration problems within max_flops \(String(format: "%.3g", maxFlops))"
                        + " (\(top.solved) of \(top.of); a solve the cap would end counts as wrong)"
                } else {
                    (picked, why) = (cheapest, "no calibration problem was solved within max_flops \(String(format: "%.3g", maxFlops)): the cheapest")
                }
            } else if let maxFlops {
                // A calibration without per-problem FLOPs: by the mean.
                if let spec = frontier.last(where: { $0.meanFlops <= maxFlops }) {
                    (picked, why) = (spec, "the most accurate frontier spec whose mean FLOPs fit max_flops \(String(format: "%.3g", maxFlops))")
                } else {
                    (picked, why) = (cheapest, "no frontier spec fits max_flops \(String(format: "%.3g", maxFlops)): the cheapest")
                }
            } else {
                (picked, why) = (best, "no max_flops and no target_accuracy: the most accurate frontier spec")
            }
            var summary: [String: Any] = [
                "spec": picked.spec, "strategy": picked.strategy, "params": picked.params.mapValues(\.any), "calibrated": true,
                "accuracy": picked.accuracy, "mean_flops": picked.meanFlops, "problems": picked.problems,
                "dataset": dataset, "why": why,
            ]
            if let withinBudget { summary["accuracy_within_budget"] = withinBudget }
            return Auto.Choice(strategy: picked.strategy, params: picked.params.mapValues(\.any), summary: summary)
        }
    }

    var format: String
    var models: [Model]

    static let format = "strategyd-calibration/1"

    static func load(_ path: String) throws -> Calibration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Auto.Failure(description: "the calibration file \(path) cannot be read")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let calibration: Calibration
        do {
            calibration = try decoder.decode(Calibration.self, from: data)
        } catch {
            throw Auto.Failure(description: "the calibration file \(path) is not a calibration: \(error)")
        }
        guard calibration.format == format else {
            throw Auto.Failure(description: "the calibration file \(path) has format \(calibration.format), expected \(format)")
        }
        return calibration
    }
}

/// A param value as the calibration file holds it.
enum JSONValue: Decodable {
    case bool(Bool), integer(Int), number(Double), string(String)

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .integer(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else { self = .string(try container.decode(String.self)) }
    }

    var any: Any {
        switch self {
        case .bool(let value): return value
        case .integer(let value): return value
        case .number(let value): return value
        case .string(let value): return value
        }
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(Auto.self) }
