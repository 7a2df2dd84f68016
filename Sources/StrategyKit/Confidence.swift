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
/// there). The answer is in the daemon's canonical spelling ("1080", "x^2+1"), so layout
/// is skipped on both sides: whitespace, and a comma between digits ("1,080" spells 1080).
public enum AnswerSpan {
    /// `pieces[i]`: token i's bytes. nil when the answer's text is not in the solution.
    public static func tokens(spelling answer: String, in pieces: [[UInt8]]) -> [Int]? {
        let (text, offsets) = withoutLayout(pieces.flatMap { $0 })
        let target = withoutLayout(Array(answer.utf8)).bytes
        guard !target.isEmpty, text.count >= target.count else { return nil }
        var start = text.count - target.count
        while start >= 0 && !text[start..<(start + target.count)].elementsEqual(target) { start -= 1 }
        guard start >= 0 else { return nil }
        let (first, last) = (offsets[start], offsets[start + target.count - 1])
        var offset = 0
        var span: [Int] = []
        for (index, piece) in pieces.enumerated() {
            if offset <= last && offset + piece.count > first { span.append(index) }
            offset += piece.count
        }
        return span
    }

    /// The bytes that spell, with each one's offset in `bytes`: whitespace goes, and a comma
    /// that groups thousands (a digit before it, exactly three after: "1,080", not "1, 2").
    private static func withoutLayout(_ bytes: [UInt8]) -> (bytes: [UInt8], offsets: [Int]) {
        let isDigit = { (index: Int) in
            bytes.indices.contains(index) && bytes[index] >= UInt8(ascii: "0") && bytes[index] <= UInt8(ascii: "9")
        }
        let kept = bytes.indices.filter { index in
            if " \n\t\r".utf8.contains(bytes[index]) { return false }
            let groupsThousands = bytes[index] == UInt8(ascii: ",") && isDigit(index - 1)
                && (1...3).allSatisfy { isDigit(index + $0) } && !isDigit(index + 4)
            return !groupsThousands
        }
        return (kept.map { bytes[$0] }, kept)
    }
}
