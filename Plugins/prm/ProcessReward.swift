import Foundation
import StrategyKit

/// A Math-Shepherd-style process reward model (the plugin's `model` setting) judges the
/// last step: the input is the problem and the steps, each followed by the step tag, and
/// the score is the probability of the good token rather than the bad one after the
/// last tag.
struct ProcessReward: Scorer {
    static let name = "prm"
    static let version = "1.1.0"
    static let description = "Math-Shepherd-style process reward model (its model setting): P(good) at the last step's tag"
    static let settings: [Param] = [
        .string("model", "", "the reward model, resident beside the policy: a catalog name or a GGUF path (empty: none)"),
    ]
    static let params: [Param] = [
        .string("step_tag", " ки", "written after each step; the model judges a step at its tag (Math-Shepherd's tag)"),
        .string("good_token", "+", "the token that marks a good step"),
        .string("bad_token", "-", "the token that marks a bad step"),
    ]

    init() {}

    static func configure(_ settings: Params, host: HostResources) throws {
        let model = settings.string("model")
        if !model.isEmpty { try host.loadRewardModel(model) }
    }

    func score(_ request: Request, problem: String, solution: String, params: Params) throws -> Double {
        guard request.modelInfo["reward_model"] is [String: Any] else {
            throw PluginFailure("prm scorer: no reward model is resident: set the prm plugin's model setting (--plugin-config prm.model=NAME)")
        }
        let tag = params.string("step_tag"), good = params.string("good_token"), bad = params.string("bad_token")
        guard !tag.isEmpty, !good.isEmpty, !bad.isEmpty, good != bad else {
            throw PluginFailure("prm scorer: step_tag, good_token and bad_token must be non-empty, and the tokens different")
        }
        let steps = solution.components(separatedBy: "\n\n")
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .filter { !$0.isEmpty }
        guard !steps.isEmpty else { throw PluginFailure("prm scorer: the solution has no step to score") }
        // Math-Shepherd's input: "question step 1 ки\nstep 2 ки".
        let text = problem + " " + steps.map { $0 + tag }.joined(separator: "\n")
        let logprobs = try request.nextTokenLogprobs(.reward, text: text, candidates: [good, bad])
        let top = logprobs.max()!
        let goodMass = exp(logprobs[0] - top), badMass = exp(logprobs[1] - top)
        return goodMass / (goodMass + badMass)
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(ProcessReward.self) }
