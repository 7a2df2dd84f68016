import Answers
import Foundation
import XCTest

/// Answer reading against the cases the harness's Python grading is held to
/// (Tests/cases/answers.json).
final class SharedAnswerCasesTests: XCTestCase {
    struct TextCase: Decodable {
        let text: String
        let answer: String?
        let expression: Bool?
    }

    struct GoldCase: Decodable {
        let gold_field: String
        let gold: String?
    }

    struct Cases: Decodable {
        let extract: [TextCase]
        let parse: [TextCase]
        let gsm8k_gold: [GoldCase]
    }

    func testSharedCases() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../cases/answers.json").standardized
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: file))
        XCTAssertFalse(cases.extract.isEmpty || cases.parse.isEmpty || cases.gsm8k_gold.isEmpty)
        for item in cases.extract {
            let answer = AnswerExtractor.extract(item.text)
            XCTAssertEqual(answer?.description, item.answer, "extract: \(item.text)")
            XCTAssertEqual(answer?.number == nil, item.expression ?? (item.answer == nil), "extract kind: \(item.text)")
        }
        for item in cases.parse {
            XCTAssertEqual(AnswerExtractor.parse(item.text)?.description, item.answer, "parse: \(item.text)")
        }
        for item in cases.gsm8k_gold {
            XCTAssertEqual(AnswerExtractor.gold(fromGSM8K: item.gold_field)?.description, item.gold, "gold: \(item.gold_field)")
        }
    }
}
