/// A trace's confidence from its tokens' (TokenSignals.confidence), as DeepConf (Fu et al.
/// 2025) measures it, and the percentile that sets its online threshold.
public enum TraceConfidence {
    /// The lowest mean token confidence over any `window` consecutive tokens: what the
    /// online stop watches. A trace shorter than the window has its mean.
    public static func lowestGroup(_ confidence: [Float], window: Int) -> Double {
        guard !confidence.isEmpty else { return 0 }
        let width = max(1, min(window, confidence.count))
        var sum = confidence[..<width].reduce(0) { $0 + Double($1) }
        var lowest = sum
        for end in width..<confidence.count {
            sum += Double(confidence[end]) - Double(confidence[end - width])
            lowest = min(lowest, sum)
        }
        return lowest / Double(width)
    }

    public static func mean(_ values: [Float]) -> Double {
        values.isEmpty ? 0 : values.reduce(0) { $0 + Double($1) } / Double(values.count)
    }

    /// The value with `percent` of `values` at or below it, interpolating linearly
    /// between order statistics (numpy's default).
    public static func percentile(_ values: [Double], _ percent: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let position = min(max(percent, 0), 100) / 100 * Double(sorted.count - 1)
        let below = Int(position.rounded(.down))
        let above = min(below + 1, sorted.count - 1)
        return sorted[below] + (sorted[above] - sorted[below]) * (position - Double(below))
    }
}
