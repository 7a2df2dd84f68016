import JSONValue
import PluginHost
import XCTest

/// The daemon's check of a request's params against a plugin's schema, without a daemon.
final class ParamsSchemaTests: XCTestCase {
    let schema = try! ParamsSchema(parsing: """
        {"width": {"type": "integer", "default": 4, "minimum": 1, "maximum": 16, "aliases": ["beam_width"]},
         "stop": {"type": "string", "default": "\\n\\n", "aliases": ["step_delimiter"]},
         "scorer_params": {"type": "object", "default": {}}}
        """)

    func testDefaultsFillTheParamsOut() throws {
        let params = try schema.complete(nil).get()
        XCTAssertEqual(params, ["width": 4, "stop": "\n\n", "scorer_params": [:]])
    }

    func testAnAliasIsReadUnderTheParamsOwnName() throws {
        let params = try schema.complete(["beam_width": 8, "step_delimiter": "Step"]).get()
        XCTAssertEqual(params["width"], 8)
        XCTAssertEqual(params["stop"], "Step")
        XCTAssertNil(params["beam_width"])
    }

    func testAParamGivenUnderTwoNamesIsRefused() {
        guard case .failure(let mismatch) = schema.complete(["width": 8, "beam_width": 8]) else {
            return XCTFail("two names for one param must be refused")
        }
        XCTAssertTrue(mismatch.param.hasPrefix("params."))
        XCTAssertTrue(mismatch.expected.contains("same param"), mismatch.expected)
    }

    func testAnAliasIsCheckedLikeTheParam() {
        guard case .failure(let mismatch) = schema.complete(["beam_width": 99]) else { return XCTFail("out of range") }
        XCTAssertEqual(mismatch.param, "params.beam_width")
        XCTAssertEqual(mismatch.expected, "an integer in [1, 16]")
    }

    func testObjectParamsTakeAnObjectOrTheOlderStringForm() throws {
        XCTAssertEqual(try schema.complete(["scorer_params": ["prompt": "fresh"]]).get()["scorer_params"], ["prompt": "fresh"])
        XCTAssertEqual(try schema.complete(["scorer_params": "{\"prompt\": \"fresh\"}"]).get()["scorer_params"],
                       ["prompt": "fresh"])
        for bad: JSON in ["[1]", "not json", 3, [1, 2]] {
            guard case .failure(let mismatch) = schema.complete(["scorer_params": bad]) else {
                return XCTFail("\(bad.serialized()) is not an object")
            }
            XCTAssertEqual(mismatch.param, "params.scorer_params")
        }
    }

    func testUnknownKeysAreNamed() {
        guard case .failure(let mismatch) = schema.complete(["misspelt": 1]) else { return XCTFail("unknown key") }
        XCTAssertEqual(mismatch.param, "params.misspelt")
    }

    func testAnAliasThatShadowsAParamIsABadSchema() {
        XCTAssertThrowsError(try ParamsSchema(parsing: """
            {"n": {"type": "integer", "default": 1, "aliases": ["k"]}, "k": {"type": "integer", "default": 1}}
            """))
    }
}
