import Foundation
import StrategyKit

/// Best-of-n: n samples forked from one prompt and drawn in one batched generate call,
/// each scored by a scorer plugin. `select` = max takes the best-scored sample; weighted
/// takes the answer whose samples' scores sum highest (a score-weighted majority vote).
struct BestOfN: Strategy {
    static let name = "best-of-n"
    static let version = "1.2.1"
    static let description = "Best-of-n: n samples drawn together, each scored by a scorer plugin; max score or score-weighted vote"
    static let params: [Param] = [
        .integer("n", 8, 1...64, "samples to draw (n + 1 sequences must fit the daemon's --max-width)"),
        .number("temperature", 0.7, 0.01...2, "sampling temperature"),
        .number("top_p", 0.95, 0.01...1, "nucleus sampling mass"),
        .integer("max_tokens", 512, 1...4096, "tokens per sample"),
        .string("scorer", "arith", "the scorer plugin that scores each sample (arith: measured best on GSM8K train, docs/strategies.md)"),
        .string("scorer_params", "{}", "the scorer's params: a JSON object, written as a string"),
        .choice("select", "max", ["max", "weighted"],
                "max: the best-scored sample; weighted: the answer with the largest sum of scores (ties to the higher single score)"),
    ]

    init() {}

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        let scorer = params.string("scorer")
        let scorerParams = try params.jsonObject("scorer_params")
        let n = params.int("n")
        let prompt = try request.chat(system: Prompts.system, user: problem)
        let samples = try request.fork(prompt, count: n, needing: "\(n) samples and their prompt need \(n + 1) sequences")
        request.free(prompt)  // the forks hold the prompt's cells
        let sampling = Sampling(temperature: Float(params.double("temperature")), topP: Float(params.double("top_p")))
        let outputs = try request.generate(samples, maxTokens: params.int("max_tokens"), sampling: sampling,
                                           logprobs: request.scorerReadsLogprobs(scorer, params: scorerParams))
        request.progress(["event": "step", "phase": "generated", "samples": n])

        var scores: [Double?] = []
        for (sample, output) in zip(samples, outputs) {
            scores.append(try request.scoreUnlessStopped(with: scorer, params: scorerParams, problem: problem, solution: output.text))
            // Freed once scored, not before: a scorer's prompt reuses the sample's KV cells.
            request.free(sample)
        }
        let answers = outputs.map { request.extractAnswer($0.text) }
        request.progress(["event": "step", "phase": "scored", "scored": scores.compactMap { $0 }.count,
                          "best_score": scores.compactMap { $0 }.max() ?? NSNull()])

        // Score sums per answer; only scored samples with an answer vote.
        var sums: [String: Double] = [:]
        for (answer, score) in zip(answers, scores) {
            if let answer, let score { sums[answer, default: 0] += score }
        }
        let chosen = choose(params.string("select"), scores: scores, answers: answers, sums: sums)
        let votes = Dictionary(answers.compactMap { $0 }.map { ($0, 1) }, uniquingKeysWith: +)
        let candidates = outputs.indices.map { index in
            Solution.Candidate(text: outputs[index].text, answer: answers[index], score: scores[index],
                               votes: answers[index].flatMap { votes[$0] } ?? 0)
        }
        return Solution(text: outputs[chosen].text, answer: answers[chosen], candidates: candidates, details: [
            "select": params.string("select"), "scorer": scorer, "chosen": chosen,
            "scores": scores.map { $0 ?? NSNull() as Any }, "answer_scores": sums,
            "scored": scores.compactMap { $0 }.count,
        ])
    }

    /// The index of the chosen sample. Unscored samples (the request stopped before they
    /// were scored) are never chosen over scored ones; with nothing scored, the first
    /// sample with the most common answer (self-consistency's pick).
    private func choose(_ select: String, scores: [Double?], answers: [String?], sums: [String: Double]) -> Int {
        let scored = scores.indices.filter { scores[$0] != nil }
        guard !scored.isEmpty else {
            return AnswerSelection.majority.choose(answers: answers, scores: answers.map { _ in 0 })!
        }
        // max(by:) keeps the first of equals: ties go to the earlier sample.
        let best = scored.max { scores[$0]! < scores[$1]! }!
        guard select == "weighted" else { return best }
        // Each answer's best-scored sample stands for it: it breaks ties and its text is returned.
        var leaders: [String: Int] = [:]
        for index in scored {
            guard let answer = answers[index] else { continue }
            if leaders[answer].map({ scores[index]! > scores[$0]! }) ?? true { leaders[answer] = index }
        }
        let winner = leaders.max { a, b in (sums[a.key]!, scores[a.value]!, -a.value) < (sums[b.key]!, scores[b.value]!, -b.value) }
        return winner?.value ?? best
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(BestOfN.self) }
