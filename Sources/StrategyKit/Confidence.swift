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

/// Which generated tokens spell a solution's final answer: the tokens overlapping the last
/// place the answer's text appears (CoT-decoding, Wang & Zhou 2024, reads its confidence
/// there).
public enum AnswerSpan {
    /// `pieces[i]`: token i's bytes. nil when the answer's text is not in the solution.
    public static func tokens(spelling answer: String, in pieces: [[UInt8]]) -> [Int]? {
        let text = pieces.flatMap { $0 }
        let target = Array(answer.utf8)
        guard !target.isEmpty, text.count >= target.count else { return nil }
        var start = text.count - target.count
        while start >= 0 && !text[start..<(start + target.count)].elementsEqual(target) { start -= 1 }
        guard start >= 0 else { return nil }
        let end = start + target.count
        var offset = 0
        var span: [Int] = []
        for (index, piece) in pieces.enumerated() {
            if offset < end && offset + piece.count > start { span.append(index) }
            offset += piece.count
        }
        return span
    }
}
