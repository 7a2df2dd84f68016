import Foundation
import Gateway
import JSONValue
import XCTest

/// The gateway's spec parser against the cases the harness's Python parser is held to
/// (Tests/cases/specs.json).
final class StrategySpecTests: XCTestCase {
    func cases() throws -> JSON {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../cases/specs.json").standardized
        return try JSON.parse(String(contentsOf: file, encoding: .utf8))
    }

    func testParsesAsTheHarnessDoes() throws {
        let parse = try XCTUnwrap(cases()["parse"]?.arrayValue)
        XCTAssertGreaterThan(parse.count, 10)
        for item in parse {
            let text = try XCTUnwrap(item["text"]?.stringValue)
            let spec = try StrategySpec(parsing: text, defaultBudget: item["default_budget"]?.stringValue ?? "")
            XCTAssertEqual(spec.strategy, item["strategy"]?.stringValue, text)
            // JSON equality tells 8 from 8.0, as the daemon's schema does.
            XCTAssertEqual(JSON.object(spec.params), item["params"], text)
            XCTAssertEqual(JSON.object(spec.budget), item["budget"], text)
        }
    }

    func testRefusesWhatTheHarnessRefuses() throws {
        let refuse = try XCTUnwrap(cases()["refuse"]?.arrayValue)
        XCTAssertGreaterThan(refuse.count, 10)
        for item in refuse {
            let text = try XCTUnwrap(item["text"]?.stringValue)
            XCTAssertThrowsError(try StrategySpec(parsing: text, defaultBudget: item["default_budget"]?.stringValue ?? ""), text)
        }
    }
}
