/// Voting over extracted answers, shared by the strategy plugins.
public enum Vote {
    /// Weighted majority over the non-nil answers (weight 1 each when `weights` is nil).
    /// Ties go to the answer seen first, so the result is deterministic. `total` is the
    /// weight of all non-nil answers; nil when there are none.
    public static func majority(
        _ answers: [NumericAnswer?], weights: [Double]? = nil
    ) -> (answer: NumericAnswer, weight: Double, total: Double)? {
        precondition(weights == nil || weights?.count == answers.count, "one weight per answer")
        var firstSeen: [NumericAnswer] = []
        var tally: [NumericAnswer: Double] = [:]
        var total = 0.0
        for (index, answer) in answers.enumerated() {
            guard let answer else { continue }
            let weight = weights?[index] ?? 1
            if tally[answer] == nil { firstSeen.append(answer) }
            tally[answer, default: 0] += weight
            total += weight
        }
        var best: (answer: NumericAnswer, weight: Double)?
        for answer in firstSeen {
            let weight = tally[answer, default: 0]
            if best == nil || weight > best!.weight { best = (answer, weight) }
        }
        return best.map { ($0.answer, $0.weight, total) }
    }
}
