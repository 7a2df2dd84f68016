import Foundation
import RPC
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The real daemon, over its real socket, on the test model.
final class DaemonTests: XCTestCase {
    static let natalia = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?"
    /// One daemon for the tests that do not change its plugins.
    static let shared = SharedDaemon { try DaemonProcess(prepare: { try FixturePlugins.build(into: $0) }) }

    func daemon() throws -> DaemonProcess { try Self.shared.get() }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    func expectError(_ result: Result<JSON, RPCError>, code: Int, file: StaticString = #filePath, line: UInt = #line) -> RPCError? {
        switch result {
        case .success(let value):
            XCTFail("expected error \(code), got \(value.serialized())", file: file, line: line)
            return nil
        case .failure(let error):
            XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
            return error
        }
    }

    // MARK: methods

    func testPingStatusAndModelInfo() throws {
        let daemon = try daemon()
        XCTAssertEqual(try daemon.call("ping"), "pong")
        let status = try daemon.call("status")
        XCTAssertEqual(status["model"]?["architecture"], "llama")
        XCTAssertNotNil(status["uptime_s"]?.doubleValue)
        XCTAssertEqual(status["plugins"]?.arrayValue?.contains("greedy"), true)
        XCTAssertNotNil(status["totals"]?["flops"])
        let info = try daemon.call("models.info")
        XCTAssertEqual(info["layers"], 30)
        XCTAssertEqual(info["vocabulary_size"], 49152)
        XCTAssertEqual(info["name"], "smollm2-135m-instruct-q4_1")
        XCTAssertGreaterThan(info["non_embedding_parameters"]?.intValue ?? 0, 100_000_000)
        // The build and kernels that computed the logits, for telling why seeded runs differ.
        XCTAssertEqual(info["backend"]?["system_info"]?.stringValue?.hasPrefix("CPU : "), true)
        XCTAssertEqual(info["backend"]?["ggml_version"]?.stringValue?.isEmpty, false)
    }

    func testSocketIsNotWorldWritable() throws {
        let daemon = try daemon()
        var info = stat()
        XCTAssertEqual(stat(daemon.socketPath, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o660)
    }

    func testPluginsList() throws {
        let plugins = try daemon().call("plugins.list").arrayValue ?? []
        let greedy = try XCTUnwrap(plugins.first { $0["name"] == "greedy" })
        XCTAssertEqual(greedy["kind"], "strategy")
        XCTAssertEqual(greedy["abi"], 1)
        XCTAssertEqual(greedy["params_schema"]?["max_tokens"]?["type"], "integer")
        XCTAssertNotNil(greedy["loaded_at"]?.stringValue)
        XCTAssertNotNil(plugins.first { $0["name"] == "self-consistency" })
        XCTAssertNil(plugins.first { $0["name"] == "wrong-abi" }, "a refused plugin is not listed")
    }

    func testGreedySolveIsWellFormed() throws {
        let result = try daemon().call("solve", ["problem": .string(DaemonTests.natalia), "params": ["max_tokens": 48]])
        XCTAssertEqual(result["strategy"]?["name"], "greedy")
        XCTAssertFalse(result["text"]?.stringValue?.isEmpty ?? true)
        XCTAssertNotNil(result["answer"])
        XCTAssertEqual(result["budget_exhausted"], false)
        let metrics = try XCTUnwrap(result["metrics"])
        let prompt = try XCTUnwrap(metrics["prompt_tokens"]?.intValue)
        let generated = try XCTUnwrap(metrics["generated_tokens"]?.intValue)
        let evaluated = try XCTUnwrap(metrics["evaluated_tokens"]?.intValue)
        XCTAssertGreaterThan(prompt, 20)
        XCTAssertGreaterThan(generated, 0)
        XCTAssertLessThanOrEqual(generated, 48)
        XCTAssertTrue(evaluated == prompt + generated || evaluated == prompt + generated - 1, "\(metrics.serialized())")
        XCTAssertGreaterThan(metrics["flops"]?.doubleValue ?? 0, 2 * 1e8 * Double(evaluated))
        XCTAssertEqual(result["candidates"]?.arrayValue?.count, 1)
    }

    func testSelfConsistencyVotesAndSharesThePrompt() throws {
        let result = try daemon().call("solve", ["problem": "What is 2 + 3?", "strategy": "self-consistency",
                                                 "params": ["k": 4, "max_tokens": 24], "seed": 3])
        XCTAssertEqual(result["candidates"]?.arrayValue?.count, 4)
        let metrics = try XCTUnwrap(result["metrics"])
        XCTAssertEqual(metrics["forks"], 4)
        let prompt = try XCTUnwrap(metrics["prompt_tokens"]?.intValue)
        let evaluated = try XCTUnwrap(metrics["evaluated_tokens"]?.intValue)
        let generated = try XCTUnwrap(metrics["generated_tokens"]?.intValue)
        XCTAssertLessThanOrEqual(evaluated, prompt + generated, "the prompt is evaluated once for the 4 samples")
        XCTAssertEqual(result["details"]?["samples"], 4)
    }

    func testStreamingSendsProgressBeforeTheResult() throws {
        let client = try daemon().client()
        var events: [JSON] = []
        let result = try client.call("solve", ["problem": "Say hi.", "params": ["max_tokens": 24, "progress_every": 8],
                                               "stream": true]) { events.append($0) }
        guard case .success = result else { return XCTFail("\(result)") }
        XCTAssertGreaterThanOrEqual(events.count, 2)
        XCTAssertEqual(events.first?["params"]?["event"], "started")
        XCTAssertTrue(events.allSatisfy { $0["method"] == "progress" && $0["params"]?["id"] == 1 })
        XCTAssertTrue(events.contains { $0["params"]?["event"] == "step" && $0["params"]?["metrics"]?["flops"] != nil })
    }

    func testBudgetEndsTheSolveWithTheBestSoFar() throws {
        let result = try daemon().call("solve", ["problem": .string(DaemonTests.natalia), "strategy": "slow-echo",
                                                 "params": ["tokens": 400], "budget": ["max_tokens": 150]])
        XCTAssertEqual(result["budget_exhausted"], true)
        XCTAssertEqual(result["stopped_by"], "max_tokens")
        XCTAssertLessThanOrEqual(result["metrics"]?["evaluated_tokens"]?.intValue ?? .max, 151)
    }

    func testAStrategyThatFinishesPastItsTimeIsNotReportedAsStopped() throws {
        // The two tokens come well within the budget; the strategy then outlasts it.
        let result = try daemon().call("solve", ["problem": "x", "strategy": "slow-echo",
                                                 "params": ["tokens": 2, "linger_ms": 3500], "budget": ["timeout_s": 3]])
        XCTAssertEqual(result["text"], "generated 2 tokens")
        XCTAssertGreaterThan(result["metrics"]?["wall_s"]?.doubleValue ?? 0, 3)
        XCTAssertEqual(result["budget_exhausted"], false)
        XCTAssertEqual(result["stopped_by"], .null)
    }

    func testAFullContextEndsTheSolveWithWhatWasGenerated() throws {
        let daemon = try DaemonProcess(extraArguments: ["--context-size", "256"],
                                       prepare: { try FixturePlugins.build(into: $0) })
        defer { _ = daemon.stop(); daemon.removeFolder() }
        let result = try daemon.call("solve", ["problem": "x", "strategy": "slow-echo", "params": ["tokens": 400]])
        XCTAssertEqual(result["budget_exhausted"], true)
        XCTAssertEqual(result["stopped_by"], "kv_cache")
        let generated = result["metrics"]?["generated_tokens"]?.intValue ?? 0
        XCTAssertGreaterThan(generated, 100)
        XCTAssertLessThan(generated, 256)
        XCTAssertEqual(result["text"]?.stringValue, "generated \(generated) tokens")
        XCTAssertEqual(try daemon.call("ping"), "pong")
    }

    // MARK: bad input

    func testMalformedJSONThenTheConnectionStillWorks() throws {
        let client = try daemon().client()
        try client.sendRaw(Array("{\"jsonrpc\": \"2.0\", \"method\": \"ping\", \"id\": 1\n".utf8))
        let response = try client.readMessage()
        XCTAssertEqual(response["error"]?["code"], -32700)
        XCTAssertEqual(response["id"], .null)
        XCTAssertEqual(try client.call("ping").get(), "pong")
    }

    func testInvalidRequestsAndWrongTypes() throws {
        let daemon = try daemon()
        let client = try daemon.client()
        try client.sendRaw(Array("{\"jsonrpc\": \"1.0\", \"method\": \"ping\", \"id\": 7}\n".utf8))
        XCTAssertEqual(try client.readMessage()["error"]?["code"], -32600)
        try client.sendRaw(Array("[]\n".utf8))
        XCTAssertEqual(try client.readMessage()["error"]?["code"], -32600)
        try client.sendRaw(Array("42\n".utf8))
        XCTAssertEqual(try client.readMessage()["error"]?["code"], -32600)

        let wrongType = expectError(try client.call("solve", ["problem": 5]), code: -32602)
        XCTAssertEqual(wrongType?.data?["param"], "problem")
        let unknownKey = expectError(try client.call("solve", ["problem": "x", "params": ["widht": 3]]), code: -32602)
        XCTAssertEqual(unknownKey?.data?["param"], "params.widht")
        let outOfRange = expectError(try client.call("solve", ["problem": "x", "params": ["max_tokens": 0]]), code: -32602)
        XCTAssertEqual(outOfRange?.data?["param"], "params.max_tokens")
        let badBudget = expectError(try client.call("solve", ["problem": "x", "budget": ["max_tokens": -1]]), code: -32602)
        XCTAssertEqual(badBudget?.data?["param"], "budget.max_tokens")
        _ = expectError(try client.call("solve", .array(["x"])), code: -32602)
        let unknownMethod = expectError(try client.call("solvee"), code: -32601)
        XCTAssertEqual(unknownMethod?.data?["method"], "solvee")
        let unknownPlugin = expectError(try client.call("solve", ["problem": "x", "strategy": "nope"]), code: -32000)
        XCTAssertEqual(unknownPlugin?.data?["plugin"], "nope")
        _ = expectError(try client.call("plugins.load", ["name": "../../etc/passwd"]), code: -32602)
        XCTAssertEqual(try client.call("ping").get(), "pong")
    }

    func testOversizedLineIsRefusedAndSkipped() throws {
        let daemon = try DaemonProcess(extraArguments: ["--max-request-bytes", "4096"])
        defer { daemon.stop(); daemon.removeFolder() }
        let client = try daemon.client()
        let huge = "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"solve\", \"params\": {\"problem\": \""
            + String(repeating: "a", count: 100_000) + "\"}}\n"
        try client.sendRaw(Array(huge.utf8))
        let refusal = try client.readMessage()
        XCTAssertEqual(refusal["error"]?["code"], -32600)
        XCTAssertEqual(try client.call("ping").get(), "pong", "the rest of the oversized line was skipped")
    }

    func testHalfALineThenDisconnect() throws {
        let daemon = try daemon()
        do {
            let client = try daemon.client()
            try client.sendRaw(Array("{\"jsonrpc\": \"2.0\", \"method\": \"solve\", \"params\": {\"problem\": \"unfinis".utf8))
        }
        XCTAssertEqual(try daemon.call("ping"), "pong")
    }

    func testBatchAndNotifications() throws {
        let client = try daemon().client()
        try client.sendRaw(Array(("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
            + "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"},"
            + "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope\"},"
            + "{\"foo\":1}]\n").utf8))
        let responses = try XCTUnwrap(try client.readMessage().arrayValue)
        XCTAssertEqual(responses.count, 3, "no response to the notification")
        XCTAssertTrue(responses.contains { $0["id"] == 1 && $0["result"] == "pong" })
        XCTAssertTrue(responses.contains { $0["id"] == 2 && $0["error"]?["code"] == -32601 })
        XCTAssertTrue(responses.contains { $0["id"] == .null && $0["error"]?["code"] == -32600 })
        // A notification alone gets nothing: the next response is the ping's.
        try client.sendRaw(Array("{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}\n".utf8))
        XCTAssertEqual(try client.call("ping").get(), "pong")
    }

    // MARK: concurrency and cancellation

    func testPipelinedPingIsAnsweredWhileASolveRuns() throws {
        let client = try daemon().client()
        try client.sendRaw(Array(("{\"jsonrpc\":\"2.0\",\"id\":\"long\",\"method\":\"solve\",\"params\":"
            + "{\"problem\":\"x\",\"strategy\":\"slow-echo\",\"params\":{\"tokens\":200}}}\n"
            + "{\"jsonrpc\":\"2.0\",\"id\":\"quick\",\"method\":\"ping\"}\n").utf8))
        let first = try client.readMessage()
        XCTAssertEqual(first["id"], "quick", "the ping overtakes the solve")
        let second = try client.readMessage()
        XCTAssertEqual(second["id"], "long")
        XCTAssertEqual(second["result"]?["details"], [:])
    }

    func testTwoConcurrentClients() throws {
        let daemon = try daemon()
        let socketPath = daemon.socketPath
        let lock = NSLock()
        nonisolated(unsafe) var results: [JSON] = []
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            let result = try? RPCClient(path: socketPath).call(
                "solve", ["problem": "x", "strategy": "slow-echo", "params": ["tokens": 32]]).get()
            lock.withLock { results.append(result ?? .null) }
        }
        XCTAssertEqual(results.count, 2)
        for result in results { XCTAssertEqual(result["text"], "generated 32 tokens") }
    }

    func testCancel() throws {
        let daemon = try daemon()
        let client = try daemon.client()
        try client.sendRaw(Array(("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"solve\",\"params\":"
            + "{\"problem\":\"x\",\"strategy\":\"slow-echo\",\"params\":{\"tokens\":4000}}}\n").utf8))
        usleep(300_000)
        let other = try daemon.client()
        XCTAssertEqual(try other.call("cancel", ["id": 9]).get()["cancelled"], false, "another connection cannot cancel it")
        try client.sendRaw(Array("{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"cancel\",\"params\":{\"id\":9}}\n".utf8))
        var answers: [JSON] = []
        while answers.count < 2 { answers.append(try client.readMessage()) }
        XCTAssertTrue(answers.contains { $0["id"] == 10 && $0["result"]?["cancelled"] == true })
        XCTAssertTrue(answers.contains { $0["id"] == 9 && $0["error"]?["code"] == -32003 })
        XCTAssertEqual(try client.call("cancel", ["id": 9]).get()["cancelled"], false, "an answered solve is gone")
        XCTAssertEqual(try daemon.call("status")["solves_in_flight"], 0)
    }

    func testDisconnectCancelsTheClientsSolves() throws {
        let daemon = try daemon()
        do {
            let client = try daemon.client()
            try client.sendRaw(Array(("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"solve\",\"params\":"
                + "{\"problem\":\"x\",\"strategy\":\"slow-echo\",\"params\":{\"tokens\":4000}}}\n").utf8))
            usleep(300_000)
            XCTAssertEqual(try daemon.call("status")["solves_in_flight"], 1)
        }
        let deadline = Date().addingTimeInterval(10)
        while try daemon.call("status")["solves_in_flight"] != 0, Date() < deadline { usleep(50_000) }
        XCTAssertEqual(try daemon.call("status")["solves_in_flight"], 0)
        XCTAssertTrue(daemon.log.contains("client gone, cancelled its solves"))
    }

    // MARK: plugins

    func testRefusedPluginsAndTheDaemonCarriesOn() throws {
        let daemon = try daemon()
        let client = try daemon.client()
        let abi = expectError(try client.call("plugins.load", ["name": "wrong-abi"]), code: -32002)
        XCTAssertEqual(abi?.data?["reason"], "abi_version")
        XCTAssertEqual(abi?.data?["expected"], "1")
        XCTAssertEqual(abi?.data?["found"], "99")
        let entry = expectError(try client.call("plugins.load", ["name": "no-entry"]), code: -32002)
        XCTAssertEqual(entry?.data?["reason"], "no_entry_symbol")
        let newer = expectError(try client.call("plugins.load", ["name": "newer-header"]), code: -32002)
        XCTAssertEqual(newer?.data?["reason"], "host_abi")
        let tiny = expectError(try client.call("plugins.load", ["name": "tiny-struct"]), code: -32002)
        XCTAssertEqual(tiny?.data?["reason"], "struct_size")
        XCTAssertEqual(tiny?.data?["found"], "16")
        let missing = expectError(try client.call("plugins.load", ["name": "not-there"]), code: -32002)
        XCTAssertEqual(missing?.data?["reason"], "not_found")
        XCTAssertTrue(daemon.log.contains("wrong-abi"), "the refusal at start-up is logged")
        XCTAssertEqual(try client.call("ping").get(), "pong")
    }

    func testReloadWhileASolveIsInFlight() throws {
        let daemon = try DaemonProcess(prepare: { try FixturePlugins.build(into: $0, version: "1.0.0") })
        defer { daemon.stop(); daemon.removeFolder() }
        let solving = try daemon.client()
        try solving.sendRaw(Array(("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"solve\",\"params\":"
            + "{\"problem\":\"x\",\"strategy\":\"slow-echo\",\"params\":{\"tokens\":150}}}\n").utf8))
        usleep(300_000)
        try FixturePlugins.compile(into: daemon.pluginDirectory, name: "slow-echo", version: "2.0.0")
        let started = Date()
        let reloaded = try daemon.call("plugins.reload", ["name": "slow-echo"])
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.0)
        XCTAssertEqual(reloaded["version"], "2.0.0")
        let old = try solving.readMessage()
        XCTAssertEqual(old["result"]?["strategy"]?["version"], "1.0.0", "the solve in flight finished on the old generation")
        let new = try daemon.call("solve", ["problem": "x", "strategy": "slow-echo", "params": ["tokens": 4]])
        XCTAssertEqual(new["strategy"]?["version"], "2.0.0", "the next solve uses the new one")
    }

    func testWatchAndSIGHUPReloadChangedPlugins() throws {
        let daemon = try DaemonProcess(plugins: [], extraArguments: ["--watch"],
                                       prepare: { try FixturePlugins.compile(into: $0, name: "slow-echo", version: "1.0.0") })
        defer { daemon.stop(); daemon.removeFolder() }
        func version() throws -> JSON? {
            try daemon.call("plugins.list").arrayValue?.first { $0["name"] == "slow-echo" }?["version"]
        }
        XCTAssertEqual(try version(), "1.0.0")
        try FixturePlugins.compile(into: daemon.pluginDirectory, name: "slow-echo", version: "2.0.0")
        let deadline = Date().addingTimeInterval(10)
        while try version() != "2.0.0", Date() < deadline { usleep(100_000) }
        XCTAssertEqual(try version(), "2.0.0", "--watch reloaded the rebuilt file")
        // A broken rebuild is refused and the working generation stays.
        try FixturePlugins.compile(into: daemon.pluginDirectory, name: "slow-echo", defines: ["-DFIXTURE_ABI=2"])
        usleep(2_500_000)
        XCTAssertEqual(try version(), "2.0.0")
        XCTAssertTrue(daemon.log.contains("new build refused, old one kept"))
    }

    func testSIGHUPReloadsChangedPlugins() throws {
        let daemon = try DaemonProcess(plugins: ["greedy"],
                                       prepare: { try FixturePlugins.compile(into: $0, name: "slow-echo", version: "1.0.0") })
        defer { daemon.stop(); daemon.removeFolder() }
        func plugin(_ name: String) throws -> JSON? {
            try daemon.call("plugins.list").arrayValue?.first { $0["name"] == .string(name) }
        }
        let greedyGeneration = try plugin("greedy")?["generation"]
        try FixturePlugins.compile(into: daemon.pluginDirectory, name: "slow-echo", version: "3.0.0")
        usleep(1_500_000)
        XCTAssertEqual(try plugin("slow-echo")?["version"], "1.0.0", "without --watch nothing reloads by itself")
        kill(daemon.process.processIdentifier, SIGHUP)
        let deadline = Date().addingTimeInterval(10)
        while try plugin("slow-echo")?["version"] != "3.0.0", Date() < deadline { usleep(100_000) }
        XCTAssertEqual(try plugin("slow-echo")?["version"], "3.0.0")
        XCTAssertEqual(try plugin("greedy")?["generation"], greedyGeneration, "an unchanged plugin is not reloaded")
    }

    func testSwiftPluginReloadsRepeatedlyWithoutCrashing() throws {
        let daemon = try daemon()
        var generations: Set<Int64> = []
        for _ in 0..<3 {
            let reloaded = try daemon.call("plugins.reload", ["name": "greedy"])
            generations.insert(try XCTUnwrap(reloaded["generation"]?.intValue))
            let result = try daemon.call("solve", ["problem": "Say hi.", "params": ["max_tokens": 4]])
            XCTAssertEqual(result["strategy"]?["generation"]?.intValue, reloaded["generation"]?.intValue)
        }
        XCTAssertEqual(generations.count, 3)
    }

    func testCPluginLoadsUnloadsAndReloads() throws {
        let daemon = try daemon()
        XCTAssertEqual(try daemon.call("plugins.unload", ["name": "self-consistency"])["unloaded"], "self-consistency")
        let client = try daemon.client()
        _ = expectError(try client.call("solve", ["problem": "x", "strategy": "self-consistency"]), code: -32000)
        _ = expectError(try client.call("plugins.unload", ["name": "self-consistency"]), code: -32000)
        XCTAssertEqual(try daemon.call("plugins.load", ["name": "self-consistency"])["name"], "self-consistency")
        let reloaded = try daemon.call("plugins.reload", ["name": "self-consistency"])
        let result = try daemon.call("solve", ["problem": "x", "strategy": "self-consistency", "params": ["k": 2, "max_tokens": 4]])
        XCTAssertEqual(result["strategy"]?["generation"], reloaded["generation"])
    }

    func testRetiredCGenerationsAreUnmapped() throws {
        let daemon = try daemon()
        for _ in 0..<3 { _ = try daemon.call("plugins.reload", ["name": "slow-echo"]) }
        _ = try daemon.call("solve", ["problem": "x", "strategy": "slow-echo", "params": ["tokens": 2]])
        // slow-echo is built with plain cc: retired generations leave the address space.
        // (SwiftPM-built libraries, C or Swift, are registered with the Swift runtime and stay.)
        XCTAssertEqual(mappedGenerations(of: "slow-echo", in: daemon).count, 1)
        _ = try daemon.call("plugins.reload", ["name": "greedy"])
        XCTAssertGreaterThanOrEqual(mappedGenerations(of: "greedy", in: daemon).count, 2, "Swift images are never unmapped")
    }

    func mappedGenerations(of plugin: String, in daemon: DaemonProcess) -> Set<String> {
        let maps = FileHandle(forReadingAtPath: "/proc/\(daemon.process.processIdentifier)/maps")?.readDataToEndOfFile() ?? Data()
        return Set(String(decoding: maps, as: UTF8.self).split(separator: "\n").compactMap { line in
            line.split(separator: "/").last.flatMap { $0.hasPrefix("lib\(plugin).") ? String($0) : nil }
        })
    }

    // MARK: shutdown

    func testSIGTERMLetsTheSolveFinishAndRemovesTheSocket() throws {
        let daemon = try DaemonProcess(prepare: { try FixturePlugins.build(into: $0) })
        defer { daemon.removeFolder() }
        let client = try daemon.client()
        try client.sendRaw(Array(("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"solve\",\"params\":"
            + "{\"problem\":\"x\",\"strategy\":\"slow-echo\",\"params\":{\"tokens\":100}}}\n").utf8))
        usleep(300_000)
        kill(daemon.process.processIdentifier, SIGTERM)
        let response = try client.readMessage()
        XCTAssertEqual(response["result"]?["text"], "generated 100 tokens", "the solve in flight finished")
        XCTAssertEqual(daemon.stop(), 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.socketPath))
    }
}

/// The C fixture plugins of Fixtures/fixture_plugin.c, built with cc.
enum FixturePlugins {
    static func build(into folder: URL, version: String = "1.0.0") throws {
        try compile(into: folder, name: "slow-echo", version: version)
        try compile(into: folder, name: "wrong-abi", defines: ["-DFIXTURE_ABI=99"])
        try compile(into: folder, name: "no-entry", defines: ["-DFIXTURE_NO_ENTRY"])
        try compile(into: folder, name: "newer-header", defines: ["-DFIXTURE_HOST_SIZE=100000"])
        try compile(into: folder, name: "tiny-struct", defines: ["-DFIXTURE_PLUGIN_SIZE=16"])
    }

    static func compile(into folder: URL, name: String, version: String = "1.0.0", defines: [String] = []) throws {
        try CPlugin.compile("Tests/DaemonTests/Fixtures/fixture_plugin.c", into: folder, name: name,
                            defines: ["-DFIXTURE_NAME=\"\(name)\"", "-DFIXTURE_VERSION=\"\(version)\""] + defines)
    }
}
