import Foundation
import StrategyKit

/// DeepConf (Fu et al. 2025, "Deep Think with Confidence"): self-consistency that weighs
/// and filters samples by the model's own confidence. A token's confidence is minus the
/// mean log-probability of its step's top-k tokens; a trace's is its lowest mean over any
/// `window` consecutive tokens (the weakest stretch of its reasoning).
///
/// Online (the default): `warmup` traces are drawn in full; the threshold is the
/// (100 - keep)-th percentile of their confidences. Later traces are drawn in rounds, and
/// the daemon stops each one as soon as a window of its tokens falls below the threshold
/// (its tokens are still charged; it does not vote). Sampling stops once the leading
/// answer holds `consensus` of the confidence-weighted vote, or at `n` traces.
/// Offline: `n` traces in full, the `keep` percent most confident vote.
/// The vote is weighted by trace confidence, through the host's one vote rule.
struct DeepConf: Strategy {
    static let name = "deepconf"
    static let version = "1.0.0"
    static let description = "DeepConf: confidence-filtered, confidence-weighted self-consistency; online early stop of low-confidence traces"
    static let params: [Param] = [
        .integer("n", 16, 1...64, "traces to draw at most (round + 1 sequences must fit the daemon's --max-width)"),
        .choice("mode", "online", ["online", "offline"],
                "online: warm-up, threshold, early stop of traces and of sampling; offline: n traces, the most confident vote"),
        .integer("warmup", 4, 1...64, "online: traces drawn in full to set the threshold"),
        .integer("round", 4, 1...64, "traces per round after the warm-up (offline: per round of the n)"),
        .number("keep", 90, 1...100,
                "percent kept: online, the threshold is the (100 - keep)-th percentile of the warm-up's confidences (90: DeepConf-high, 10: DeepConf-low); offline, the top keep percent vote"),
        .number("threshold", 0, 0...1000,
                "online: a fixed threshold instead of the warm-up's percentile (0: from the warm-up)"),
        .integer("window", 64, 1...4096, "tokens in a group, whose mean confidence is the group's"),
        .integer("top_k", 5, 1...20, "tokens whose mean log-probability makes a token's confidence"),
        .number("consensus", 0.95, 0.5...1, "online: stop sampling once the leader holds this share of the weighted vote (1: never early)"),
        .number("temperature", 0.7, 0.01...2, "sampling temperature"),
        .number("top_p", 0.95, 0.01...1, "nucleus sampling mass"),
        .integer("max_tokens", 512, 1...4096, "tokens per trace"),
    ]

    init() {}

    struct Trace {
        var text: String
        var answer: String?
        var confidence: Double
        var tokens: Int
        /// Ended by the online threshold: drawn and charged, but not voting.
        var stoppedLow: Bool
    }

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        let n = params.int("n")
        let online = params.string("mode") == "online"
        let keep = params.double("keep")
        let window = params.int("window")
        let prompt = try request.chat(system: Prompts.system, user: problem)
        var traces: [Trace] = []
        var threshold: Double?
        var settled = false

        func draw(_ count: Int, stopBelow: Double) throws {
            let samples = try request.fork(prompt, count: count,
                                           needing: "\(count) traces and their prompt need \(count + 1) sequences")
            let sampling = Sampling(temperature: Float(params.double("temperature")), topP: Float(params.double("top_p")),
                                    seed: UInt32(traces.count))
            let drawn = try request.generateWithSignals(
                samples, maxTokens: params.int("max_tokens"), sampling: sampling,
                signals: SignalParams(topK: params.int("top_k"), window: window, stopBelow: stopBelow))
            samples.forEach(request.free)
            for (generated, signals) in drawn {
                traces.append(Trace(text: generated.text, answer: request.extractAnswer(generated.text),
                                    confidence: TraceConfidence.lowestGroup(signals.confidence, window: window),
                                    tokens: generated.tokens, stoppedLow: generated.finish == .lowConfidence))
            }
        }

        // One round at least, so that there is a trace to answer with even when a budget is spent.
        let first = online ? min(params.int("warmup"), n) : min(params.int("round"), n)
        try draw(first, stopBelow: 0)
        if online {
            let fixed = params.double("threshold")
            threshold = fixed > 0 ? fixed : TraceConfidence.percentile(traces.map(\.confidence), 100 - keep)
            settled = try Self.consensus(traces, voting: Self.unstopped(traces), vote: request.voter) >= params.double("consensus")
        }
        while traces.count < n && !settled && !request.shouldStop {
            try draw(min(params.int("round"), n - traces.count), stopBelow: threshold ?? 0)
            request.progress(["event": "step", "traces": traces.count, "stopped_low": traces.filter(\.stoppedLow).count,
                              "threshold": threshold ?? NSNull()])
            if online { settled = try Self.consensus(traces, voting: Self.unstopped(traces), vote: request.voter) >= params.double("consensus") }
        }
        request.free(prompt)

        let voting = online ? Self.unstopped(traces) : Self.mostConfident(traces, percent: keep)
        let outcome = try Self.weightedVote(traces, voting: voting, vote: request.voter)
        let chosen = outcome.chosen ?? traces.indices.max { traces[$0].confidence < traces[$1].confidence }!
        let candidates = traces.indices.map { index in
            Solution.Candidate(text: traces[index].text, answer: traces[index].answer, score: traces[index].confidence,
                               votes: outcome.votes[index], voteWeight: outcome.weights[index])
        }
        return Solution(text: traces[chosen].text, answer: traces[chosen].answer, candidates: candidates, details: [
            "mode": online ? "online" : "offline", "threshold": threshold ?? NSNull(), "drawn": traces.count,
            "stopped_low": traces.filter(\.stoppedLow).count, "voting": voting.count, "trace_tokens": traces.map(\.tokens),
            "stopped_early": traces.count < n && settled, "samples_saved": n - traces.count,
            "consensus": try Self.consensus(traces, voting: voting, vote: request.voter),
        ])
    }

    /// The indices of the `percent` most confident traces (one at least), most confident first.
    static func mostConfident(_ traces: [Trace], percent: Double) -> [Int] {
        let count = max(1, Int((Double(traces.count) * percent / 100).rounded(.up)))
        return Array(traces.indices.sorted { traces[$0].confidence > traces[$1].confidence }.prefix(count))
    }

    /// The confidence-weighted vote among `voting`; the other traces vote for nothing.
    static func weightedVote(_ traces: [Trace], voting: [Int], vote: Voter) throws -> VoteOutcome {
        let members = Set(voting)
        let answers = traces.indices.map { members.contains($0) ? traces[$0].answer : nil }
        return try vote(answers, traces.map(\.confidence), .weighted)
    }

    static func unstopped(_ traces: [Trace]) -> [Int] { traces.indices.filter { !traces[$0].stoppedLow } }

    /// The leading answer's share of the confidence-weighted vote among `voting`.
    static func consensus(_ traces: [Trace], voting: [Int], vote: Voter) throws -> Double {
        let total = voting.filter { traces[$0].answer != nil }.reduce(0) { $0 + traces[$1].confidence }
        guard total > 0 else { return 0 }
        let outcome = try weightedVote(traces, voting: voting, vote: vote)
        guard let chosen = outcome.chosen else { return 0 }
        return outcome.weights[chosen] / total
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(DeepConf.self) }
