import Foundation
import StrategyKit

/// REBASE whose steps are decoded with Quiet-STaR thought mixing: the paper's combined
/// condition (variant "faithful": thoughts wherever `when` says, every path of every depth).
///
/// The paper found the combination worse than either part. Mixing at every token perturbs
/// tokens the model was already sure of (digits, the arithmetic it copies along) with an
/// untrained head, the scorer then ranks those noisier steps, and REBASE's pruning discards
/// the paths that could have recovered — while every thought multiplies the cost of every
/// child. Variant "gated" keeps the thoughts where they can help: only at positions whose
/// base next-token entropy exceeds `entropy_threshold` (where the model hesitates between
/// continuations), with w rising with that entropy (the entropy head, `weight` at most).
/// Confident tokens are decoded as plain REBASE decodes them, so the search keeps REBASE's
/// step quality, and the thinking costs a small share of the faithful variant's tokens.
struct QuietRebase: Strategy {
    static let name = "quiet-rebase"
    static let version = "1.1.0"
    static let description = "REBASE with Quiet-STaR thought mixing in its steps: faithful, or gated by entropy"
    static let params: [Param] = RebaseSearch.params + ThoughtSettings.params + [
        .choice("variant", "faithful", ["faithful", "gated"],
                "faithful: thoughts as `when` and `mixing` say (the paper's combination); gated: thoughts only where the base entropy exceeds entropy_threshold, w from the entropy head"),
    ]

    init() {}

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        var settings = try ThoughtSettings(params: params, request: request)
        let variant = params.string("variant")
        if variant == "gated" {
            settings.when = .entropy
            if !settings.head.needsHiddenStates {
                settings.head = .entropyGated(weight: params.double("weight"), low: params.double("entropy_low"),
                                              high: params.double("entropy_high"))
            }
        }
        let decoder = QuietDecoder(request: request, settings: settings)
        var thinking = ThoughtStats()
        var solution = try RebaseSearch.solve(request, problem: problem, params: params) { sequences, maxTokens, stop, sampling in
            let steps = try decoder.generate(sequences, maxTokens: maxTokens, stop: stop, sampling: sampling)
            steps.forEach { thinking.add($0.stats) }
            return steps.map(\.generated)
        }
        solution.details["variant"] = variant
        solution.details["settings"] = settings.summary
        solution.details["thinking"] = thinking.summary
        return solution
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(QuietRebase.self) }
