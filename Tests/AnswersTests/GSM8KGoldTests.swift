import Foundation
import XCTest
import Answers
import TestSupport

/// Every gold answer of GSM8K test must read back as the number after "####".
final class GSM8KGoldTests: XCTestCase {
    private struct Row: Decodable {
        let question: String
        let answer: String
        let idx: Int
    }

    func testEveryGoldAnswerParses() throws {
        // Missing data is a failure, not a skip: a silently skipped check is no check.
        let text = try String(contentsOfFile: try TestAssets.dataset("gsm8k-test"), encoding: .utf8)
        let rows = try text.split(separator: "\n").map {
            try JSONDecoder().decode(Row.self, from: Data($0.utf8))
        }
        XCTAssertEqual(rows.count, 1319)

        var withCommas = 0, negative = 0
        for row in rows {
            let final = try XCTUnwrap(row.answer.components(separatedBy: "####").last)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if final.contains(",") { withCommas += 1 }
            if final.hasPrefix("-") { negative += 1 }
            // The expected value is read without the extractor: strip commas, read an integer.
            let expected = try XCTUnwrap(Int64(final.replacingOccurrences(of: ",", with: ""))
                .flatMap { NumericAnswer(numerator: $0) }, "row \(row.idx): \(final)")
            XCTAssertEqual(AnswerExtractor.gold(fromGSM8K: row.answer), expected, "row \(row.idx)")
            XCTAssertEqual(AnswerExtractor.parse(final), expected, "row \(row.idx)")
            XCTAssertEqual(AnswerExtractor.extract(row.answer), .number(expected), "row \(row.idx)")
        }
        XCTAssertEqual(withCommas, 14)
        XCTAssertEqual(negative, 2)
    }
}
