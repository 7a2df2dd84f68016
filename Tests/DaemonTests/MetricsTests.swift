import Foundation
import RPC
import TestSupport
import XCTest

/// The `metrics` method of a real daemon: Prometheus text whose counters move with what
/// the daemon did.
final class MetricsTests: XCTestCase {
    /// Samples of the Prometheus text: name, labels, value.
    private func samples(_ text: String) -> [(name: String, labels: [String: String], value: Double)] {
        text.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...])
            else { return nil }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else { return (String(series), [:], value) }
            var labels: [String: String] = [:]
            for pair in series[series.index(after: brace)..<series.index(before: series.endIndex)].split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                labels[String(parts[0])] = String(parts[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
            return (String(series[..<brace]), labels, value)
        }
    }

    private func value(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples(text).first { sample in
            sample.name == name && labels.allSatisfy { key, value in sample.labels[key] == value }
        }?.value
    }

    func testASolveAndARefusalMoveTheirCounters() throws {
        let daemon = try DaemonProcess(extraArguments: ["--max-string-bytes", "1024"])
        defer { daemon.stop(); daemon.removeFolder() }
        let result = try daemon.call("solve", ["problem": "What is 2 + 3?", "params": ["max_tokens": 8]])
        _ = try? daemon.client().call("solve", ["problem": .string(String(repeating: "x", count: 2000))])
        let text = try XCTUnwrap(try daemon.call("metrics").stringValue)

        XCTAssertEqual(value(text, "strategyd_solves_total", ["strategy": "greedy", "outcome": "ok"]), 1, text)
        XCTAssertEqual(value(text, "strategyd_tokens_total", ["kind": "prompt"]),
                       result["metrics"]?["prompt_tokens"]?.doubleValue, text)
        XCTAssertEqual(value(text, "strategyd_tokens_total", ["kind": "generated"]),
                       result["metrics"]?["generated_tokens"]?.doubleValue, text)
        XCTAssertEqual(try XCTUnwrap(value(text, "strategyd_flops_total")),
                       try XCTUnwrap(result["metrics"]?["flops"]?.doubleValue), accuracy: 1e6)
        XCTAssertEqual(value(text, "strategyd_solve_duration_seconds_count", ["strategy": "greedy"]), 1, text)
        XCTAssertEqual(value(text, "strategyd_refusals_total", ["limit": "max_string_bytes"]), 1, text)
        XCTAssertEqual(value(text, "strategyd_live_sequences"), 0, text)
        XCTAssertEqual(value(text, "strategyd_solves_running"), 0, text)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(value(text, "strategyd_connections_open")), 1, text)
        XCTAssertTrue(text.contains("# TYPE strategyd_solves_total counter"), text)
    }
}
