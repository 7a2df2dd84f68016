import Foundation
import RPC
import TestSupport
import XCTest

/// A plugin's settings come from the daemon's configuration (a file, --plugin-config), are
/// checked at load against what the plugin declares, and are shown by plugins.list.
final class PluginSettingsTests: XCTestCase {
    func plugin(_ name: String, in daemon: DaemonProcess) throws -> JSON? {
        try daemon.call("plugins.list").arrayValue?.first { $0["name"]?.stringValue == name }
    }

    func testSettingsFromTheFileAndTheFlagReachThePluginAndAreListed() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("strategyd-config-\(UUID().uuidString).json")
        try #"{"plugins": {"quiet-star": {"heads_dir": "/srv/heads"}}}"#.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let daemon = try DaemonProcess(plugins: ["greedy", "quiet-star", "quiet-rebase"],
                                       extraArguments: ["--config", file.path, "--plugin-config", "quiet-rebase.heads_dir=mine"])
        defer { daemon.stop(); daemon.removeFolder() }
        XCTAssertEqual(try plugin("quiet-star", in: daemon)?["settings"]?["heads_dir"], "/srv/heads")
        // A relative path is taken from the plugin directory.
        XCTAssertEqual(try plugin("quiet-rebase", in: daemon)?["settings"]?["heads_dir"]?.stringValue,
                       daemon.pluginDirectory.appendingPathComponent("mine").path)
        XCTAssertEqual(try plugin("quiet-star", in: daemon)?["settings_schema"]?["heads_dir"]?["type"], "path")
        XCTAssertEqual(try plugin("greedy", in: daemon)?["settings"], [:])
        // The setting is what the plugin reads: a head is looked for in that folder.
        XCTAssertThrowsError(try daemon.call("solve", ["problem": "1 + 1?", "strategy": "quiet-star",
                                                      "params": ["max_tokens": 2, "mixing": "learned", "head": "h.json"]])) { error in
            XCTAssertTrue("\(error)".contains("/srv/heads/h.json"), "\(error)")
        }
    }

    func testABadSettingRefusesThatPluginNamingTheSettingAndTheDaemonServes() throws {
        let daemon = try DaemonProcess(plugins: ["greedy", "quiet-star"],
                                       extraArguments: ["--plugin-config", "quiet-star.heads_dir=3",
                                                        "--plugin-config", "greedy.width=2"])
        defer { daemon.stop(); daemon.removeFolder() }
        XCTAssertNil(try plugin("quiet-star", in: daemon))
        XCTAssertNil(try plugin("greedy", in: daemon), "greedy takes no settings")
        XCTAssertTrue(daemon.log.contains("setting quiet-star.heads_dir must be a path"), daemon.log)
        XCTAssertTrue(daemon.log.contains("it takes none"), daemon.log)
        // An unknown setting is refused by name too, when the plugin is loaded by hand.
        XCTAssertEqual(try daemon.call("ping"), "pong")
        guard case .failure(let error) = try daemon.client().call("plugins.load", ["name": "quiet-star"]) else {
            return XCTFail("a plugin with a bad setting must stay refused")
        }
        XCTAssertEqual(error.data?["reason"], "bad_settings")
    }

    func testTheReplacedHeadsDirFlagStillWorksWithAWarning() throws {
        let daemon = try DaemonProcess(plugins: ["quiet-star"], extraArguments: ["--heads-dir", "/srv/old-heads"])
        defer { daemon.stop(); daemon.removeFolder() }
        XCTAssertEqual(try plugin("quiet-star", in: daemon)?["settings"]?["heads_dir"], "/srv/old-heads")
        XCTAssertTrue(daemon.log.contains("--heads-dir is replaced"), daemon.log)
    }

    func testMalformedConfigurationStopsTheDaemonAtStart() throws {
        for arguments in [["--plugin-config", "no-dot=1"], ["--config", "/nonexistent/strategyd.json"]] {
            XCTAssertThrowsError(try DaemonProcess(plugins: [], extraArguments: arguments), "\(arguments)") { error in
                XCTAssertTrue("\(error)".contains(arguments[0]), "\(error)")
            }
        }
    }

    func testTheReplacedResourceFlagsAreReadAsTheirSettings() throws {
        let daemon = try DaemonProcess(plugins: ["quiet-star", "prm"],
                                       extraArguments: ["--hidden-states", "--prm-model", try TestAssets.model()])
        defer { daemon.stop(); daemon.removeFolder() }
        XCTAssertEqual(try plugin("quiet-star", in: daemon)?["settings"]?["hidden_states"], true)
        XCTAssertEqual(try plugin("prm", in: daemon)?["settings"]?["model"]?.stringValue, try TestAssets.model())
        let info = try daemon.call("models.info")
        XCTAssertEqual(info["hidden_states"], true)
        XCTAssertEqual(info["reward_model"]?["path"]?.stringValue, try TestAssets.model())
        XCTAssertTrue(daemon.log.contains("--hidden-states is replaced"), daemon.log)
        XCTAssertTrue(daemon.log.contains("--prm-model is replaced"), daemon.log)
    }

    func testWithoutTheSettingsNoResourceIsTurnedOn() throws {
        let daemon = try DaemonProcess(plugins: ["quiet-star", "prm"])
        defer { daemon.stop(); daemon.removeFolder() }
        let info = try daemon.call("models.info")
        XCTAssertEqual(info["hidden_states"], false)
        XCTAssertEqual(info["reward_model"], .null)
    }

    func testOnlyConfigureMayAskForSharedResources() throws {
        let daemon = try DaemonProcess(plugins: [], prepare: {
            try CPlugin.compile("Tests/DaemonTests/Fixtures/fixture_plugin.c", into: $0, name: "greedy-asker",
                                defines: ["-DFIXTURE_NAME=\"greedy-asker\"", "-DFIXTURE_ASKS_RESOURCES"])
        })
        defer { daemon.stop(); daemon.removeFolder() }
        let result = try daemon.call("solve", ["problem": "1 + 1?", "strategy": "greedy-asker", "params": ["tokens": 1]])
        XCTAssertEqual(result["text"], "statuses -1 -1", "a request must not turn on what every solve shares")
        XCTAssertEqual(try daemon.call("models.info")["hidden_states"], false)
    }
}
