import Answers
import Foundation
import XCTest

/// The vote against the cases the harness's Python vote is held to (Tests/cases/vote.json).
final class VoteTests: XCTestCase {
    struct Case: Decodable {
        let name: String
        let answers: [String?]
        let weights: [Double]?
        let mode: String
        let chosen: Int
        let votes: [Int]
        let weights_out: [Double]
    }

    func testSharedCases() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../cases/vote.json").standardized
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: file))
        XCTAssertGreaterThanOrEqual(cases.count, 10)
        for item in cases {
            let mode: Vote.Mode = item.mode == "weighted" ? .weighted : .plain
            let outcome = Vote.count(answers: item.answers, weights: item.weights, mode: mode)
            XCTAssertEqual(outcome.chosen, item.chosen, item.name)
            XCTAssertEqual(outcome.tallies.map(\.votes), item.votes, item.name)
            XCTAssertEqual(outcome.tallies.count, item.weights_out.count, item.name)
            for (got, expected) in zip(outcome.tallies.map(\.weight), item.weights_out) {
                XCTAssertEqual(got, expected, accuracy: 1e-9, item.name)
            }
        }
    }
}
