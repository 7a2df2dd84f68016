import Foundation
import StrategyKit

/// CoT-decoding (Wang & Zhou 2024, "Chain-of-Thought Reasoning Without Prompting"): branch
/// on the k likeliest first tokens, continue each branch greedily, and trust the branch whose
/// answer the model states most decisively: the mean margin p(first) - p(second) over the
/// tokens that spell the final answer. `select` = max takes that branch; aggregate sums the
/// margins per answer (the paper's weighted aggregation) through the host's vote.
struct CoTDecoding: Strategy {
    static let name = "cot-decoding"
    static let version = "1.2.0"
    static let description = "CoT-decoding: top-k first tokens, greedy continuations, the answer their answer-token margins favour"
    static let params: [Param] = [
        .integer("k", 10, 1...64, "first tokens to branch on (k + 1 sequences must fit the daemon's --max-width)"),
        // aggregate: chosen on GSM8K train (docs/results/answer-selection-gsm8k-train).
        .choice("select", "aggregate", ["max", "aggregate"], "max: the branch with the largest margin; aggregate: the answer whose branches' margins sum highest"),
        .integer("max_tokens", 512, 2...4096, "tokens per branch"),
    ]

    init() {}

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        let k = params.int("k")
        let vocabularySize = (request.modelInfo["vocabulary_size"] as? NSNumber)?.intValue ?? 0
        let prompt = try request.chat(system: Prompts.system, user: problem)
        let logits = try request.logits(prompt, vocabularySize: vocabularySize)
        let first = Self.topTokens(logits, count: k) { request.isEndOfGeneration($0) }
        let branches = try request.fork(prompt, count: first.count,
                                        needing: "\(first.count) branches and their prompt need \(first.count + 1) sequences")
        request.free(prompt)
        for (branch, token) in zip(branches, first) { try request.append(branch, tokens: [token], kind: .generated) }
        let drawn = try request.generateWithSignals(branches, maxTokens: params.int("max_tokens") - 1,
                                                    signals: SignalParams(topK: 1, window: 1))
        branches.forEach(request.free)
        var texts: [String] = []
        var answers: [String?] = []
        var margins: [Double] = []
        for (token, (generated, signals)) in zip(first, drawn) {
            let head = try request.detokenizedBytes([token])
            let text = String(decoding: head, as: UTF8.self) + generated.text
            let answer = request.extractAnswer(text)
            // The first token was chosen, not decided: its margin does not count.
            let pieces = try [head] + signals.tokens.map { try request.detokenizedBytes([$0]) }
            let margin = answer.flatMap { AnswerSpan.tokens(spelling: $0, in: pieces) }
                .map { span in TraceConfidence.mean(span.filter { $0 > 0 }.map { signals.margin[$0 - 1] }) } ?? 0
            texts.append(text)
            answers.append(answer)
            margins.append(margin)
        }
        let vote = try request.vote(answers: answers, weights: margins, mode: .weighted)
        let best = margins.indices.max { margins[$0] < margins[$1] } ?? 0
        let chosen = params.string("select") == "aggregate" ? vote.chosen ?? best : best
        let candidates = texts.indices.map { index in
            Solution.Candidate(text: texts[index], answer: answers[index], score: margins[index],
                               votes: vote.votes[index], voteWeight: vote.weights[index])
        }
        return Solution(text: texts[chosen], answer: answers[chosen], candidates: candidates, details: [
            "select": params.string("select"), "branches": texts.count, "chosen": chosen, "margins": margins,
        ])
    }

    /// The `count` likeliest tokens that do not end the turn, likeliest first.
    static func topTokens(_ logits: [Float], count: Int, endsTurn: (Int32) -> Bool) -> [Int32] {
        var tokens: [Int32] = []
        for index in logits.indices.sorted(by: { logits[$0] > logits[$1] }) where tokens.count < count {
            if !endsTurn(Int32(index)) { tokens.append(Int32(index)) }
        }
        return tokens
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(CoTDecoding.self) }
