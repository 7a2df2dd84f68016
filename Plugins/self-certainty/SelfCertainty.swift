import Foundation
import StrategyKit

/// Self-certainty (Kang et al. 2025, "Scalable Best-of-N Selection for Large Language
/// Models via Self-Certainty"): how far the policy's next-token distributions over a
/// solution sit from uniform, KL(uniform || p) averaged over the solution's tokens. It ranks
/// samples like a reward model, with no reward model: the solution is teacher-forced after
/// the problem in one batch, every position an output. The score is s / (s + scale), in
/// [0, 1) and increasing in s, so that best-of-n, beam search and REBASE can read it as a
/// reward; `scale` sets where it reaches one half. A strategy that asks (reads_logprobs)
/// samples with logprobs, and the engine keeps each sampled token's signals: the scorer then
/// reads them instead of evaluating the solution again, where its tokens are the ones sampled
/// after the same prompt.
struct SelfCertainty: Scorer {
    static let name = "self-certainty"
    static let version = "1.1.0"
    static let description = "Self-certainty: mean KL(uniform || p) of the policy over the solution's tokens, as a score in [0, 1)"
    static let params: [Param] = [
        .integer("max_tokens", 1024, 1...8192, "tokens of the solution scored, from its start"),
        .number("scale", 10, 0.001...1000, "the self-certainty that scores one half"),
        .boolean("system_prompt", true, "condition on the system prompt the built-in strategies solve with"),
    ]

    init() {}

    func readsLogprobs(_ request: Request, params: Params) -> Bool { true }

    func score(_ request: Request, problem: String, solution: String, params: Params) throws -> Double {
        let tokens = Array(try request.tokenize(solution).prefix(params.int("max_tokens")))
        guard !tokens.isEmpty else { throw PluginFailure("self-certainty scorer: the solution has no tokens") }
        let sequence = try request.chat(system: params.bool("system_prompt") ? Prompts.system : nil, user: problem)
        // A strategy scores many solutions in one request: give the sequence back at once.
        defer { request.free(sequence) }
        let signals = try request.appendWithSignals(sequence, tokens: tokens, kind: .scorer, signals: SignalParams(topK: 1, window: 1))
        let certainty = TraceConfidence.mean(signals.certainty)
        return certainty / (certainty + params.double("scale"))
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(SelfCertainty.self) }
