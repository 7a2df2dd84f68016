import StrategyKit

/// REBASE (Wu et al. 2024): a reward-balanced tree search, steps sampled plainly. The
/// search loop is StrategyKit's RebaseSearch (shared with quiet-rebase); the allocation and
/// the tree bookkeeping live in StrategyKit/Rebase.swift.
struct Rebase: Strategy {
    static let name = "rebase"
    static let version = "1.3.0"
    static let description = "REBASE: reward-balanced tree search over steps, children forked from their parent's KV"
    static let params = RebaseSearch.params

    init() {}

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        let logprobs = request.scorerReadsLogprobs(params.string("scorer"), params: params.object("scorer_params"))
        return try RebaseSearch.solve(request, problem: problem, params: params) { sequences, maxTokens, stop, sampling in
            try request.generate(sequences, maxTokens: maxTokens, stop: stop, sampling: sampling, logprobs: logprobs)
        }
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(Rebase.self) }
