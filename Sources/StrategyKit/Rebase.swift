import Foundation

/// REBASE (Wu et al. 2024, "Inference Scaling Laws: An Empirical Analysis of Compute-Optimal
/// Inference for Problem-Solving with Language Models", arXiv 2408.00724): the parts that
/// need no model, so they can be tested on their own.

public enum RebaseAllocation {
    /// REBASE's softmax allocation: how many children each candidate gets, aligned with
    /// `rewards`. Candidates are walked by reward, highest first (ties in input order, as
    /// a stable sort leaves them), each taking ceil(W_left * e_i / sum_left) of the width
    /// left, with e_i = exp(R_i / T). The counts always sum to `width`.
    /// `truncationRatio` keeps only the top ceil(count * ratio) candidates (at least one).
    public static func allocate(rewards: [Double], width: Int, temperature: Double,
                                truncationRatio: Double? = nil) -> [Int] {
        precondition(temperature > 0, "the softmax temperature must be positive")
        var counts = [Int](repeating: 0, count: rewards.count)
        guard width > 0, !rewards.isEmpty else { return counts }
        var order = rewards.indices.sorted { rewards[$0] > rewards[$1] || (rewards[$0] == rewards[$1] && $0 < $1) }
        if let truncationRatio {
            order = Array(order.prefix(max(1, Int((Double(order.count) * truncationRatio).rounded(.up)))))
        }
        // exp(R/T) overflows for large R/T; subtracting the largest reward scales every
        // weight alike, so the ratios are unchanged.
        let top = rewards[order[0]]
        let weights = order.map { exp((rewards[$0] - top) / temperature) }
        var sumLeft = weights.reduce(0, +)
        var widthLeft = width
        for (position, index) in order.enumerated() where widthLeft > 0 {
            let weight = weights[position]
            // Exactly, weight <= sumLeft and the last share is 1, so no count exceeds the
            // width left and the last takes all of it; rounding in sumLeft must not break that.
            let share = position == order.count - 1 || weight >= sumLeft ? 1 : weight / sumLeft
            let count = min(widthLeft, Int((Double(widthLeft) * share).rounded(.up)))
            counts[index] = count
            widthLeft -= count
            sumLeft -= weight
        }
        return counts
    }
}

/// How a path's step scores become one score: the last, the lowest, the mean or the product.
public enum StepAggregate: String, CaseIterable, Sendable {
    case last, min, mean, prod

    /// 0 for a path with no scored step.
    public func callAsFunction(_ scores: [Double]) -> Double {
        guard let last = scores.last else { return 0 }
        switch self {
        case .last: return last
        case .min: return scores.min()!
        case .mean: return scores.reduce(0, +) / Double(scores.count)
        case .prod: return scores.reduce(1, *)
        }
    }
}

/// How the final answer is chosen among finished solutions.
public enum AnswerSelection: String, CaseIterable, Sendable {
    /// The answer with the largest sum of scores.
    case weightedMajority = "weighted_majority"
    /// The answer most solutions give.
    case majority
    /// The best-scored solution, answer or not.
    case bestOfN = "best_of_n"

    /// The host's vote over the solutions, scores as weights, and the index of the chosen
    /// solution: for the majorities, the vote's pick (the best-scored solution giving the
    /// winning answer); for best-of-n the best-scored solution, the first of equals. The
    /// vote's tallies are returned for every selection, so candidates carry them.
    public func choose(answers: [String?], scores: [Double], vote: Voter) throws -> VoteOutcome {
        precondition(answers.count == scores.count)
        var outcome = try vote(answers, scores, self == .majority ? .plain : .weighted)
        if self == .bestOfN {
            // Strictly greater wins, so ties go to the first seen.
            outcome.chosen = scores.indices.reduce(nil) { best, index in
                best.map { scores[index] > scores[$0] ? index : $0 } ?? index
            }
        }
        return outcome
    }
}

public enum RebaseStep {
    /// Whether a path is a finished solution: the model ended its turn, the path has
    /// used its token budget, or the text gives a final answer — an answer `extract`
    /// finds after the last answer marker, so a number in the working does not count.
    public static func isFinished(text: String, finish: Finish, pathTokens: Int, maxTokens: Int,
                                  extract: (String) -> String?) -> Bool {
        if finish == .endOfGeneration || pathTokens >= maxTokens { return true }
        guard let marker = text.range(of: Prompts.answerMarker, options: [.backwards, .caseInsensitive]) else { return false }
        return extract(String(text[marker.lowerBound...])) != nil
    }
}

/// The REBASE tree, one depth at a time. Generic over the handle of a node's sequence so
/// the bookkeeping is testable without a model.
public struct RebaseTree<Handle> {
    public struct Node {
        public var handle: Handle
        /// The solution so far: every step, stop strings included.
        public var text: String
        /// Tokens generated along the whole path from the root.
        public var tokens: Int
        /// One score per step.
        public var stepScores: [Double]
        /// The anchor path: always given a child, the one that continues it (see `expand`).
        public var anchored: Bool

        public init(handle: Handle, text: String, tokens: Int, stepScores: [Double], anchored: Bool = false) {
            self.handle = handle
            self.text = text
            self.tokens = tokens
            self.stepScores = stepScores
            self.anchored = anchored
        }

        /// What the allocation ranks by: the last step's score; the root's is 1.
        public var reward: Double { stepScores.last ?? 1 }
    }

    /// One depth: the live nodes of `depth` expanded into children at depth + 1.
    public struct Round {
        public var depth: Int
        /// The width left before the round: exactly the children it hands out.
        public var widthLeft: Int
        /// Nodes given at least one child.
        public var expanded: Int
        public var children: Int
        /// The longest step generated (the generation's decode steps).
        public var stepTokens = 0
        public var finished = 0
        public var live = 0
        /// The best last-step score among the children.
        public var bestScore: Double?

        public var summary: [String: Any] {
            ["depth": depth, "width_left": widthLeft, "expanded": expanded, "children": children,
             "step_tokens": stepTokens, "finished": finished, "live": live, "best_score": bestScore ?? NSNull()]
        }
    }

    public let width: Int
    public private(set) var widthLeft: Int
    /// Unfinished nodes of the current depth.
    public private(set) var live: [Node]
    public private(set) var finished: [Node] = []
    public private(set) var rounds: [Round] = []

    /// With `anchored`, the root starts an anchor path: one path the allocation never
    /// prunes, continued by exactly one child per depth (the caller marks it) until it finishes.
    public init(width: Int, root: Handle, anchored: Bool = false) {
        self.width = width
        widthLeft = width
        live = [Node(handle: root, text: "", tokens: 0, stepScores: [], anchored: anchored)]
    }

    public func canExpand(maxDepth: Int) -> Bool { widthLeft > 0 && !live.isEmpty && rounds.count < maxDepth }

    /// Starts a round: hands the width left to the live nodes by select_softmax. Returns
    /// the nodes given children with their counts, and the pruned ones; the live set is
    /// empty until `end(children:stepTokens:)`. A live anchor takes one unit of the width
    /// first and competes for the rest like any node.
    public mutating func expand(temperature: Double, truncationRatio: Double? = nil)
        -> (expansions: [(node: Node, children: Int)], pruned: [Node]) {
        let anchor = live.firstIndex(where: \.anchored)
        var counts = RebaseAllocation.allocate(rewards: live.map(\.reward), width: widthLeft - (anchor == nil ? 0 : 1),
                                               temperature: temperature, truncationRatio: truncationRatio)
        if let anchor { counts[anchor] += 1 }
        let expansions = zip(live, counts).filter { $0.1 > 0 }.map { (node: $0.0, children: $0.1) }
        let pruned = zip(live, counts).filter { $0.1 == 0 }.map(\.0)
        rounds.append(Round(depth: rounds.count, widthLeft: widthLeft, expanded: expansions.count,
                            children: counts.reduce(0, +)))
        live = []
        return (expansions, pruned)
    }

    /// Ends the round: each finished child takes one unit of width; the others are the
    /// next depth's live nodes.
    public mutating func end(children: [(node: Node, finished: Bool)], stepTokens: Int) {
        for (node, isFinished) in children {
            if isFinished { finished.append(node) } else { live.append(node) }
        }
        let done = children.filter(\.finished).count
        widthLeft -= done
        rounds[rounds.count - 1].stepTokens = stepTokens
        rounds[rounds.count - 1].finished = done
        rounds[rounds.count - 1].live = children.count - done
        rounds[rounds.count - 1].bestScore = children.compactMap { $0.node.stepScores.last }.max()
    }

    /// The solutions to choose from: the finished ones, or — when none finished (the
    /// request was stopped, or the depth ran out) — the live paths, marked partial.
    public var solutions: (nodes: [Node], partial: Bool) {
        finished.isEmpty ? (live, true) : (finished, false)
    }
}
