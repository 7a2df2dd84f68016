import ArgumentParser
import Foundation
import RPC

/// Exit codes (documented in `strategyctl --help`).
enum Exit {
    static let failed: Int32 = 1        // the daemon answered with an error
    static let notRunning: Int32 = 3    // nothing listens on the socket
    static let connectionLost: Int32 = 4
}

struct Connection: ParsableArguments {
    @Option(help: "Socket path. Default: $STRATEGYD_SOCKET, else $XDG_RUNTIME_DIR/strategyd/strategyd.sock, else /run/strategyd/strategyd.sock.")
    var socket: String?

    @Flag(help: "Print the raw JSON result.")
    var json = false

    /// Runs one call and turns failures into the documented exit codes.
    func call(_ method: String, _ params: JSON? = nil, onNotification: (JSON) -> Void = { _ in }) throws -> JSON {
        let path = SocketPath.resolve(socket)
        do {
            let client = try RPCClient(path: path)
            switch try client.call(method, params, onNotification: onNotification) {
            case .success(let result): return result
            case .failure(let error):
                FileHandle.standardError.write(Data("strategyctl: \(error)\n".utf8))
                throw ExitCode(Exit.failed)
            }
        } catch let failure as RPCClient.Failure {
            FileHandle.standardError.write(Data("strategyctl: \(failure)\n".utf8))
            if case .notRunning = failure { throw ExitCode(Exit.notRunning) }
            throw ExitCode(Exit.connectionLost)
        }
    }

    func printJSON(_ value: JSON) { print(value.serialized()) }
}

struct StrategyCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "strategyctl",
        abstract: "Talk to a running strategyd.",
        discussion: "Exit codes: 0 ok; 1 the daemon answered with an error; 3 strategyd is not running; 4 the connection was lost.",
        subcommands: [Solve.self, Status.self, Metrics.self, Ping.self, Plugins.self])
}

struct Solve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Solve a problem with a strategy and print the answer and its compute.")

    @OptionGroup var connection: Connection

    @Argument(help: "The problem; '-' reads it from standard input.")
    var problem: String

    @Option(name: .shortAndLong, help: "Strategy plugin.")
    var strategy = "greedy"

    @Option(name: .shortAndLong, help: "A strategy param as key=value (repeatable); values are JSON numbers, booleans or strings, else strings. An object (scorer_params={\"prompt\":\"fresh\"}) is passed as its JSON text.")
    var param: [String] = []

    @Option(help: "Budget: evaluated tokens.") var maxTokens: Int?
    @Option(help: "Budget: FLOPs.") var maxFlops: Double?
    @Option(help: "Budget: seconds.") var timeout: Double?
    @Option(help: "Base seed of the strategy's samplers.") var seed: Int?

    @Flag(inversion: .prefixedNo, help: "Show a live progress line (on a terminal).")
    var progress = true

    func run() throws {
        var text = problem
        if problem == "-" { text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) }
        var params: [String: JSON] = [:]
        for pair in param {
            guard let equals = pair.firstIndex(of: "=") else { throw ValidationError("--param takes key=value, got \(pair)") }
            let value = String(pair[pair.index(after: equals)...])
            // Params are numbers, booleans or strings; those holding JSON take it as text.
            switch try? JSON.parse(value) {
            case .object?, .array?, nil: params[String(pair[..<equals])] = .string(value)
            case let parsed?: params[String(pair[..<equals])] = parsed
            }
        }
        var budget: [String: JSON] = [:]
        if let maxTokens { budget["max_tokens"] = JSON(maxTokens) }
        if let maxFlops { budget["max_flops"] = JSON(maxFlops) }
        if let timeout { budget["timeout_s"] = JSON(timeout) }
        let live = progress && isatty(STDERR_FILENO) == 1 && !connection.json
        var request: [String: JSON] = ["problem": .string(text), "strategy": .string(strategy), "params": .object(params),
                                       "budget": .object(budget), "stream": .bool(live)]
        if let seed { request["seed"] = JSON(seed) }
        let result = try connection.call("solve", .object(request)) { notification in
            guard let event = notification["params"] else { return }
            let metrics = event["metrics"]
            let line = String(format: "\r\u{1B}[K%@ %@  tokens %lld  %.2e FLOPs  %.1f s",
                              strategy, event["event"]?.stringValue ?? "", metrics?["evaluated_tokens"]?.intValue ?? 0,
                              metrics?["flops"]?.doubleValue ?? 0, metrics?["wall_s"]?.doubleValue ?? 0)
            FileHandle.standardError.write(Data(line.utf8))
        }
        if live { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        if connection.json { return connection.printJSON(result) }
        let metrics = result["metrics"] ?? [:]
        print(result["text"]?.stringValue ?? "")
        print("")
        print("answer: \(result["answer"]?.stringValue ?? "none")")
        print(String(format: "metrics: %@ v%@  prompt %lld  generated %lld  thought %lld  scorer %lld  evaluated %lld tokens  %.3e FLOPs  %.2f s%@",
                     result["strategy"]?["name"]?.stringValue ?? strategy, result["strategy"]?["version"]?.stringValue ?? "?",
                     metrics["prompt_tokens"]?.intValue ?? 0, metrics["generated_tokens"]?.intValue ?? 0,
                     metrics["thought_tokens"]?.intValue ?? 0, metrics["scorer_tokens"]?.intValue ?? 0,
                     metrics["evaluated_tokens"]?.intValue ?? 0, metrics["flops"]?.doubleValue ?? 0,
                     metrics["wall_s"]?.doubleValue ?? 0, result["budget_exhausted"]?.boolValue == true
                        ? "  (budget exhausted: \(result["stopped_by"]?.stringValue ?? "?"))" : ""))
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The daemon's model, plugins, load and totals.")
    @OptionGroup var connection: Connection

    func run() throws {
        let status = try connection.call("status")
        if connection.json { return connection.printJSON(status) }
        let model = status["model"] ?? [:]
        let totals = status["totals"] ?? [:]
        print("strategyd \(status["version"]?.stringValue ?? "?"), up \(String(format: "%.0f", status["uptime_s"]?.doubleValue ?? 0)) s")
        print("model: \(model["name"]?.stringValue ?? "?") (\(model["description"]?.stringValue ?? "")), \(model["path"]?.stringValue ?? "")")
        print("plugins: \((status["plugins"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", "))")
        let backend = model["backend"] ?? [:]
        print("llama.cpp: ggml \(backend["ggml_version"]?.stringValue ?? "?") (\(backend["ggml_commit"]?.stringValue ?? "?")),"
              + " \(model["threads"]?.intValue ?? 0) threads; \(backend["system_info"]?.stringValue ?? "?")")
        let devices = (model["devices"]?.arrayValue ?? []).map { device -> String in
            let name = device["name"]?.stringValue ?? "?", description = device["description"]?.stringValue ?? ""
            guard let share = device["layer_share"]?.doubleValue else { return "\(name) (\(description))" }
            return "\(name) at \(description) (\(String(format: "%.0f", share * 100)) % of the layers)"
        }
        if !devices.isEmpty { print("devices: \(devices.joined(separator: ", "))") }
        print("in flight: \(status["solves_in_flight"]?.intValue ?? 0) solves, \(status["requests_in_flight"]?.intValue ?? 0) requests")
        print(String(format: "since start: %lld tokens evaluated, %.3e FLOPs", totals["evaluated_tokens"]?.intValue ?? 0,
                     totals["flops"]?.doubleValue ?? 0))
    }
}

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The daemon's metrics, in Prometheus text format.")
    @OptionGroup var connection: Connection

    func run() throws {
        let text = try connection.call("metrics")
        if connection.json { return connection.printJSON(text) }
        print(text.stringValue ?? "", terminator: "")
    }
}

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the daemon answers.")
    @OptionGroup var connection: Connection

    func run() throws {
        let started = Date()
        let answer = try connection.call("ping")
        print("\(answer.stringValue ?? answer.serialized()) in \(String(format: "%.2f", Date().timeIntervalSince(started) * 1000)) ms")
    }
}

struct Plugins: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, load, reload or unload plugins.",
        subcommands: [List.self, Load.self, Reload.self, Unload.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        @OptionGroup var connection: Connection
        func run() throws {
            let plugins = try connection.call("plugins.list")
            if connection.json { return connection.printJSON(plugins) }
            for plugin in plugins.arrayValue ?? [] {
                print("\(plugin["name"]?.stringValue ?? "?") \(plugin["version"]?.stringValue ?? "?") [\(plugin["kind"]?.stringValue ?? "?")] generation \(plugin["generation"]?.intValue ?? 0): \(plugin["description"]?.stringValue ?? "")")
                for (key, value) in (plugin["settings"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
                    print("    setting \(key) = \(value.stringValue ?? value.serialized())")
                }
            }
        }
    }

    struct Load: ParsableCommand {
        @OptionGroup var connection: Connection
        @Argument var name: String
        func run() throws { try Plugins.administer("plugins.load", name, connection) }
    }

    struct Reload: ParsableCommand {
        @OptionGroup var connection: Connection
        @Argument var name: String
        func run() throws { try Plugins.administer("plugins.reload", name, connection) }
    }

    struct Unload: ParsableCommand {
        @OptionGroup var connection: Connection
        @Argument var name: String
        func run() throws { try Plugins.administer("plugins.unload", name, connection) }
    }

    static func administer(_ method: String, _ name: String, _ connection: Connection) throws {
        let result = try connection.call(method, ["name": .string(name)])
        if connection.json || result["generation"] == nil { return connection.printJSON(result) }
        print("\(name) \(result["version"]?.stringValue ?? "?") generation \(result["generation"]?.intValue ?? 0)")
    }
}

StrategyCtl.main()
