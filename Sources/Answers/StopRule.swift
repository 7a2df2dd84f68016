import Foundation

/// When a strategy that samples in rounds may stop drawing: the stop rules of adaptive
/// sampling, over the answers drawn so far in draw order (nil or empty: no answer).
/// Plugins reach them through the host table (sd_host.stop_rule), so every strategy that
/// samples adaptively (self-consistency, escalate) stops by the same rule.
public enum StopRule: Int32, Sendable, CaseIterable {
    /// Adaptive-Consistency (Aggarwal et al. 2023): with v1 votes for the leading answer
    /// and v2 for the runner-up, the probability that the leader is the likelier answer
    /// under a uniform prior, P(X > 1/2) for X ~ Beta(v1 + 1, v2 + 1); stop once it is at
    /// least the threshold (the paper's 0.95).
    case beta = 0
    /// Early-stopping self-consistency (ESC, Li et al. 2024): stop once the last `window`
    /// answers drawn are one and the same answer.
    case esc = 1

    public struct Decision: Sendable, Equatable {
        public var stop: Bool
        /// Beta: P(leader likelier than the runner-up); ESC: the share of the last window
        /// that gives its most common answer.
        public var measure: Double
    }

    /// `parameter`: the Beta rule's threshold in (0.5, 1), or ESC's window (a whole number >= 1).
    public func decide(_ answers: [String?], parameter: Double) -> Decision {
        switch self {
        case .beta:
            var counts: [String: Int] = [:]
            for case let answer? in answers where !answer.isEmpty { counts[answer, default: 0] += 1 }
            let ranked = counts.values.sorted(by: >)
            guard let leader = ranked.first else { return Decision(stop: false, measure: 0.5) }
            let probability = Self.leaderIsLikelier(leader, ranked.dropFirst().first ?? 0)
            return Decision(stop: probability >= parameter, measure: probability)
        case .esc:
            let window = max(1, Int(parameter))
            guard answers.count >= window else { return Decision(stop: false, measure: 0) }
            let last = answers.suffix(window)
            var counts: [String: Int] = [:]
            for case let answer? in last where !answer.isEmpty { counts[answer, default: 0] += 1 }
            let most = counts.values.max() ?? 0
            return Decision(stop: most == window, measure: Double(most) / Double(window))
        }
    }

    /// P(X > 1/2) for X ~ Beta(a + 1, b + 1), exactly: for whole a and b it is
    /// P(Binomial(a + b + 1, 1/2) <= a).
    public static func leaderIsLikelier(_ a: Int, _ b: Int) -> Double {
        let n = a + b + 1
        // Sum C(n, j) / 2^n for j = 0 ... a, in logs so that large n stays finite.
        var total = 0.0
        for j in 0...a {
            total += exp(lgamma(Double(n + 1)) - lgamma(Double(j + 1)) - lgamma(Double(n - j + 1)) - Double(n) * log(2.0))
        }
        return min(1, total)
    }
}
