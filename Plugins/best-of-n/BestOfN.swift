import Foundation
import StrategyKit

/// Best-of-n: n samples forked from one prompt and drawn in one batched generate call,
/// each scored by a scorer plugin. `select` = max takes the best-scored sample; weighted
/// takes the answer whose samples' scores sum highest (a score-weighted majority vote).
///
/// Adaptive mode draws the samples in rounds and stops after the round in which one
/// scores at least `stop_score`. Why: with select = max and `stop_score` at the top of the
/// scorer's range, no later sample could be chosen over the first one that reaches it
/// (ties go to the earlier sample), so the pick is the one the full n would make, for the
/// samples left undrawn. Sample i has the same seed in either mode.
struct BestOfN: Strategy {
    static let name = "best-of-n"
    static let version = "1.3.0"
    static let description = "Best-of-n: n samples drawn together, each scored by a scorer plugin; max score or score-weighted vote; adaptive early stop"
    static let params: [Param] = [
        .integer("n", 8, 1...64, "samples to draw (n + 1 sequences must fit the daemon's --max-width)"),
        .number("temperature", 0.7, 0.01...2, "sampling temperature"),
        .number("top_p", 0.95, 0.01...1, "nucleus sampling mass"),
        .integer("max_tokens", 512, 1...4096, "tokens per sample"),
        .string("scorer", "arith", "the scorer plugin that scores each sample (arith: measured best on GSM8K train, docs/strategies.md)"),
        .string("scorer_params", "{}", "the scorer's params: a JSON object, written as a string"),
        .choice("select", "max", ["max", "weighted"],
                "max: the best-scored sample; weighted: the answer with the largest sum of scores (ties to the higher single score)"),
        .boolean("adaptive", false, "draw in rounds and stop once a sample scores at least stop_score"),
        .integer("round", 2, 1...64, "samples per round in adaptive mode"),
        .number("stop_score", 1, -1_000_000...1_000_000,
                "adaptive: a sample scoring at least this ends the draw (1: the top of the arith scorer's range)"),
    ]

    init() {}

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        let scorer = params.string("scorer")
        let scorerParams = try params.jsonObject("scorer_params")
        let n = params.int("n")
        let adaptive = params.bool("adaptive")
        let roundSize = adaptive ? params.int("round") : n
        let stopScore = params.double("stop_score")
        let readsLogprobs = request.scorerReadsLogprobs(scorer, params: scorerParams)
        let prompt = try request.chat(system: Prompts.system, user: problem)
        var outputs: [Generated] = []
        var scores: [Double?] = []
        var reachedStopScore = false
        // One round at least, so that there is a sample to answer with even when a budget is spent.
        while outputs.count < n && !reachedStopScore && (outputs.isEmpty || !request.shouldStop) {
            let count = min(roundSize, n - outputs.count)
            let samples = try request.fork(prompt, count: count,
                                           needing: "\(count) samples and their prompt need \(count + 1) sequences")
            // After the last possible round's fork the forks hold the prompt's cells.
            if outputs.count + count == n { request.free(prompt) }
            let sampling = Sampling(temperature: Float(params.double("temperature")), topP: Float(params.double("top_p")),
                                    seed: UInt32(outputs.count))
            let drawn = try request.generate(samples, maxTokens: params.int("max_tokens"), sampling: sampling,
                                             logprobs: readsLogprobs)
            outputs += drawn
            request.progress(["event": "step", "phase": "generated", "samples": outputs.count])
            for (sample, output) in zip(samples, drawn) {
                let score = try request.scoreUnlessStopped(with: scorer, params: scorerParams, problem: problem,
                                                           solution: output.text)
                scores.append(score)
                reachedStopScore = reachedStopScore || (adaptive && (score ?? -.infinity) >= stopScore)
                // Freed once scored, not before: a scorer's prompt reuses the sample's KV cells.
                request.free(sample)
            }
            request.progress(["event": "step", "phase": "scored", "scored": scores.compactMap { $0 }.count,
                              "best_score": scores.compactMap { $0 }.max() ?? NSNull()])
        }
        if outputs.count < n { request.free(prompt) }
        let answers = outputs.map { request.extractAnswer($0.text) }

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
            "scored": scores.compactMap { $0 }.count, "drawn": outputs.count, "stopped_early": outputs.count < n && reachedStopScore,
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
