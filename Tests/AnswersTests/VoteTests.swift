import XCTest
import Answers

final class VoteTests: XCTestCase {
    private func a(_ n: Int64) -> NumericAnswer { NumericAnswer(numerator: n)! }

    func testUnweightedMajority() throws {
        let result = try XCTUnwrap(Vote.majority([a(3), a(5), nil, a(5)]))
        XCTAssertEqual(result.answer, a(5))
        XCTAssertEqual(result.weight, 2)
        XCTAssertEqual(result.total, 3)
    }

    func testWeightsCanOutvoteCount() throws {
        let result = try XCTUnwrap(Vote.majority([a(3), a(5), a(5)], weights: [0.9, 0.3, 0.4]))
        XCTAssertEqual(result.answer, a(3))
        XCTAssertEqual(result.weight, 0.9, accuracy: 1e-12)
        XCTAssertEqual(result.total, 1.6, accuracy: 1e-12)
    }

    func testTieGoesToFirstSeen() {
        XCTAssertEqual(Vote.majority([a(7), a(2), a(2), a(7)])?.answer, a(7))
        XCTAssertEqual(Vote.majority([a(2), a(7), a(7), a(2)])?.answer, a(2))
        XCTAssertEqual(Vote.majority([a(1), a(2)], weights: [0.5, 0.5])?.answer, a(1))
    }

    func testNilWeightsSkipped() {
        XCTAssertEqual(Vote.majority([nil, a(1), nil], weights: [10, 1, 10])?.total, 1)
    }

    func testAllNilIsNil() {
        XCTAssertNil(Vote.majority([nil, nil]))
        XCTAssertNil(Vote.majority([]))
    }
}
