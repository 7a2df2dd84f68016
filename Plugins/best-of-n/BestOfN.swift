import Foundation
import StrategyKit

/// Best-of-n: n samples forked from one prompt and drawn in one batched generate call,
/// each scored by a scorer plugin. `select` = weighted (the default) takes the answer
/// whose samples' scores sum highest (a score-weighted majority vote); max takes the
/// best-scored sample. Weighted is the default because it solved more on GSM8K train
/// (docs/results/answer-selection-gsm8k-train): where the scorer gives many samples its
/// top score, max takes the first of them, whatever the others say.
///
/// Adaptive mode draws the samples in rounds and stops after the round that settles the
/// pick the full n would make, given `stop_score`, the top of the scorer's range. With
/// max: a sample scoring at least `stop_score` (no later one can be chosen over it; ties go
/// to the earlier sample). With weighted: the leading answer's score sum leads every other
/// by more than `stop_score` per sample left (for scores within 0...stop_score, as arith's
/// are). Sample i has the same seed in either mode.
struct BestOfN: Strategy {
    static let name = "best-of-n"
    static let version = "1.5.0"
    static let description = "Best-of-n: n samples drawn together, each scored by a scorer plugin; score-weighted vote or max score; adaptive early stop"
    static let params: [Param] = [
        .integer("n", 8, 1...64, "samples to draw (n + 1 sequences must fit the daemon's --max-width)"),
        .number("temperature", 0.7, 0.01...2, "sampling temperature"),
        .number("top_p", 0.95, 0.01...1, "nucleus sampling mass"),
        .integer("max_tokens", 512, 1...4096, "tokens per sample"),
        .string("scorer", "arith", "the scorer plugin that scores each sample (arith: measured best on GSM8K train, docs/strategies.md)"),
        .object("scorer_params", "the scorer's params"),
        .choice("select", "weighted", ["weighted", "max"],
                "weighted: the answer with the largest sum of scores (ties to the higher single score); max: the best-scored sample"),
        .boolean("adaptive", false, "draw in rounds and stop once the samples drawn settle the pick all n would make"),
        .integer("round", 2, 1...64, "samples per round in adaptive mode"),
        .number("stop_score", 1, -1_000_000...1_000_000,
                "adaptive: the scorer's top score (1: arith's); max stops at a sample scoring this, weighted once the leader leads by more than this per sample left"),
    ]

    init() {}

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        let scorer = params.string("scorer")
        let scorerParams = params.object("scorer_params")
        let n = params.int("n")
        let adaptive = params.bool("adaptive")
        let roundSize = adaptive ? params.int("round") : n
        let stopScore = params.double("stop_score")
        let select = params.string("select")
        let readsLogprobs = request.scorerReadsLogprobs(scorer, params: scorerParams)
        let prompt = try request.chat(system: Prompts.system, user: problem)
        var outputs: [Generated] = []
        var answers: [String?] = []
        var scores: [Double?] = []
        var settled = false
        // One round at least, so that there is a sample to answer with even when a budget is spent.
        while outputs.count < n && !settled && (outputs.isEmpty || !request.shouldStop) {
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
            answers += drawn.map { request.extractAnswer($0.text) }
            request.progress(["event": "step", "phase": "generated", "samples": outputs.count])
            for (sample, output) in zip(samples, drawn) {
                let score = try request.scoreUnlessStopped(with: scorer, params: scorerParams, problem: problem,
                                                           solution: output.text)
                scores.append(score)
                // Freed once scored, not before: a scorer's prompt reuses the sample's KV cells.
                request.free(sample)
            }
            request.progress(["event": "step", "phase": "scored", "scored": scores.compactMap { $0 }.count,
                              "best_score": scores.compactMap { $0 }.max() ?? NSNull()])
            if adaptive {
                settled = select == "weighted"
                    ? Self.leadIsSafe(Self.scoreSums(answers: answers, scores: scores), samplesLeft: n - outputs.count,
                                      topScore: stopScore)
                    : scores.contains { ($0 ?? -.infinity) >= stopScore }
            }
        }
        if outputs.count < n { request.free(prompt) }
        let sums = Self.scoreSums(answers: answers, scores: scores)
        let (chosen, vote) = try Self.choose(select, scores: scores, answers: answers, vote: request.voter)
        let candidates = outputs.indices.map { index in
            Solution.Candidate(text: outputs[index].text, answer: answers[index], score: scores[index],
                               votes: vote.votes[index], voteWeight: vote.weights[index])
        }
        return Solution(text: outputs[chosen].text, answer: answers[chosen], candidates: candidates, details: [
            "select": select, "scorer": scorer, "chosen": chosen,
            "scores": scores.map { $0 ?? NSNull() as Any }, "answer_scores": sums,
            "scored": scores.compactMap { $0 }.count, "drawn": outputs.count, "stopped_early": outputs.count < n && settled,
        ])
    }

    /// Score sums per answer; only scored samples with an answer vote.
    private static func scoreSums(answers: [String?], scores: [Double?]) -> [String: Double] {
        var sums: [String: Double] = [:]
        for (answer, score) in zip(answers, scores) {
            if let answer, let score { sums[answer, default: 0] += score }
        }
        return sums
    }

    /// Whether no samples left, each scoring at most `topScore`, can give another answer
    /// (one drawn so far, or a new one) a sum that reaches the leader's.
    private static func leadIsSafe(_ sums: [String: Double], samplesLeft: Int, topScore: Double) -> Bool {
        let ranked = sums.values.sorted(by: >)
        guard let leader = ranked.first else { return false }
        return leader - max(ranked.dropFirst().first ?? 0, 0) > Double(samplesLeft) * topScore
    }

    /// The index of the chosen sample, and the vote whose tallies the candidates carry.
    /// Only scored samples vote: a sample the request stopped before scoring is never
    /// chosen over a scored one. With nothing scored, the plain vote over every sample
    /// (self-consistency's pick). `max` takes the best-scored sample, the first of equals.
    static func choose(_ select: String, scores: [Double?], answers: [String?], vote: Voter) throws -> (Int, VoteOutcome) {
        let scored = scores.indices.filter { scores[$0] != nil }
        guard !scored.isEmpty else {
            let plain = try vote(answers, nil, .plain)
            return (plain.chosen ?? 0, plain)
        }
        let weighted = try vote(scored.map { answers[$0] }, scored.map { scores[$0]! }, .weighted)
        // Back to every sample's index; unscored samples voted for nothing.
        var outcome = VoteOutcome(chosen: weighted.chosen.map { scored[$0] },
                                  votes: Array(repeating: 0, count: answers.count),
                                  weights: Array(repeating: 0, count: answers.count))
        for (position, index) in scored.enumerated() {
            outcome.votes[index] = weighted.votes[position]
            outcome.weights[index] = weighted.weights[position]
        }
        // max(by:) keeps the first of equals: ties go to the earlier sample.
        let best = scored.max { scores[$0]! < scores[$1]! }!
        return (select == "weighted" ? outcome.chosen ?? best : best, outcome)
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(BestOfN.self) }
