import Foundation
import StrategyKit

/// The policy's own confidence in the last step of a solution: exp of the mean
/// log-probability of the step's tokens, given the problem and the earlier steps.
///
/// The prompt and the earlier steps are what the strategy's own sequence holds, so the
/// host lends their KV cells instead of evaluating them again; the step is then
/// teacher-forced in one batch with an output at every position -- or, when the strategy
/// sampled it with logprobs, read from the strategy's sequence at no cost.
struct LogProb: Scorer {
    static let name = "logprob"
    static let version = "1.1.0"
    static let description = "The policy's confidence in the last step: exp(mean token log-probability) given the problem and earlier steps"
    static let params: [Param] = [
        .integer("max_step_tokens", 256, 1...4096, "tokens of the last step scored, from its start"),
        .boolean("system_prompt", true, "condition on the system prompt the built-in strategies solve with"),
    ]

    init() {}

    func readsLogprobs(_ request: Request, params: Params) -> Bool { true }

    func score(_ request: Request, problem: String, solution: String, params: Params) throws -> Double {
        let (earlier, step) = LogProb.split(solution)
        guard !step.isEmpty else { throw PluginFailure("logprob scorer: the solution has no step to score") }
        // Tokenize the whole solution once and take the tokens it shares with the earlier
        // steps as context, so the step boundary is tokenized as in the full text.
        let tokens = try request.tokenize(earlier + step)
        let context = zip(tokens, try request.tokenize(earlier)).prefix { $0 == $1 }.count
        let stepTokens = tokens[context...].prefix(params.int("max_step_tokens"))
        guard !stepTokens.isEmpty else { throw PluginFailure("logprob scorer: the last step has no tokens") }

        let sequence = try request.chat(system: params.bool("system_prompt") ? Prompts.system : nil, user: problem,
                                        assistantPrefix: try request.detokenize(Array(tokens[..<context])))
        // A strategy scores many nodes in one request: give the sequence back at once.
        defer { request.free(sequence) }
        let logprobs = try request.appendScored(sequence, tokens: Array(stepTokens), kind: .scorer)
        return exp(logprobs.reduce(0.0) { $0 + Double($1) } / Double(logprobs.count))
    }

    /// The text before the last step (ending in its blank line) and the last step.
    static func split(_ solution: String) -> (earlier: String, step: String) {
        let body = String(solution.reversed().drop { $0.isWhitespace }.reversed())
        guard let boundary = body.range(of: "\n\n", options: .backwards) else { return ("", body) }
        return (String(body[..<boundary.upperBound]), String(body[boundary.upperBound...]))
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(LogProb.self) }
