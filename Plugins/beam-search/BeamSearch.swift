import Foundation
import StrategyKit

/// Step-level beam search with a scorer (as in Snell et al. 2024, "Scaling LLM Test-Time
/// Compute Optimally can be More Effective than Scaling Model Parameters", arXiv
/// 2408.03314, and in REBASE, Wu et al. 2024). Each round forks every live beam
/// `expansions` times, generates one step for all the children in one batched generate
/// call, scores each child's solution so far and keeps the best.
/// Width is conserved as in REBASE: a finished solution takes one of the width
/// slots, so live + finished never exceeds the width.
struct BeamSearch: Strategy {
    static let name = "beam-search"
    static let version = "1.3.0"
    static let description = "Step-level beam search: beams forked and extended one step at a time, pruned by a scorer plugin"
    static let params: [Param] = [
        .integer("width", 4, 1...16, "beams kept at each depth, and the finished solutions that end the search")
            .aliased("beam_width"),
        .integer("expansions", 4, 1...16,
                 "children of each beam per depth (width × expansions + 1 sequences must fit the daemon's --max-width)"),
        .integer("max_depth", 25, 1...100, "steps along a path at most"),
        .integer("max_tokens", 1024, 1...16384, "tokens along a path at most; a path that reaches it is finished"),
        .integer("max_step_tokens", 256, 1...4096, "tokens of one step at most"),
        .string("stop", "\n\n", "the text that ends a step").aliased("step_delimiter"),
        .number("temperature", 0.8, 0.01...2, "sampling temperature of each step"),
        .number("top_p", 1.0, 0.01...1, "nucleus sampling mass of each step"),
        .string("scorer", "arith", "the scorer plugin that scores each partial solution (arith: measured best on GSM8K train, docs/strategies.md)"),
        .object("scorer_params", "the scorer's params"),
    ]

    init() {}

    private struct Path {
        var text = ""
        var tokens = 0
        var score: Double?  // nil only for the empty root path
    }

    private struct Beam {
        var sequence: StrategyKit.Sequence
        var path: Path
    }

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        let width = params.int("width"), expansions = params.int("expansions")
        let maxTokens = params.int("max_tokens")
        let scorer = params.string("scorer")
        let scorerParams = params.object("scorer_params")
        let logprobs = request.scorerReadsLogprobs(scorer, params: scorerParams)
        let sampling = Sampling(temperature: Float(params.double("temperature")), topP: Float(params.double("top_p")))

        var beams = [Beam(sequence: try request.chat(system: Prompts.system, user: problem), path: Path())]
        var finished: [Path] = []
        var rounds: [[String: Any]] = []
        var sampled = 0
        var stopReason = "max_depth"
        for depth in 1...params.int("max_depth") {
            if request.shouldStop { stopReason = "stopped"; break }
            // Cut the step at the room the fullest path has left, so no path passes max_tokens.
            let stepTokens = min(params.int("max_step_tokens"), beams.map { maxTokens - $0.path.tokens }.min()!)
            let expanded = beams.count
            // The prompt stands for `width` identical beams, so the first depth is as wide as the rest.
            let perBeam = depth == 1 ? width * expansions : expansions
            // Every beam's last sampled token in one batch, rather than one decode per fork.
            try request.evaluate(beams.map(\.sequence))
            var children: [Beam] = []
            for beam in beams {
                let forks = try request.fork(beam.sequence, count: perBeam,
                                     needing: "width × expansions + 1 = \(width * expansions + 1) sequences")
                children += forks.map { Beam(sequence: $0, path: beam.path) }
                request.free(beam.sequence)  // its children hold its cells
            }
            // Sequence i of a call samples with seed + i: distinct seeds over the whole search.
            var stepSampling = sampling
            stepSampling.seed = UInt32(sampled)
            sampled += children.count
            let outputs = try request.generate(children.map(\.sequence), maxTokens: stepTokens,
                                               stop: [params.string("stop")], sampling: stepSampling,
                                               logprobs: logprobs)

            var done: [Path] = [], open: [Beam] = []
            for (child, output) in zip(children, outputs) {
                var path = child.path
                path.text += output.text
                path.tokens += output.tokens
                // A step cut short by a stop, or left unscored, is dropped.
                guard output.finish != .stopped,
                      let value = try request.scoreUnlessStopped(with: scorer, params: scorerParams, problem: problem, solution: path.text) else {
                    request.free(child.sequence)
                    continue
                }
                path.score = value
                if output.finish == .endOfGeneration || path.tokens >= maxTokens || hasFinalAnswer(path.text, request) {
                    done.append(path)
                    request.free(child.sequence)
                } else {
                    open.append(Beam(sequence: child.sequence, path: path))
                }
            }
            // Stopped before any child was scored: the beams of the last depth are the best so far.
            if done.isEmpty && open.isEmpty { stopReason = "stopped"; break }

            // Finished solutions take their slots first; the best live children fill the rest.
            finished += done.sorted { $0.score! > $1.score! }.prefix(width - finished.count)
            open.sort { $0.path.score! > $1.path.score! }
            let kept = width - finished.count
            open.dropFirst(kept).forEach { request.free($0.sequence) }
            beams = Array(open.prefix(kept))

            let best = (finished + beams.map(\.path)).compactMap(\.score).max()
            rounds.append(["depth": depth, "expanded": expanded, "children": children.count,
                           "step_tokens": outputs.map(\.tokens).max() ?? 0, "live": beams.count,
                           "finished": finished.count, "best_score": best ?? NSNull()])
            request.progress(["event": "step", "depth": depth, "live": beams.count, "finished": finished.count,
                              "best_score": best ?? NSNull()])
            if finished.count >= width { stopReason = "width"; break }
            if beams.isEmpty { stopReason = "no_beams"; break }
        }
        // The live beams' sequences are left to the host, which frees them as the request
        // ends (after a cut depth they are freed already).

        let live = beams.map(\.path).filter { $0.score != nil }.sorted { $0.score! > $1.score! }
        let candidates = (finished.sorted { $0.score! > $1.score! } + live).map {
            Solution.Candidate(text: $0.text, answer: request.extractAnswer($0.text), score: $0.score)
        }
        return Solution(text: candidates.first?.text ?? "", answer: candidates.first?.answer, candidates: candidates, details: [
            "scorer": scorer, "depth": rounds.count, "stop_reason": stopReason, "finished": finished.count,
            "chosen_finished": !finished.isEmpty, "rounds": rounds,
        ])
    }

    /// Whether a solution has reached its final answer: the answer marker with a number after it on its line.
    private func hasFinalAnswer(_ text: String, _ request: Request) -> Bool {
        guard let marker = text.range(of: Prompts.answerMarker, options: [.backwards, .caseInsensitive]) else { return false }
        let line = text[marker.lowerBound...].prefix { $0 != "\n" }
        return request.extractAnswer(String(line)) != nil
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(BeamSearch.self) }
