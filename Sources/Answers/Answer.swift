import PluginABI

/// A final answer as strategies vote on it: an exact number, or, where the answer is not
/// one number (MATH: `\sqrt{2}`, `(1,-2)`, `[2,5)`), a maths expression in a canonical
/// spelling.
///
/// The spelling only has to make the forms a model writes for one answer equal, so that a
/// vote counts them together: spacing, `\left`/`\right`, `\dfrac`, `\text{}` wrappers and
/// degree signs go. Whether two different expressions are equal in value (`\frac{1}{\sqrt2}`
/// and `\frac{\sqrt2}{2}`) is the grader's question (the harness asks math-verify), not the
/// vote's.
public enum Answer: Sendable, Hashable, CustomStringConvertible {
    case number(NumericAnswer)
    case expression(String)

    /// An expression longer than this, in UTF-8 bytes, is not read as an answer: it is a
    /// piece of working, and a bound keeps every vote's keys short. The plugin ABI promises
    /// plugins this bound, so it is the header's.
    public static let maxExpressionBytes = Int(SD_ANSWER_MAX_BYTES)

    public var description: String {
        switch self {
        case .number(let value): return value.description
        case .expression(let text): return text
        }
    }

    public var number: NumericAnswer? {
        if case .number(let value) = self { return value }
        return nil
    }
}
