import Foundation
import StrategyKit

/// REBASE whose steps are decoded with Quiet-STaR thought mixing: the combined condition
/// of arXiv 2412.16260 (variant "faithful": thoughts wherever `when` says, every path of
/// every depth).
///
/// That paper found the combination worse than either part. Mixing at every token perturbs
/// tokens the model was already sure of (digits, the arithmetic it copies along) with an
/// untrained head, the scorer then ranks those noisier steps, and REBASE's pruning discards
/// the paths that could have recovered — while every thought multiplies the cost of every
/// child. Variant "gated" keeps the thoughts where the model hesitates: only at positions
/// whose base next-token entropy exceeds `entropy_threshold`, with w rising with that
/// entropy (the entropy head, `weight` at most). Measured on GSM8K train it still degrades
/// (docs/results/thought-mixing-gsm8k-train): steps sampled at temperature 1 cross the
/// gate about three times as often as a greedy decoding does, and the mixed, sampled
/// tokens push paths to answer early.
///
/// Variant "anchored" takes the thinking budget from the width instead. One path of the
/// width, the anchor, is decoded as the measured-best quiet-star decodes: argmax of the
/// entropy-gated mixture. The other paths are REBASE's own, sampled plainly (no thought
/// perturbs a sampled token). The anchor is never pruned; scored like every path, it also
/// competes for the rest of the width, so when its steps score well REBASE samples
/// alternatives from its prefixes. The weighted vote sees every solution, an answer tie
/// goes to the anchor's, and `anchor_weight` says how many paths its vote is worth (with
/// an uninformative scorer, sampled paths that agree on a wrong answer outvote it).
/// Thoughts cost one path's worth, not the width's.
struct QuietRebase: Strategy {
    static let name = "quiet-rebase"
    static let version = "1.4.0"
    static let description = "REBASE with Quiet-STaR thought mixing: in every step (faithful, gated) or on one anchor path (anchored)"
    static let settings = ThoughtSettings.settings
    static func configure(_ settings: Params, host: HostResources) throws { try ThoughtSettings.configure(settings, host: host) }
    static let params: [Param] = RebaseSearch.params + ThoughtSettings.params + [
        .choice("variant", "faithful", ["faithful", "gated", "anchored"],
                "faithful: thoughts as `when` and `mixing` say in every step (the paper's combination); gated: thoughts only where the base entropy exceeds entropy_threshold, w from the entropy head; anchored: one path decoded greedily with gated thoughts, the rest plain REBASE"),
        .number("anchor_weight", 1, 0...256, "variant=anchored: the anchor's score counts this many times in the final vote (1: like any path)"),
    ]

    init() {}

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        var settings = try ThoughtSettings(params: params, request: request)
        let variant = params.string("variant")
        if variant != "faithful" {
            settings.when = .entropy
            if !settings.head.needsHiddenStates {
                settings.head = .entropyGated(weight: params.double("weight"), low: params.double("entropy_low"),
                                              high: params.double("entropy_high"))
            }
        }
        let decoder = QuietDecoder(request: request, settings: settings)
        var thinking = ThoughtStats()
        let thinkingSteps: RebaseSearch.StepGenerator = { sequences, maxTokens, stop, sampling in
            let steps = try decoder.generate(sequences, maxTokens: maxTokens, stop: stop, sampling: sampling)
            steps.forEach { thinking.add($0.stats) }
            return steps.map(\.generated)
        }
        var solution: Solution
        if variant == "anchored" {
            let logprobs = request.scorerReadsLogprobs(params.string("scorer"), params: params.object("scorer_params"))
            let anchorSteps: RebaseSearch.StepGenerator = { sequences, maxTokens, stop, sampling in
                var argmax = sampling
                argmax.temperature = 0
                return try thinkingSteps(sequences, maxTokens, stop, argmax)
            }
            solution = try RebaseSearch.solve(request, problem: problem, params: params, anchorSteps: anchorSteps,
                                              anchorWeight: params.double("anchor_weight")) { sequences, maxTokens, stop, sampling in
                try request.generate(sequences, maxTokens: maxTokens, stop: stop, sampling: sampling, logprobs: logprobs)
            }
        } else {
            solution = try RebaseSearch.solve(request, problem: problem, params: params, generateSteps: thinkingSteps)
        }
        solution.details["variant"] = variant
        solution.details["settings"] = settings.summary
        solution.details["thinking"] = thinking.summary
        return solution
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(QuietRebase.self) }
