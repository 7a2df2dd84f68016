import Foundation

/// Finds the final numeric answer in model output and GSM8K gold fields.
///
/// Numbers are read with: an optional leading "-" (U+2212 too), thousands commas only in
/// groups of three ("1,000,000"; "3, 4" stays two numbers), decimals ("0.5", ".5"),
/// fractions without spaces ("3/4", and LaTeX `\frac{3}{4}`/`\dfrac`/`\tfrac`), and
/// mixed numbers with one space ("1 1/2" is 3/2). Currency, "%" and trailing words or
/// units are ignored ("50%" is 50, "18 km/h" is 18). Values that do not fit an Int64
/// fraction (more than 18 decimal places, or beyond Int64) are not read as numbers.
public enum AnswerExtractor {
    /// The final answer of a solution, by priority: the last `\boxed{}` that holds one
    /// number, then the last answer phrase ("The answer is", "Final answer:",
    /// "Answer:", "the answer (arabic numerals) is"), then the last "####", then the
    /// last number anywhere. An answer phrase beats numbers written after it.
    public static func extract(_ text: String) -> NumericAnswer? {
        if let boxed = boxedContents(text).reversed().lazy.compactMap({ parse(String($0)) }).first {
            return boxed
        }
        let plain = normalized(text)
        return lastAnswer(after: answerPhrase, in: plain)
            ?? lastAnswer(after: goldMarker, in: plain)
            ?? numbers(in: plain).last
    }

    /// One answer string, e.g. a gold final or the inside of `\boxed{}`: the part after
    /// the last "=" must hold exactly one number (words and units around it are fine).
    public static func parse(_ s: String) -> NumericAnswer? {
        let found = numbers(in: afterLastEquals(normalized(s)))
        return found.count == 1 ? found[0] : nil
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

    /// Optional "the"/"final" need no pattern: matching from "answer" covers them.
    private static let answerPhrase = regex(
        #"\banswer(?:\s*\(arabic numerals\))?[\s*]*(?:is\b[\s*]*:?|:)[\s*]*"#, caseInsensitive: true)
    private static let goldMarker = regex(#"####[\s*]*"#)
    /// An answer sentence ends at a newline or a period that is not a decimal point.
    private static let sentenceEnd = regex(#"\n|\.(?!\d)"#)

    /// LaTeX and typography rewritten to plain text before numbers are read.
    private static let rewrites: [(NSRegularExpression, String)] = [
        (regex(#"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}"#), " $1 "),
        (regex(#"\\[dt]?frac\{\s*([^{}]*?)\s*\}\{\s*([^{}]*?)\s*\}"#), "$1/$2"),
        (regex(#"\\([$%])"#), "$1"),
        (regex(#"(?<=\d)\{,\}(?=\d)"#), ","),
        (regex("\u{2212}"), "-"),
    ]

    private static func normalized(_ text: String) -> String {
        rewrites.reduce(text) { text, rewrite in
            rewrite.0.stringByReplacingMatches(
                in: text, range: NSRange(text.startIndex..., in: text), withTemplate: rewrite.1)
        }
    }

    private static func numbers(in text: String) -> [NumericAnswer] {
        number.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { match in
            func group(_ i: Int) -> Substring? { Range(match.range(at: i), in: text).map { text[$0] } }
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
    }

    /// The first number of the sentence after each match of `marker`, trying the last match
    /// first. Within the sentence the result of a final "=" wins ("is 48 + 24 = 72").
    private static func lastAnswer(after marker: NSRegularExpression, in text: String) -> NumericAnswer? {
        for match in marker.matches(in: text, range: NSRange(text.startIndex..., in: text)).reversed() {
            guard let end = Range(match.range, in: text)?.upperBound else { continue }
            var sentence = text[end...]
            if let stop = sentenceEnd.firstMatch(in: text, range: NSRange(end..., in: text)),
               let range = Range(stop.range, in: text) {
                sentence = text[end..<range.lowerBound]
            }
            if let first = numbers(in: afterLastEquals(String(sentence))).first { return first }
        }
        return nil
    }

    private static func afterLastEquals(_ text: String) -> String {
        text.range(of: "=", options: .backwards).map { String(text[$0.upperBound...]) } ?? text
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

    private static func regex(_ pattern: String, caseInsensitive: Bool = false) -> NSRegularExpression {
        // The patterns are constants: failing to compile is a programming error.
        try! NSRegularExpression(pattern: pattern, options: caseInsensitive ? [.caseInsensitive] : [])
    }
}
