import Foundation
import RPC
import TestSupport
import XCTest

/// strategyctl, the real binary, against a real daemon: what it prints and how it exits.
final class StrategyctlTests: XCTestCase {
    static let shared = SharedDaemon { try DaemonProcess(plugins: DaemonProcess.builtPlugins + ["best-of-n", "arith"]) }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    struct Run {
        var status: Int32
        var output: String
        var errors: String
    }

    func strategyctl(_ arguments: [String], socket: String? = nil) throws -> Run {
        let process = Process()
        process.executableURL = TestAssets.productsFolder.appendingPathComponent("strategyctl")
        process.arguments = arguments + ["--socket", try socket ?? Self.shared.get().socketPath]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self),
                   errors: String(decoding: err, as: UTF8.self))
    }

    func testSolvePrintsTheAnswerAndItsCompute() throws {
        let run = try strategyctl(["solve", "-s", "greedy", "-p", "max_tokens=8", "What is 2 + 3?"])
        XCTAssertEqual(run.status, 0, run.errors)
        let metrics = try XCTUnwrap(run.output.split(separator: "\n").first { $0.hasPrefix("metrics: greedy v") }, run.output)
        XCTAssertTrue(metrics.contains("FLOPs"), String(metrics))
        XCTAssertTrue(run.output.contains("\nanswer: "), run.output)
    }

    func testJSONParamsAndTheJSONResult() throws {
        // A number param as JSON, and an object given to a string param as its JSON text.
        let run = try strategyctl(["solve", "--json", "-s", "best-of-n", "-p", "n=2", "-p", "max_tokens=8", "-p", "scorer=arith",
                                   "-p", #"scorer_params={"neutral": 0.25}"#, "What is 2 + 3?"])
        XCTAssertEqual(run.status, 0, run.errors)
        let result = try JSON.parse(run.output)
        XCTAssertEqual(result["candidates"]?.arrayValue?.count, 2, run.output)
        XCTAssertEqual(result["strategy"]?["name"], "best-of-n")
        XCTAssertGreaterThan(result["metrics"]?["flops"]?.doubleValue ?? 0, 0)
    }

    func testStatusNamesTheModelAndTheBuildThatRunsIt() throws {
        let run = try strategyctl(["status"])
        XCTAssertEqual(run.status, 0, run.errors)
        XCTAssertTrue(run.output.contains("model: smollm2-135m-instruct-q4_1"), run.output)
        let backend = try XCTUnwrap(run.output.split(separator: "\n").first { $0.hasPrefix("llama.cpp: ggml ") }, run.output)
        XCTAssertTrue(backend.contains(" threads; CPU : "), String(backend))
    }

    func testExitCodesSayWhatWentWrong() throws {
        let unknown = try strategyctl(["solve", "-s", "no-such-plugin", "x"])
        XCTAssertEqual(unknown.status, 1, "the daemon answered with an error")
        XCTAssertTrue(unknown.errors.contains("no-such-plugin"), unknown.errors)

        let badParam = try strategyctl(["solve", "-s", "greedy", "-p", "max_tokens=many", "x"])
        XCTAssertEqual(badParam.status, 1)
        XCTAssertTrue(badParam.errors.contains("max_tokens"), badParam.errors)

        let nobody = try strategyctl(["ping"], socket: FileManager.default.temporaryDirectory
            .appendingPathComponent("no-daemon-\(UUID().uuidString.prefix(8)).sock").path)
        XCTAssertEqual(nobody.status, 3, "nothing listens on the socket: \(nobody.errors)")
    }
}
