import Foundation

/// REBASE's search loop over the host (Wu et al. 2024): each depth, every live path is
/// scored and the width left is split among them by softmax(score / T); the chosen paths
/// are forked (children share the parent's KV) and all children sample their next step
/// together. A path that gives a final answer, ends its turn or uses its token budget is
/// a finished solution and takes one unit of width. How a depth's steps are generated is
/// the caller's: plain sampling (the rebase plugin) or thought mixing (quiet-rebase).
public enum RebaseSearch {
    public static let params: [Param] = [
        .integer("width", 16, 1...256, "solutions the search ends with: the children of a depth plus those finished"),
        .number("softmax_temperature", 0.2, 0.001...1000, "T of the allocation softmax(score / T): lower favours the best"),
        .number("truncation_ratio", 1, 0.01...1, "allocate only among the best ceil(live * ratio) paths; 1 keeps all"),
        .number("temperature", 1, 0...5, "sampling temperature of the steps"),
        .integer("max_step_tokens", 256, 1...4096, "tokens one step may take"),
        .integer("max_tokens", 1024, 1...65_536, "tokens one path may take, counted from the root"),
        .integer("max_depth", 25, 1...25, "steps one path may take"),
        .string("stop", "\n\n", "where a step ends (included in the step); empty: steps end at max_step_tokens"),
        .string("scorer", "arith", "the scorer plugin that scores every step (arith: measured best on GSM8K train, docs/strategies.md)"),
        .object("scorer_params", "the scorer's params"),
        .choice("aggregate", StepAggregate.last.rawValue, StepAggregate.allCases.map(\.rawValue),
                "how a solution's step scores become its score"),
        .choice("select", AnswerSelection.weightedMajority.rawValue, AnswerSelection.allCases.map(\.rawValue),
                "how the final answer is chosen among the finished solutions").aliased("selection"),
    ]

    /// Generates one step on each sequence, together: (sequences, max tokens, stop strings,
    /// sampling) -> one generation per sequence, `.stopped` when the request was stopped.
    public typealias StepGenerator = ([Sequence], Int, [String], Sampling) throws -> [Generated]

    /// With `anchorSteps`, the search keeps one anchor path (`RebaseTree`): its steps come
    /// from `anchorSteps`, every other path's from `generateSteps`, and among finished
    /// solutions the anchor's comes first, so an answer tie goes to it. In the vote its
    /// score counts `anchorWeight` times.
    public static func solve(_ request: Request, problem: String, params: Params, anchorSteps: StepGenerator? = nil,
                             anchorWeight: Double = 1, generateSteps: StepGenerator) throws -> Solution {
        let width = params.int("width")
        let maxTokens = params.int("max_tokens")
        let maxStepTokens = params.int("max_step_tokens")
        let scorer = params.string("scorer")
        let scorerParams = params.object("scorer_params")
        let stop = params.string("stop").isEmpty ? [] : [params.string("stop")]
        let ratio = params.double("truncation_ratio")
        let aggregate = StepAggregate(rawValue: params.string("aggregate"))!
        let selection = AnswerSelection(rawValue: params.string("select"))!

        var tree = RebaseTree(width: width, root: try request.chat(system: Prompts.system, user: problem),
                              anchored: anchorSteps != nil)
        var stopped = false
        while !stopped && tree.canExpand(maxDepth: params.int("max_depth")) && !request.shouldStop {
            let depth = tree.rounds.count
            let (expansions, pruned) = tree.expand(temperature: params.double("softmax_temperature"),
                                                   truncationRatio: ratio < 1 ? ratio : nil)
            pruned.forEach { request.free($0.handle) }
            // A parent's own sequence becomes its last child: one fork fewer, and at most
            // `width` sequences live. It is also the child that continues an anchor.
            var parents: [RebaseTree<Sequence>.Node] = []
            var sequences: [Sequence] = []
            var anchorIndex: Int?
            // Evaluate every parent's last sampled token in one batch before forking.
            try request.evaluate(expansions.filter { $0.children > 1 }.map(\.node.handle))
            for (parent, count) in expansions {
                for sequence in try request.fork(parent.handle, count: count - 1) + [parent.handle] {
                    if parent.anchored && sequence == parent.handle { anchorIndex = sequences.count }
                    parents.append(parent)
                    sequences.append(sequence)
                }
            }
            // One generate call for the whole depth, so one step cap for all: no path may
            // pass max_tokens. Every live path has budget left, so the cap is at least 1.
            let cap = min(maxStepTokens, parents.map { maxTokens - $0.tokens }.min()!)
            let sampling = Sampling(temperature: Float(params.double("temperature")), seed: UInt32(truncatingIfNeeded: depth * width))
            var plain = sequences
            if let anchorIndex { plain.remove(at: anchorIndex) }
            var steps = plain.isEmpty ? [] : try generateSteps(plain, cap, stop, sampling)
            if let anchorIndex, let anchorSteps {
                steps.insert(try anchorSteps([sequences[anchorIndex]], cap, stop, sampling)[0], at: anchorIndex)
            }
            var children: [(node: RebaseTree<Sequence>.Node, finished: Bool)] = []
            for (index, ((parent, sequence), step)) in zip(zip(parents, sequences), steps).enumerated() {
                var child = RebaseTree.Node(handle: sequence, text: parent.text + step.text, tokens: parent.tokens + step.tokens,
                                            stepScores: parent.stepScores, anchored: index == anchorIndex)
                // An interrupted step is partial: it keeps its parent's scores and does not finish.
                stopped = stopped || step.finish == .stopped
                if !stopped {
                    if let score = try request.scoreUnlessStopped(with: scorer, params: scorerParams, problem: problem,
                                                                  solution: child.text) {
                        child.stepScores.append(score)
                    } else {
                        stopped = true
                    }
                }
                let finished = step.finish != .stopped
                    && RebaseStep.isFinished(text: child.text, finish: step.finish, pathTokens: child.tokens,
                                             maxTokens: maxTokens, extract: request.extractAnswer)
                if finished { request.free(sequence) }
                children.append((child, finished))
            }
            tree.end(children: children, stepTokens: steps.map(\.tokens).max() ?? 0)
            request.progress(["event": "step", "depth": depth, "live": tree.live.count, "width_left": tree.widthLeft,
                              "finished": tree.finished.count, "best_score": tree.rounds[depth].bestScore ?? NSNull()])
        }
        tree.live.forEach { request.free($0.handle) }
        return try result(of: tree, aggregate: aggregate, selection: selection, anchorWeight: anchorWeight,
                          extract: request.extractAnswer, vote: request.voter)
    }

    private static func result(of tree: RebaseTree<Sequence>, aggregate: StepAggregate, selection: AnswerSelection,
                               anchorWeight: Double, extract: (String) -> String?, vote: Voter) throws -> Solution {
        let (solutions, partial) = tree.solutions
        let nodes = solutions.filter(\.anchored) + solutions.filter { !$0.anchored }
        let answers = nodes.map { extract($0.text) }
        let scores = nodes.map { aggregate($0.stepScores) }
        let anchorFinished = nodes.first?.anchored == true
        var votingScores = scores
        if anchorFinished { votingScores[0] *= anchorWeight }
        let outcome = try selection.choose(answers: answers, scores: votingScores, vote: vote)
        let chosen = outcome.chosen
        let candidates = nodes.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }.map { index in
            Solution.Candidate(text: nodes[index].text, answer: answers[index], score: scores[index],
                               votes: outcome.votes[index], voteWeight: outcome.weights[index])
        }
        var details: [String: Any] = [
            "depths": tree.rounds.count, "width": tree.width, "finished": tree.finished.count, "partial": partial,
            "nodes_expanded": tree.rounds.map(\.expanded).reduce(0, +), "rounds": tree.rounds.map(\.summary),
        ]
        if anchorFinished {
            details["anchor"] = ["answer": answers[0] ?? NSNull(), "score": scores[0], "text": nodes[0].text] as [String: Any]
        }
        return Solution(text: chosen.map { nodes[$0].text } ?? "", answer: chosen.flatMap { answers[$0] },
                        candidates: candidates, details: details)
    }
}
