import Foundation
import StrategyKit

/// The resident model judges a (possibly partial) solution: shown the problem, the steps
/// so far and a yes-or-no question, how likely its answer starts with "Yes" rather than "No".
///
/// `prompt` = inline asks the question right after the steps, in the solving turn the
/// strategies use (their system prompt, the problem, the steps): that prefix is what a
/// live sequence of the strategy holds, so the host lends its KV cells and a score costs
/// the question's few tokens. `prompt` = fresh asks in a new conversation that quotes the
/// problem and the steps: a judge that did not write them, at the price of the whole text.
struct SelfEval: Scorer {
    static let name = "self-eval"
    static let version = "1.0.0"
    static let description = "The resident model judges the solution so far: P(Yes) after a verification question"
    static let params: [Param] = [
        .choice("question", "correct", Array(questions.keys).sorted(),
                "what the model is asked: whether every step is correct, or whether the solution is on track to the right answer"),
        .boolean("normalize", true, "score P(Yes) / (P(Yes) + P(No)); off: the raw probability of Yes"),
        .choice("prompt", "inline", ["inline", "fresh"],
                "inline: the question follows the steps in the solving turn (reuses the strategy's cached prefix); fresh: a new conversation quotes problem and steps"),
    ]

    static let questions = [
        "correct": "Is every step above correct? Answer Yes or No.",
        "on-track": "Will the solution above lead to the correct answer? Answer Yes or No.",
    ]
    // The answer may start with or without a space, depending on the chat template.
    static let yes = ["Yes", " Yes"]
    static let no = ["No", " No"]

    init() {}

    func score(_ request: Request, problem: String, solution: String, params: Params) throws -> Double {
        let question = SelfEval.questions[params.string("question")] ?? SelfEval.questions["correct"]!
        let sequence = params.string("prompt") == "fresh"
            ? try request.chat(user: "Problem:\n\(problem)\n\nSolution so far:\n\(solution)\n\n\(question)")
            : try request.chat(system: Prompts.system, user: problem,
                               assistantPrefix: SelfEval.inline(solution: solution, question: question))
        // A strategy scores many nodes in one request: give the sequence back at once.
        defer { request.free(sequence) }
        let vocabularySize = (request.modelInfo["vocabulary_size"] as? NSNumber)?.intValue ?? 0
        let logits = try request.logits(sequence, vocabularySize: vocabularySize).map(Double.init)
        let yes = try firstTokens(of: SelfEval.yes, request).map { logits[Int($0)] }
        let no = try firstTokens(of: SelfEval.no, request).map { logits[Int($0)] }
        // Probabilities relative to a common reference cancel in the ratio; the raw
        // probability needs the whole distribution.
        let reference = params.bool("normalize") ? (yes + no).max()! : logSumExp(logits)
        let yesMass = yes.reduce(0) { $0 + exp($1 - reference) }
        guard params.bool("normalize") else { return min(yesMass, 1) }
        return yesMass / (yesMass + no.reduce(0) { $0 + exp($1 - reference) })
    }

    /// The steps, then the question and the start of the answer, in the solver's voice.
    static func inline(solution: String, question: String) -> String {
        let body = String(solution.reversed().drop { $0.isWhitespace }.reversed())
        return body + "\n\nCheck: \(question)\nAnswer:"
    }

    /// The distinct first tokens of the spellings of one answer.
    private func firstTokens(of spellings: [String], _ request: Request) throws -> Set<Int32> {
        Set(try spellings.compactMap { try request.tokenize($0).first })
    }

    private func logSumExp(_ values: [Double]) -> Double {
        let top = values.max() ?? 0
        return top + log(values.reduce(0) { $0 + exp($1 - top) })
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(SelfEval.self) }
