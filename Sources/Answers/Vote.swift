/// The vote over candidate answers: the one rule behind self-consistency, best-of-n's
/// score-weighted pick, REBASE's majorities and quiet-star's votes. Plugins reach it
/// through the host table (sd_host.vote); the harness holds a Python copy to the same
/// cases (Tests/cases/vote.json).
public enum Vote {
    public enum Mode: Int32, Sendable {
        /// Each candidate with an answer counts one.
        case plain = 0
        /// Each candidate with an answer counts its weight.
        case weighted = 1
    }

    /// What one candidate's answer gathered: how many candidates give it and the sum of
    /// their weights (zero for a candidate without an answer).
    public struct Tally: Sendable, Equatable {
        public var votes: Int
        public var weight: Double
        public init(votes: Int, weight: Double) {
            self.votes = votes
            self.weight = weight
        }
    }

    public struct Outcome: Sendable, Equatable {
        /// The candidate that stands for the winning answer; -1 when there are none.
        public var chosen: Int
        /// One per candidate.
        public var tallies: [Tally]
    }

    /// `answers[i]` nil or empty: candidate i does not vote. `weights` nil: every weight is 1.
    ///
    /// The winner has the largest tally (count or weight by `mode`); ties go to the answer
    /// whose best single weight is larger, then to the answer seen first. The chosen
    /// candidate is the winner's candidate with the largest weight, the first on ties: with
    /// scores as weights, the best-scored solution giving the winning answer. When no
    /// candidate has an answer, the candidate with the largest weight is chosen.
    public static func count(answers: [String?], weights: [Double]? = nil, mode: Mode) -> Outcome {
        precondition(weights == nil || weights!.count == answers.count)
        let weight = { (index: Int) -> Double in weights?[index] ?? 1 }
        struct Entry { var votes = 0; var weight = 0.0; var best = -Double.infinity; var bestIndex = 0 }
        var order: [String] = []
        var entries: [String: Entry] = [:]
        for (index, answer) in answers.enumerated() {
            guard let answer, !answer.isEmpty else { continue }
            if entries[answer] == nil { order.append(answer) }
            var entry = entries[answer, default: Entry()]
            entry.votes += 1
            entry.weight += weight(index)
            if weight(index) > entry.best { (entry.best, entry.bestIndex) = (weight(index), index) }
            entries[answer] = entry
        }
        let tallies = answers.map { answer in
            answer.flatMap { entries[$0] }.map { Tally(votes: $0.votes, weight: $0.weight) } ?? Tally(votes: 0, weight: 0)
        }
        func tally(_ entry: Entry) -> Double { mode == .plain ? Double(entry.votes) : entry.weight }
        // Strictly greater replaces, so the answer seen first keeps full ties.
        let winner = order.reduce(nil as Entry?) { winner, answer in
            let entry = entries[answer]!
            guard let winner else { return entry }
            return (tally(entry), entry.best) > (tally(winner), winner.best) ? entry : winner
        }
        if let winner { return Outcome(chosen: winner.bestIndex, tallies: tallies) }
        let chosen = answers.indices.reduce(-1) { best, index in
            best < 0 || weight(index) > weight(best) ? index : best
        }
        return Outcome(chosen: chosen, tallies: tallies)
    }
}
