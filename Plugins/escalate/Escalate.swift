import Foundation
import StrategyKit

/// Escalate: spend compute only where the model is unsure (after Snell et al. 2024's
/// difficulty-adaptive allocation, with the policy's own certainty as the difficulty
/// estimate). A greedy solution first, with each token's certainty signals; when its
/// confidence is at least `threshold` that is the answer. Otherwise samples are drawn in
/// rounds, the greedy answer voting with them, until the host's stop rule (Beta or ESC)
/// says the vote is settled, `n` samples are drawn, or the budget ends. `details` says
/// whether it escalated and what each phase spent.
///
/// Signals (higher = surer): lowest_group, DeepConf's weakest window of token confidence;
/// tail, the confidence of the last window (where the answer is written); answer_margin,
/// the mean top-two probability margin over the answer's tokens (CoT-decoding's measure);
/// certainty, the mean self-certainty, KL(uniform || p) (Kang et al. 2025).
struct Escalate: Strategy {
    static let name = "escalate"
    static let version = "1.1.1"
    static let description = "Escalate: greedy first; sample with a stop rule only when greedy's own confidence is low"
    static let params: [Param] = [
        .choice("signal", "lowest_group", signals,
                "the greedy solution's confidence: lowest window, last window, answer-token margin, or self-certainty"),
        // Chosen on GSM8K train for the default model (docs/results/certainty-signals-gsm8k-train):
        // 42 % of its sample falls below, about what a 2.5 T FLOPs budget for a GSM8K solve affords.
        .number("threshold", 5.8, 0...1000, "escalate when the signal is below this (0: never; the scale depends on the model, signal and window)"),
        .integer("window", 64, 1...4096, "tokens in a confidence group (lowest_group, tail)"),
        .integer("top_k", 5, 1...20, "tokens whose mean log-probability makes a token's confidence"),
        .integer("n", 8, 1...64, "samples to draw at most when escalating"),
        .integer("round", 2, 1...64, "samples per round"),
        .choice("stop_rule", "beta", ["beta", "esc"], "when the vote is settled: Adaptive-Consistency's Beta rule, or ESC's unanimous round"),
        // 0.9 rather than the paper's 0.95: greedy and two agreeing samples settle the vote, where
        // 0.95 asks for four samples even when all agree.
        .number("stop_threshold", 0.9, 0.51...0.999, "beta: stop once P(leader likelier than runner-up) reaches this"),
        .number("temperature", 0.7, 0.01...2, "sampling temperature"),
        .number("top_p", 0.95, 0.01...1, "nucleus sampling mass"),
        .integer("max_tokens", 512, 1...4096, "tokens per solution"),
    ]

    init() {}

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        let window = params.int("window")
        let signalParams = SignalParams(topK: params.int("top_k"), window: window)
        let prompt = try request.chat(system: Prompts.system, user: problem)
        let first = try request.fork(prompt, count: 1, needing: "the greedy solution and its prompt need 2 sequences")
        let (greedy, signals) = try request.generateWithSignals(first, maxTokens: params.int("max_tokens"), signals: signalParams)[0]
        request.free(first[0])
        let greedyAnswer = request.extractAnswer(greedy.text)
        let signal = params.string("signal")
        // Every signal goes into details, so that one run on a train split can choose among them.
        var measured: [String: Double] = [:]
        for name in Self.signals {
            measured[name] = try Self.confidence(name, signals: signals, window: window, answer: greedyAnswer, request: request)
        }
        let confidence = measured[signal] ?? 0
        let greedyFlops = request.usage.flops
        let threshold = params.double("threshold")
        var details: [String: Any] = ["signal": signal, "confidence": confidence, "signals": measured, "threshold": threshold,
                                      "greedy_flops": greedyFlops, "greedy_tokens": greedy.tokens]
        request.progress(["event": "step", "phase": "greedy", "confidence": confidence])
        guard confidence < threshold, !request.shouldStop else {
            request.free(prompt)
            details["escalated"] = false
            return Solution(text: greedy.text, answer: greedyAnswer,
                            candidates: [.init(text: greedy.text, answer: greedyAnswer, score: confidence)], details: details)
        }

        let rule: StopRule = params.string("stop_rule") == "esc" ? .esc : .beta
        var texts = [greedy.text]
        var answers = [greedyAnswer]
        var settled = false
        let n = params.int("n")
        while texts.count - 1 < n && !settled && !request.shouldStop {
            let count = min(params.int("round"), n - (texts.count - 1))
            let samples = try request.fork(prompt, count: count, needing: "\(count) samples and their prompt need \(count + 1) sequences")
            let sampling = Sampling(temperature: Float(params.double("temperature")), topP: Float(params.double("top_p")),
                                    seed: UInt32(texts.count - 1))
            let drawn = try request.generate(samples, maxTokens: params.int("max_tokens"), sampling: sampling)
            samples.forEach(request.free)
            texts += drawn.map(\.text)
            answers += drawn.map { request.extractAnswer($0.text) }
            // ESC's window is the round just drawn; the Beta rule reads every answer, greedy's too.
            let parameter = rule == .esc ? Double(count) : params.double("stop_threshold")
            let given = rule == .esc ? Array(answers.dropFirst()) : answers
            settled = try request.stopRule(rule, parameter: parameter, answers: given).stop
            request.progress(["event": "step", "phase": "sampling", "samples": texts.count - 1, "settled": settled])
        }
        request.free(prompt)
        let vote = try request.vote(answers: answers, mode: .plain)
        let chosen = vote.chosen ?? 0
        details["escalated"] = true
        details["samples"] = texts.count - 1
        details["settled"] = settled
        details["samples_saved"] = n - (texts.count - 1)
        details["escalation_flops"] = request.usage.flops - greedyFlops
        let candidates = texts.indices.map { index in
            Solution.Candidate(text: texts[index], answer: answers[index], score: index == 0 ? confidence : nil,
                               votes: vote.votes[index], voteWeight: vote.weights[index])
        }
        return Solution(text: texts[chosen], answer: answers[chosen], candidates: candidates, details: details)
    }

    static let signals = ["lowest_group", "tail", "answer_margin", "certainty"]

    /// The greedy solution's confidence by `signal`; higher is surer.
    static func confidence(_ signal: String, signals: TokenSignals, window: Int, answer: String?, request: Request) throws -> Double {
        switch signal {
        case "tail": return TraceConfidence.mean(Array(signals.confidence.suffix(window)))
        case "certainty": return TraceConfidence.mean(signals.certainty)
        case "answer_margin":
            guard let answer else { return 0 }
            let pieces = try signals.tokens.map { try request.detokenizedBytes([$0]) }
            guard let span = AnswerSpan.tokens(spelling: answer, in: pieces), !span.isEmpty else { return 0 }
            return TraceConfidence.mean(span.map { signals.margin[$0] })
        default: return TraceConfidence.lowestGroup(signals.confidence, window: window)
        }
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(Escalate.self) }
