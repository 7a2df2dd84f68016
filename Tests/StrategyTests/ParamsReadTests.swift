import Foundation
import RPC
import TestSupport
import XCTest

/// Every param a plugin's own sources read is one it declares, under its own name (the
/// daemon hands plugins their params under those names only). StrategyKit traps on an
/// undeclared read in debug builds; this finds one even on a path no other test takes.
final class ParamsReadTests: XCTestCase {
    func testPluginsReadOnlyParamsTheyDeclare() throws {
        let plugins = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Plugins").standardized
        let folders = try FileManager.default.contentsOfDirectory(atPath: plugins.path).sorted()
        let daemon = try DaemonProcess(plugins: folders)
        defer { daemon.stop() }
        let listed = try XCTUnwrap(daemon.call("plugins.list").arrayValue)
        let schemas = Dictionary(uniqueKeysWithValues: listed.compactMap { plugin -> (String, Set<String>)? in
            guard let name = plugin["name"]?.stringValue, let schema = plugin["params_schema"]?.objectValue else { return nil }
            return (name, Set(schema.keys))
        })
        let read = try NSRegularExpression(pattern: #"params\.(?:int|double|bool|string|object)\("([a-z_0-9]+)"\)"#)
        var checked = 0
        for folder in folders {
            let declared = try XCTUnwrap(schemas[folder], "plugin \(folder) is not loaded by the test daemon")
            let dir = plugins.appendingPathComponent(folder)
            for file in try FileManager.default.contentsOfDirectory(atPath: dir.path) where file.hasSuffix(".swift") {
                let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
                for match in read.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    let key = String(text[Range(match.range(at: 1), in: text)!])
                    XCTAssertTrue(declared.contains(key), "\(folder)/\(file) reads '\(key)', which \(folder) does not declare")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 20, "the pattern must find the plugins' reads")
    }
}
