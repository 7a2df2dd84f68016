import Foundation

/// Finds the final answer in model output and gold fields.
///
/// Numbers are read with: an optional leading "-" (U+2212 too), thousands commas only in
/// groups of three ("1,000,000"; "3, 4" stays two numbers), decimals ("0.5", ".5"),
/// fractions without spaces ("3/4", and LaTeX `\frac{3}{4}`/`\dfrac`/`\tfrac`), and
/// mixed numbers with one space ("1 1/2" is 3/2). Currency, "%", degree signs and trailing
/// words or units are ignored ("50%" is 50, "18 km/h" is 18). Values that do not fit an
/// Int64 fraction (more than 18 decimal places, or beyond Int64) are not read as numbers.
///
/// An answer is one number only when nothing around it is maths: `\sqrt{2}`, `2\pi`,
/// `x^2`, `6x`, `x+1` or `(1, -2)` are expressions (``Answer/expression(_:)``), read from
/// a `\boxed{}`, or after an answer phrase from a maths span (`$...$`, `\(...\)`) or a
/// sentence that is maths (not one that starts with a number followed by words).
public enum AnswerExtractor {
    /// The final answer of a solution, by priority: the last non-empty `\boxed{}`, then the
    /// last answer phrase ("The answer is", "Final answer:", "Answer:", "the answer (arabic
    /// numerals) is"), then the last "####", then the last number anywhere. An answer
    /// phrase beats numbers written after it.
    public static func extract(_ text: String) -> Answer? {
        if let boxed = boxedContents(text).reversed().lazy.compactMap({ read(String($0)) }).first {
            return boxed
        }
        if let phrased = lastPhraseAnswer(in: text) { return phrased }
        let plain = normalized(text)
        return (lastNumber(after: goldMarker, in: plain) ?? numbers(in: plain).last).map(Answer.number)
    }

    /// One answer string (the inside of `\boxed{}`, a plugin's answer): the number it
    /// states, else the expression it is, in canonical spelling; nil when empty or longer
    /// than ``Answer/maxExpressionBytes``.
    public static func read(_ s: String) -> Answer? {
        if let number = parse(s) { return .number(number) }
        return expression(s).map(Answer.expression)
    }

    /// One answer string read as a number, e.g. a gold final: the part after the last "="
    /// must hold exactly one number, with only words, units, currency or "%" around it.
    public static func parse(_ s: String) -> NumericAnswer? {
        let text = afterLastEquals(normalized(s))
        let found = numberMatches(in: text)
        guard found.count == 1, let value = found[0].value else { return nil }
        let residue = (text as NSString).replacingCharacters(in: found[0].range, with: " # ")
        return mathsAroundNumber.firstMatch(in: residue, range: NSRange(residue.startIndex..., in: residue)) == nil
            ? value : nil
    }

    /// The number after the last "####" of a GSM8K answer field.
    public static func gold(fromGSM8K answerField: String) -> NumericAnswer? {
        guard let marker = answerField.range(of: "####", options: .backwards) else { return nil }
        return parse(String(answerField[marker.upperBound...]))
    }

    // MARK: - Reading numbers

    private static let digitGroup = #"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)"#
    /// Groups: 1 sign, 2 whole part of a mixed number, 3 number or numerator, 4 denominator.
    /// The lookbehind keeps "x2" and the "3" of "5-3" from reading as numbers or negatives.
    private static let number = regex(
        #"(?<![\w.])(-)?(?:(\d+) (?=\d+/\d))?("# + digitGroup + #"(?:\.\d+)?|\.\d+)(?:/("#
            + digitGroup + #"(?:\.\d+)?))?"#)
    /// Around a number ("#" after parse's replacement), what makes the answer maths rather
    /// than a number with its unit: a LaTeX command, powers, indices, braces or brackets,
    /// one letter stuck to it ("6x", where "18km" is a unit), or a lone letter beside an
    /// operator ("x+1", "n-1"; "km/h" stays a unit, "T-shirts" a word).
    private static let mathsAroundNumber = regex(#"[\\^_{}()\[\]|]|# [A-Za-z](?![A-Za-z])|"# + loneVariable(#"-+*=^"#))

    /// A lone letter beside one of `operators` (inside a character class): a variable,
    /// not a hyphenated word.
    private static func loneVariable(_ operators: String) -> String {
        #"\b[A-Za-z]\s*["# + operators + #"](?!\s*[A-Za-z]{2})|["# + operators + #"]\s*[A-Za-z]\b"#
    }

    /// Optional "the"/"final" need no pattern: matching from "answer" covers them.
    private static let answerPhrase = regex(
        #"\banswer(?:\s*\(arabic numerals\))?[\s*]*(?:is\b[\s*]*:?|:)[\s*]*"#, caseInsensitive: true)
    private static let goldMarker = regex(#"####[\s*]*"#)
    /// An answer sentence ends at a newline or a period that is not a decimal point.
    private static let sentenceEnd = regex(#"\n|\.(?!\d)"#)
    /// `$...$` (not `\$`, and not a closing "$" that opens an amount: "$18 + $2 = $20") or
    /// `\(...\)`; group 1 or 2 is its content.
    private static let mathSpan = regex(#"(?<!\\)\$((?:[^$\\]|\\.)+)\$(?!\d)|\\\((.+?)\\\)"#)
    /// A lone letter beside an operator: a variable ("n - 1", "2 + x").
    private static let variable = regex(loneVariable(#"-+*/^="#))
    /// A sentence that starts with a number followed by words or a parenthesis ("18 because
    /// 6 \times 3 is 18", "18 (since 3x = 18)") answers with that number.
    private static let leadingNumber = regex(#"^\s*\$?\s*-?\d[\d,]*(?:\.\d+)?\s+\(?[A-Za-z]{2,}"#)
    /// What makes a phrase's answer an expression rather than words with numbers in them: a
    /// LaTeX command, a power or index, or a bracketed tuple or interval.
    private static let mathsMarker = regex(#"[\\^_{]|^\s*[(\[].*,.*[)\]]\s*$|\d[A-Za-z](?![A-Za-z])"#)

    /// `\text{...}` and its kin, whose content is plain words.
    private static let textWrapper = regex(#"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}"#)

    /// LaTeX that only lays out: degree signs, \left and \right, \displaystyle, thin and
    /// negative spaces ("10,\!080" is 10080).
    private static let layout = regex(
        #"\^\s*\{?\s*\\circ\s*\}?|(?<!\\)\\(?:(?:left|right|displaystyle)(?![A-Za-z])|[,;:! ])"#)

    /// LaTeX and typography rewritten to plain text before numbers are read.
    private static let rewrites: [(NSRegularExpression, String)] = [
        (textWrapper, " $1 "),
        (regex(#"(?<=\d)\s*(\\[dt]?frac\{)"#), " $1"),  // 1\frac{4}{5}: the mixed number "1 4/5"
        (regex(#"\\[dt]?frac\{\s*([^{}]*?)\s*\}\{\s*([^{}]*?)\s*\}"#), "$1/$2"),
        (regex(#"\\([$%])"#), "$1"),
        (regex(#"(?<=\d)\{,\}(?=\d)"#), ","),
        (layout, ""),
        (regex(#"(?<!\\)\\[()\[\]]"#), " "),  // \( \) \[ \] around an answer
        (regex(#"\(\s*[A-Za-z][A-Za-z ]*\)"#), " "),  // words in parentheses: "18 (dollars)"
        (regex("\u{2212}"), "-"),
    ]

    private static func normalized(_ text: String) -> String {
        replacing(rewrites, in: text)
    }

    private struct NumberMatch {
        let range: NSRange
        let value: NumericAnswer?
    }

    private static func numberMatches(in text: String) -> [NumberMatch] {
        number.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { match in
            func group(_ i: Int) -> Substring? { Range(match.range(at: i), in: text).map { text[$0] } }
            func value() -> NumericAnswer? {
                guard var value = group(3).flatMap(NumericAnswer.init(decimal:)) else { return nil }
                if let denominator = group(4) {
                    guard let d = NumericAnswer(decimal: denominator), let q = value.divided(by: d) else { return nil }
                    value = q
                }
                if let whole = group(2) {
                    guard let w = NumericAnswer(decimal: whole), let sum = w.adding(value) else { return nil }
                    value = sum
                }
                return group(1) == nil ? value : value.negated
            }
            return NumberMatch(range: match.range, value: value())
        }
    }

    private static func numbers(in text: String) -> [NumericAnswer] {
        numberMatches(in: text).compactMap(\.value)
    }

    /// The answer of the sentence after each answer phrase, trying the last phrase first: a
    /// maths span's expression or number, else the sentence's expression when it is maths,
    /// else its first number (within the sentence the result of a final "=" wins: "is
    /// 48 + 24 = 72").
    private static func lastPhraseAnswer(in text: String) -> Answer? {
        // Unwrapped first, so that a phrase written in \text{} is followed by its answer.
        let text = replacing([(textWrapper, " $1 ")], in: text)
        for sentence in sentences(after: answerPhrase, in: text).reversed() {
            let spans = mathSpan.matches(in: sentence, range: NSRange(sentence.startIndex..., in: sentence))
            for span in spans {
                let content = Range(span.range(at: 1), in: sentence) ?? Range(span.range(at: 2), in: sentence)
                // A span of symbols only ("$p - q$") or with a variable ("$n - 1$") is maths
                // too; one with digits and no maths is more likely money ("$5 + $3 = $8"),
                // read with the sentence.
                guard let content else { continue }
                let text = String(sentence[content])
                guard isMaths(text) || !text.contains(where: \.isNumber)
                        || variable.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
                else { continue }
                if let answer = read(text) { return answer }
            }
            if let number = parse(sentence) { return .number(number) }
            let trimmed = sentence.trimmingCharacters(in: .whitespaces)
            let plain = normalized(sentence)
            if leadingNumber.firstMatch(in: trimmed, range: NSRange(trimmed.startIndex..., in: trimmed)) != nil,
               let first = numbers(in: plain).first { return .number(first) }
            if isMaths(trimmed), let answer = read(trimmed) { return answer }
            if let first = numbers(in: afterLastEquals(plain)).first { return .number(first) }
        }
        return nil
    }

    private static func isMaths(_ text: String) -> Bool {
        mathsMarker.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    /// The first number of the sentence after each match of `marker`, trying the last first.
    private static func lastNumber(after marker: NSRegularExpression, in text: String) -> NumericAnswer? {
        sentences(after: marker, in: text).reversed().lazy
            .compactMap { numbers(in: afterLastEquals($0)).first }.first
    }

    /// The text after each match of `marker` up to the end of its sentence.
    private static func sentences(after marker: NSRegularExpression, in text: String) -> [String] {
        marker.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { match in
            guard let end = Range(match.range, in: text)?.upperBound else { return nil }
            guard let stop = sentenceEnd.firstMatch(in: text, range: NSRange(end..., in: text)),
                  let range = Range(stop.range, in: text) else { return String(text[end...]) }
            return String(text[end..<range.lowerBound])
        }
    }

    private static func afterLastEquals(_ text: String) -> String {
        text.range(of: "=", options: .backwards).map { String(text[$0.upperBound...]) } ?? text
    }

    // MARK: - Expressions

    /// Spellings that do not change an expression, rewritten in order.
    private static let expressionRewrites: [(NSRegularExpression, String)] = [
        (regex(#"^\s*(?:\$+|\\\(|\\\[)|(?:\$+|\\\)|\\\])\s*$"#), ""),
        (textWrapper, "$1"),
        (regex(#"\\[dt]frac"#), #"\\frac"#),
        (layout, ""),
        (regex("~"), ""),
        (regex(#"\\%|\\\$"#), ""),
        (regex(#"^\s*[A-Za-z]\s*=(?!=)"#), ""),
        // Spacing goes, but for one space between letters ("\cot x", "No solution").
        (regex(#"\s+"#), " "),
        (regex(#"(?<![A-Za-z]) | (?![A-Za-z])"#), ""),
        (regex(#"[.,]+$"#), ""),
    ]

    /// An expression in canonical spelling; nil when nothing is left, it is too long, or its
    /// braces do not pair (a piece cut out of LaTeX, not an answer).
    private static func expression(_ s: String) -> String? {
        let text = replacing(expressionRewrites, in: s)
        guard text.utf8.count <= Answer.maxExpressionBytes, text.contains(where: { $0.isLetter || $0.isNumber || $0.isSymbol }),
              let last = text.last, !"=+-*/^_\\".contains(last) else { return nil }
        var depth = 0
        for character in text {
            if character == "{" { depth += 1 } else if character == "}" { depth -= 1 }
            if depth < 0 { return nil }
        }
        return depth == 0 ? text : nil
    }

    /// Contents of every `\boxed{...}`, matching nested braces; an unclosed box ends the scan.
    private static func boxedContents(_ text: String) -> [Substring] {
        var contents: [Substring] = []
        var rest = text[...]
        while let open = rest.range(of: #"\boxed{"#) {
            var depth = 1
            var index = open.upperBound
            while index < rest.endIndex, depth > 0 {
                if rest[index] == "{" { depth += 1 } else if rest[index] == "}" { depth -= 1 }
                index = rest.index(after: index)
            }
            guard depth == 0 else { break }
            contents.append(rest[open.upperBound..<rest.index(before: index)])
            rest = rest[index...]
        }
        return contents
    }

    private static func replacing(_ rewrites: [(NSRegularExpression, String)], in text: String) -> String {
        rewrites.reduce(text) { text, rewrite in
            rewrite.0.stringByReplacingMatches(
                in: text, range: NSRange(text.startIndex..., in: text), withTemplate: rewrite.1)
        }
    }

    private static func regex(_ pattern: String, caseInsensitive: Bool = false) -> NSRegularExpression {
        // The patterns are constants: failing to compile is a programming error.
        try! NSRegularExpression(pattern: pattern, options: caseInsensitive ? [.caseInsensitive] : [])
    }
}
