import Answers
import Foundation
import XCTest

/// MATH-500 answers as the daemon reads them from solutions (Tests/cases/math500.json); the
/// harness's tests grade the same answers against the gold.
final class MathAnswerCasesTests: XCTestCase {
    struct Graded: Decodable {
        let text: String
        let answer: String
    }

    struct Cases: Decodable {
        let graded: [Graded]
    }

    func testSolutionsReadAsTheHarnessGradesThem() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../cases/math500.json").standardized
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: file))
        XCTAssertGreaterThanOrEqual(cases.graded.count, 30)
        for item in cases.graded {
            XCTAssertEqual(AnswerExtractor.extract(item.text)?.description, item.answer, "extract: \(item.text)")
        }
    }
}
