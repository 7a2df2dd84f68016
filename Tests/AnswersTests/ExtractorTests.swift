import XCTest
import Answers

final class ExtractorTests: XCTestCase {
    private func value(_ numerator: Int64, _ denominator: Int64 = 1) -> NumericAnswer {
        NumericAnswer(numerator: numerator, denominator: denominator)!
    }

    private func number(_ numerator: Int64, _ denominator: Int64 = 1) -> Answer {
        .number(value(numerator, denominator))
    }

    func testBoxedWithNestedBraces() {
        XCTAssertEqual(AnswerExtractor.extract(#"so $x = \boxed{\frac{1}{2}}$"#), number(1, 2))
        XCTAssertEqual(AnswerExtractor.extract(#"\boxed{72} wait, no: \boxed{\$1,000}"#), number(1000))
        XCTAssertEqual(AnswerExtractor.extract(#"\boxed{18 \text{ dollars}}. The answer is 5"#), number(18))
    }

    /// Plugins size their answer buffers by this bound (SD_ANSWER_MAX_BYTES in the plugin
    /// ABI), so the extractor must never write more.
    func testLongestExpressionIsTheBound() {
        let longest = String(repeating: "x", count: Answer.maxExpressionBytes)
        XCTAssertEqual(AnswerExtractor.extract(#"\boxed{"# + longest + "}"), .expression(longest))
        XCTAssertNil(AnswerExtractor.extract(#"\boxed{"# + longest + "y}"))
    }

    func testAnswerIsWithDollarsAndCommas() {
        XCTAssertEqual(AnswerExtractor.extract("So in total, the answer is $1,080."), number(1080))
    }

    func testMarkdownAnswerLabel() {
        XCTAssertEqual(AnswerExtractor.extract("6 * 3 = 18\n\n**Answer:** 18"), number(18))
    }

    func testArabicNumeralsPhrase() {
        XCTAssertEqual(AnswerExtractor.extract("Therefore, the answer (arabic numerals) is 42."), number(42))
    }

    func testGoldMarker() {
        XCTAssertEqual(AnswerExtractor.extract("48 + 24 = 72 clips\n#### 72"), number(72))
    }

    func testLastNumberFallback() {
        XCTAssertEqual(AnswerExtractor.extract("She has 3 boxes of 4, so 12 pencils"), number(12))
    }

    func testNegatives() {
        XCTAssertEqual(AnswerExtractor.extract("The answer is -5"), number(-5))
        XCTAssertEqual(AnswerExtractor.extract("The answer is \u{2212}5"), number(-5))
        XCTAssertEqual(AnswerExtractor.extract("10-3 = 7"), number(7))
    }

    func testHalfInThreeSpellings() {
        XCTAssertEqual(AnswerExtractor.parse("0.5"), value(1, 2))
        XCTAssertEqual(AnswerExtractor.parse("1/2"), value(1, 2))
        XCTAssertEqual(AnswerExtractor.parse(#"\frac{1}{2}"#), value(1, 2))
        XCTAssertEqual(AnswerExtractor.parse(#"\dfrac{1}{2}"#), value(1, 2))
        XCTAssertEqual(AnswerExtractor.parse(".5"), value(1, 2))
    }

    func testMixedNumber() {
        XCTAssertEqual(AnswerExtractor.parse("1 1/2 cups"), value(3, 2))
    }

    func testPercent() {
        XCTAssertEqual(AnswerExtractor.extract("The answer is 50%"), number(50))
        XCTAssertEqual(AnswerExtractor.parse(#"18\%"#), value(18))
    }

    func testListIsNotThousands() {
        XCTAssertEqual(AnswerExtractor.extract("The sides are 3, 4 and 5"), number(5))
        XCTAssertNil(AnswerExtractor.parse("3, 4"))
    }

    func testThousands() {
        XCTAssertEqual(AnswerExtractor.parse("1,000,000"), value(1_000_000))
        XCTAssertEqual(AnswerExtractor.parse("1{,}000"), value(1000))
    }

    func testNoNumber() {
        XCTAssertNil(AnswerExtractor.extract("I cannot solve this problem."))
        XCTAssertNil(AnswerExtractor.parse(""))
    }

    func testTrailingZerosCollapse() {
        XCTAssertEqual(AnswerExtractor.parse("72.00"), AnswerExtractor.parse("72"))
        XCTAssertEqual(AnswerExtractor.parse("$72"), value(72))
        XCTAssertEqual(AnswerExtractor.parse("72.0"), AnswerExtractor.parse("72"))
    }

    func testUnitsAfterNumber() {
        XCTAssertEqual(AnswerExtractor.extract("The answer is 72 clips."), number(72))
        XCTAssertEqual(AnswerExtractor.extract("The answer is 5 dollars"), number(5))
        XCTAssertEqual(AnswerExtractor.extract("The answer is 18 km/h."), number(18))
        XCTAssertEqual(AnswerExtractor.extract("The answer is 3.5 hours."), number(7, 2))
    }

    func testAnswerPhraseBeatsLaterNumbers() {
        XCTAssertEqual(AnswerExtractor.extract("The answer is 72. Check: 48 + 24 = 72"), number(72))
        XCTAssertEqual(AnswerExtractor.extract("The answer is 72.\n\nNote: 3 steps"), number(72))
        XCTAssertEqual(AnswerExtractor.extract("The final answer is 48 + 24 = 72.\n5 + 5 = 10"), number(72))
    }

    func testAnswerOnTheNextLine() {
        XCTAssertEqual(AnswerExtractor.extract("**Final Answer**:\n\n$18$\n\n(6 per day)"), number(18))
    }


    func testGoldField() {
        XCTAssertEqual(AnswerExtractor.gold(fromGSM8K: "2+3=<<2+3=5>>5\n#### 1,450,000"), value(1_450_000))
        XCTAssertNil(AnswerExtractor.gold(fromGSM8K: "no marker 5"))
    }
}

final class NumericAnswerTests: XCTestCase {
    func testCanonicalDescription() {
        let cases: [(Int64, Int64, String)] = [
            (72, 1, "72"), (-5, 1, "-5"), (1, 4, "0.25"), (-1, 8, "-0.125"), (1, 3, "1/3"),
            (-2, 6, "-1/3"), (144, 2, "72"), (0, 7, "0"), (1_000_000, 1, "1000000"), (1, 100, "0.01"),
        ]
        for (numerator, denominator, text) in cases {
            XCTAssertEqual(NumericAnswer(numerator: numerator, denominator: denominator)?.description, text)
        }
    }

    func testEqualValuesHashEqually() {
        let answers = ["72", "72.0", "$72", "72.00", "144/2"].compactMap(AnswerExtractor.parse)
        XCTAssertEqual(answers.count, 5)
        XCTAssertEqual(Set(answers).count, 1)
    }

    func testZeroDenominatorIsNil() {
        XCTAssertNil(NumericAnswer(numerator: 1, denominator: 0))
        XCTAssertNil(AnswerExtractor.parse("1/0"))
    }
}
