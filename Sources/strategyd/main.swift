import ArgumentParser
import Engine
import Foundation
import Logging
import PluginHost
import RPC
import Systemd
#if canImport(Glibc)
import Glibc
#endif

struct StrategyDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "strategyd",
        abstract: "Keeps one GGUF model resident and solves problems with strategy plugins over JSON-RPC.",
        discussion: "API: docs/api.md. Plugin ABI: Sources/PluginABI/include/strategyd_plugin.h.",
        version: Configuration.version)

    @Option(help: "A catalog model name (fetched by scripts/setup) or a path to a GGUF file. Default: \(Configuration.defaultModelName).")
    var model: String?

    @Option(help: .hidden)
    var prmModel: String?

    @Option(help: "Socket path. Default: $STRATEGYD_SOCKET, else $XDG_RUNTIME_DIR/strategyd/strategyd.sock, else /run/strategyd/strategyd.sock.")
    var socket: String?

    @Option(help: "Mode of the socket file, octal.")
    var socketMode: String = "0660"

    @Option(help: "Folder of plugin libraries (lib<name>.so). Default: $STRATEGYD_PLUGIN_DIR, else the folder of this executable.")
    var pluginDir: String?

    @Option(help: "A JSON configuration file: {\"plugins\": {\"NAME\": {\"SETTING\": VALUE, ...}}}, each plugin's settings (plugins.list shows what each takes).")
    var config: String?

    @Option(name: .customLong("plugin-config"), parsing: .singleValue,
            help: "A plugin's setting, NAME.SETTING=VALUE (repeatable; over the file's). VALUE is JSON, else a string.")
    var pluginConfig: [String] = []

    @Option(help: .hidden)
    var headsDir: String?

    @Flag(help: "Reload a plugin when its file changes.")
    var watch = false

    @Option(help: "llama.cpp RPC servers (ggml-rpc-server) as HOST:PORT[,HOST:PORT...]: the model's layers go to their devices, split over them (docs/scaling.md). Default: $STRATEGYD_RPC, else none (this host's CPU).")
    var rpc: String?

    @Option(help: "Each RPC device's share of the layers, as proportions W[,W...] (for example 3,1). Default: $STRATEGYD_TENSOR_SPLIT, else by each device's free memory.")
    var tensorSplit: String?

    @Option(help: "A chat template llama.cpp has built in, by name (gemma, chatml, llama3, ...), used instead of the model's own: for a base model whose GGUF carries none. Default: $STRATEGYD_CHAT_TEMPLATE, else the model's.")
    var chatTemplate: String?

    @Option(help: "CPU threads for decoding (1-256). Default: every core.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "KV cache cells shared by all sequences (\(Configuration.contextSize.range)).")
    var contextSize: Int = Configuration.contextSize.defaultValue

    @Flag(help: .hidden)
    var hiddenStates = false

    @Flag(help: "Batch-invariant numerics: a seeded solve gives the same tokens alone or with any other solves, at some cost in speed (docs/api.md).")
    var deterministic = false

    @Option(help: "Longest request line in bytes (\(Configuration.requestBytes.range)).")
    var maxRequestBytes: Int = Configuration.requestBytes.defaultValue

    @Option(help: "Solves running at once, their decodes batched together (\(Configuration.concurrentSolves.range)).")
    var maxConcurrentSolves: Int = Configuration.concurrentSolves.defaultValue

    @Option(help: "Solves waiting for a running place, in arrival order; beyond them a solve is refused Busy (\(Configuration.queuedSolves.range)).")
    var maxQueuedSolves: Int = Configuration.queuedSolves.defaultValue

    @Option(help: "Evaluated tokens per solve when budget.max_tokens is not given (at most --max-tokens).")
    var defaultTokens: Int = Configuration.solveTokens.defaultValue

    @Option(help: "The most budget.max_tokens may ask for (\(Configuration.solveTokensCap.range)).")
    var maxTokens: Int = Configuration.solveTokensCap.defaultValue

    @Option(help: "Seconds per solve when budget.timeout_s is not given (at most --max-timeout).")
    var defaultTimeout: Double = Configuration.timeout.defaultValue

    @Option(help: "The most budget.timeout_s may ask for (\(Configuration.timeoutCap.range)).")
    var maxTimeout: Double = Configuration.timeoutCap.defaultValue

    @Option(help: "Connections open at once; one more is told so and closed (\(Configuration.connections.range)).")
    var maxConnections: Int = Configuration.connections.defaultValue

    @Option(help: "Elements of one JSON-RPC batch (\(Configuration.batchElements.range)).")
    var maxBatchElements: Int = Configuration.batchElements.defaultValue

    @Option(help: "Bytes of one reply line; a longer reply is answered with an error (\(Configuration.replyBytes.range)).")
    var maxReplyBytes: Int = Configuration.replyBytes.defaultValue

    @Option(help: "Bytes of any one string in a request's params, the problem included (\(Configuration.stringBytes.range)).")
    var maxStringBytes: Int = Configuration.stringBytes.defaultValue

    @Option(help: "Solves running or queued at once for one user id of the socket's peers (\(Configuration.solvesPerUser.range)).")
    var maxSolvesPerUser: Int = Configuration.solvesPerUser.defaultValue

    @Option(help: "KV cells one solve may hold; past them its growing sequences end with stopped_by kv_cache (0: the whole cache; at most --context-size). Default: half of --context-size.")
    var maxCellsPerSolve: Int?

    /// Half the cache unless said.
    var cellsPerSolve: Int { maxCellsPerSolve ?? contextSize / 2 }

    @Option(help: "Live sequences per solve (\(Configuration.width.range)).")
    var maxWidth: Int = Configuration.width.defaultValue

    @Option(help: "Tokens per sequence in one generate call (\(Configuration.callTokens.range)).")
    var maxTokensPerCall: Int = Configuration.callTokens.defaultValue

    @Option(help: "KV cells kept for the prompts of finished sequences, which a new one with the same start copies instead of evaluating (default 0: off; at most --context-size).")
    var promptCacheTokens: Int = Configuration.promptCache.defaultValue

    @Option(help: "Seconds solves may finish in after SIGTERM before they are cancelled (\(Configuration.grace.range)).")
    var shutdownGrace: Double = Configuration.grace.defaultValue

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        func check<T: Comparable>(_ value: T, _ bounds: Configuration.Bounds<T>, _ flag: String) throws {
            guard bounds.range.contains(value) else {
                throw ValidationError("--\(flag) must be in \(bounds.range), got \(value)")
            }
        }
        func atMost<T: Comparable>(_ value: T, _ flag: String, _ bound: T, _ boundFlag: String) throws {
            guard value <= bound else {
                throw ValidationError("--\(flag) must be at most --\(boundFlag) (\(bound)), got \(value)")
            }
        }
        try check(contextSize, Configuration.contextSize, "context-size")
        try check(maxRequestBytes, Configuration.requestBytes, "max-request-bytes")
        try check(maxConcurrentSolves, Configuration.concurrentSolves, "max-concurrent-solves")
        try check(maxQueuedSolves, Configuration.queuedSolves, "max-queued-solves")
        try check(defaultTokens, Configuration.solveTokens, "default-tokens")
        try check(maxTokens, Configuration.solveTokensCap, "max-tokens")
        try check(defaultTimeout, Configuration.timeout, "default-timeout")
        try check(maxTimeout, Configuration.timeoutCap, "max-timeout")
        try check(maxConnections, Configuration.connections, "max-connections")
        try check(maxBatchElements, Configuration.batchElements, "max-batch-elements")
        try check(maxReplyBytes, Configuration.replyBytes, "max-reply-bytes")
        try check(maxStringBytes, Configuration.stringBytes, "max-string-bytes")
        try check(maxSolvesPerUser, Configuration.solvesPerUser, "max-solves-per-user")
        try check(cellsPerSolve, Configuration.cellsPerSolve, "max-cells-per-solve")
        try atMost(cellsPerSolve, "max-cells-per-solve", contextSize, "context-size")
        try check(maxWidth, Configuration.width, "max-width")
        try check(maxTokensPerCall, Configuration.callTokens, "max-tokens-per-call")
        try check(shutdownGrace, Configuration.grace, "shutdown-grace")
        try check(promptCacheTokens, Configuration.promptCache, "prompt-cache-tokens")
        try atMost(defaultTokens, "default-tokens", maxTokens, "max-tokens")
        try atMost(defaultTimeout, "default-timeout", maxTimeout, "max-timeout")
        try atMost(promptCacheTokens, "prompt-cache-tokens", contextSize, "context-size")
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be in 1...256, got \(threads)") }
        guard let mode = mode_t(socketMode, radix: 8), mode & ~0o777 == 0, mode & 0o002 == 0 else {
            throw ValidationError("--socket-mode must be octal permission bits that are not world-writable, got \(socketMode)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level \(logLevel)") }
        _ = try pluginSettings()
        let placement = try placement()
        if deterministic && !placement.isLocal {
            throw ValidationError("--deterministic needs every product on this host's CPU; RPC servers compute with their own kernels")
        }
    }

    /// --rpc and --tensor-split, else their environment variables (the unit's environment file).
    func placement() throws -> ModelPlacement {
        let environment = ProcessInfo.processInfo.environment
        // Errors name where a value came from: the flag, or the unit's environment file.
        let (serversText, serversSource) = rpc.map { ($0, "--rpc") } ?? (environment["STRATEGYD_RPC"] ?? "", "STRATEGYD_RPC")
        let servers = serversText.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard servers.count <= 16 else { throw ValidationError("\(serversSource): at most 16 servers (ggml-rpc's limit), got \(servers.count)") }
        for server in servers where ModelPlacement.endpoint(server) == nil {
            throw ValidationError("\(serversSource): '\(server)' is not HOST:PORT (an IPv4 address or host name: ggml-rpc speaks IPv4 only)")
        }
        if let repeated = servers.first(where: { server in servers.filter { $0 == server }.count > 1 }) {
            throw ValidationError("\(serversSource): \(repeated) is named twice")
        }
        let (splitText, splitSource) = tensorSplit.map { ($0, "--tensor-split") }
            ?? (environment["STRATEGYD_TENSOR_SPLIT"] ?? "", "STRATEGYD_TENSOR_SPLIT")
        var split: [Float] = []
        if !splitText.isEmpty {
            guard !servers.isEmpty else { throw ValidationError("\(splitSource) needs RPC servers to split over (--rpc or STRATEGYD_RPC)") }
            for part in splitText.split(separator: ",", omittingEmptySubsequences: false) {
                guard let share = Float(part.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("\(splitSource): '\(part)' is not a share (a number, not negative)")
                }
                split.append(share)
            }
            if let problem = ModelPlacement.splitProblem(split) { throw ValidationError("\(splitSource): \(problem)") }
        }
        return ModelPlacement(rpcServers: servers, split: split)
    }

    /// Each plugin's section: the file's, then --plugin-config over it, then the replaced
    /// flags (--heads-dir, --hidden-states, --prm-model) where neither names their setting.
    func pluginSettings() throws -> [String: JSON] {
        var sections: [String: JSON] = [:]
        if let config {
            sections = try PluginSettings.read(file: config)
        }
        for assignment in pluginConfig {
            try PluginSettings.apply(assignment, to: &sections)
        }
        func setUnlessGiven(_ plugins: [String], _ key: String, _ value: JSON) {
            for plugin in plugins where sections[plugin]?[key] == nil {
                PluginSettings.set(value, plugin: plugin, key: key, in: &sections)
            }
        }
        if let headsDir { setUnlessGiven(["quiet-star", "quiet-rebase"], "heads_dir", .string(headsDir)) }
        if hiddenStates { setUnlessGiven(["quiet-star", "quiet-rebase"], "hidden_states", true) }
        if let prmModel { setUnlessGiven(["prm"], "model", .string(prmModel)) }
        return sections
    }

    func run() throws {
        ServiceGroup.blockSignals()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "strategyd")
        let metrics = DaemonMetrics()
        let environment = ProcessInfo.processInfo.environment
        let (modelPath, modelName) = Configuration.resolveModel(model)
        let executableFolder = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let pluginDirectory = pluginDir.map { URL(fileURLWithPath: $0) }
            ?? environment["STRATEGYD_PLUGIN_DIR"].map { URL(fileURLWithPath: $0) } ?? executableFolder
        if headsDir != nil {
            logger.warning("--heads-dir is replaced by the heads_dir setting of quiet-star and quiet-rebase (--plugin-config quiet-star.heads_dir=DIR); this release reads it as that")
        }
        if hiddenStates {
            logger.warning("--hidden-states is replaced by the hidden_states setting of quiet-star and quiet-rebase (--plugin-config quiet-star.hidden_states=true); this release reads it as that")
        }
        if prmModel != nil {
            logger.warning("--prm-model is replaced by the prm plugin's model setting (--plugin-config prm.model=NAME); this release reads it as that")
        }
        let configuration = Configuration(
            modelPath: modelPath, modelName: modelName,
            socketPath: SocketPath.resolve(socket), socketMode: mode_t(socketMode, radix: 8)!,
            inheritedSocket: SystemdNotifier.inheritedSocket(),
            pluginDirectory: pluginDirectory,
            pluginSettings: try pluginSettings(),
            watchPlugins: watch, threads: threads, contextSize: contextSize,
            maxRequestBytes: maxRequestBytes, maxConcurrentSolves: maxConcurrentSolves,
            maxQueuedSolves: maxQueuedSolves, defaultTokens: defaultTokens, maxTokens: maxTokens,
            defaultTimeoutSeconds: defaultTimeout, maxTimeoutSeconds: maxTimeout,
            maxConnections: maxConnections, maxBatchElements: maxBatchElements, maxReplyBytes: maxReplyBytes,
            maxStringBytes: maxStringBytes, maxSolvesPerUser: maxSolvesPerUser, maxCellsPerSolve: cellsPerSolve,
            maxWidth: maxWidth, maxTokensPerCall: maxTokensPerCall,
            graceSeconds: shutdownGrace, promptCacheTokens: promptCacheTokens, deterministic: deterministic)

        SystemdNotifier.notify("STATUS=loading \(configuration.modelPath)")
        logger.info("loading model", metadata: ["path": "\(configuration.modelPath)", "threads": "\(threads)"])
        let loadStarted = Date()
        let model: Model
        let engine: Engine
        do {
            model = try Model(path: configuration.modelPath, batchInvariant: configuration.deterministic,
                              placement: try placement(),
                              chatTemplate: chatTemplate ?? environment["STRATEGYD_CHAT_TEMPLATE"].flatMap { $0.isEmpty ? nil : $0 })
            engine = try Engine(model: model, options: configuration.engineOptions)
        } catch {
            if case EngineError.fileNotFound = error, !configuration.modelPath.contains("/") || configuration.modelPath.hasPrefix(Configuration.modelCache.path) {
                logger.critical("\(error); fetch catalog models with scripts/setup --models \(configuration.modelName)")
            } else {
                logger.critical("\(error)")
            }
            throw ExitCode(3)
        }
        let modelInfo = ModelInfo(name: configuration.modelName, facts: model.facts, engine: configuration.engineOptions)
        // Plugins' settings may turn these on while they load (sd_host.enable_hidden_states,
        // load_reward_model); the facts plugins read follow.
        let resources = SharedResources(policy: engine, loadModel: { name in
            let (path, _) = Configuration.resolveModel(name)
            let reward = try Engine(model: try Model(path: path, batchInvariant: configuration.deterministic),
                                    options: configuration.engineOptions)
            logger.info("reward model resident", metadata: ["path": "\(path)"])
            return reward
        }, changed: { HostTable.setModelInfo(modelInfo.json.serialized()) })
        modelInfo.resources = resources
        HostTable.resources = resources
        modelInfo.computeHash(path: configuration.modelPath) { HostTable.setModelInfo(modelInfo.json.serialized()) }
        HostTable.setModelInfo(modelInfo.json.serialized())
        logger.info("model resident", metadata: [
            "architecture": "\(model.facts.architecture)", "parameters": "\(model.facts.parameters)",
            "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(loadStarted)))"])

        let registry = try PluginRegistry(directory: configuration.pluginDirectory, host: HostTable.pointer,
                                          settings: configuration.pluginSettings)
        PluginLog.sink = { level, message in
            let levels: [Logger.Level] = [.debug, .info, .warning, .error]
            logger.log(level: levels[max(0, min(level, 3))], "plugin: \(message)")
        }
        for refusal in registry.loadAll() { logger.warning("plugin refused", metadata: ["error": "\(refusal)"]) }
        for name in configuration.pluginSettings.keys.sorted() where registry.get(name) == nil && registry.available().contains(name) == false {
            logger.warning("settings for a plugin that is not in the plugin directory", metadata: ["plugin": "\(name)"])
        }
        logger.info("plugins", metadata: ["directory": "\(configuration.pluginDirectory.path)",
                                          "loaded": "\(registry.all.map { "\($0.name) \($0.version)" }.joined(separator: ", "))"])

        let methods = Methods(engine: engine, resources: resources, registry: registry, configuration: configuration,
                              modelInfo: modelInfo, logger: logger, metrics: metrics)
        let rpc = try RPCService(configuration: configuration, methods: methods, logger: logger)
        var services: [Service] = [rpc]
        if configuration.watchPlugins { services.append(PluginWatcher(registry: registry, logger: logger, metrics: metrics)) }
        let group = ServiceGroup(services: services, graceSeconds: configuration.graceSeconds, logger: logger) {
            let (reloaded, refused) = registry.reloadChanged()
            for plugin in reloaded { metrics.plugin(plugin.name, event: "reload") }
            for refusal in refused { metrics.plugin(refusal.name, event: "refused") }
            logger.info("SIGHUP: reloaded changed plugins", metadata: [
                "reloaded": "\(reloaded.map { "\($0.name)#\($0.generation)" })", "refused": "\(refused.map(\.description))"])
        }
        logger.info("listening", metadata: ["socket": "\(configuration.socketPath)",
                                            "activated": "\(configuration.inheritedSocket != nil)"])
        SystemdNotifier.notify("READY=1\nSTATUS=serving \(configuration.modelName) on \(configuration.socketPath)")
        group.run()
        logger.info("stopped")
    }
}

/// The JSON-RPC listener as a service: on shutdown it stops accepting, lets solves
/// finish (or cancels them after the grace period), then closes the connections.
final class RPCService: Service, @unchecked Sendable {
    let name = "rpc"
    private let server: UnixSocketServer
    private let methods: Methods
    private let logger: Logger
    private let stopped = DispatchSemaphore(value: 0)

    init(configuration: Configuration, methods: Methods, logger: Logger) throws {
        var options = ServerOptions()
        options.maxRequestBytes = configuration.maxRequestBytes
        options.maxBatchElements = configuration.maxBatchElements
        options.maxReplyBytes = configuration.maxReplyBytes
        options.maxConnections = configuration.maxConnections
        options.socketMode = configuration.socketMode
        if configuration.inheritedSocket == nil {
            // The socket's folder is the daemon user's alone: 0750.
            let folder = URL(fileURLWithPath: configuration.socketPath).deletingLastPathComponent().path
            if !FileManager.default.fileExists(atPath: folder) {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o750])
            }
        }
        let server = try UnixSocketServer(path: configuration.socketPath, inheritedDescriptor: configuration.inheritedSocket,
                                          options: options, handler: methods)
        self.server = server
        methods.openConnections = { server.openConnections }
        self.methods = methods
        self.logger = logger
    }

    func run() {
        server.run()
        stopped.wait()
    }

    func shutdown(graceSeconds: Double) {
        server.stopAccepting()
        methods.drain(graceSeconds: graceSeconds)
        server.closeConnections()
        stopped.signal()
    }
}

/// --watch: reloads a plugin when its library file changes (checked every second).
final class PluginWatcher: Service, @unchecked Sendable {
    let name = "plugin-watcher"
    private let registry: PluginRegistry
    private let logger: Logger
    private let stop = DispatchSemaphore(value: 0)

    private let metrics: DaemonMetrics

    init(registry: PluginRegistry, logger: Logger, metrics: DaemonMetrics) {
        self.registry = registry
        self.logger = logger
        self.metrics = metrics
    }

    func run() {
        while stop.wait(timeout: .now() + 1) == .timedOut {
            let (reloaded, refused) = registry.reloadChanged()
            for plugin in reloaded { metrics.plugin(plugin.name, event: "reload") }
            for refusal in refused { metrics.plugin(refusal.name, event: "refused") }
            for plugin in reloaded {
                logger.info("plugin file changed: reloaded", metadata: ["plugin": "\(plugin.name)", "generation": "\(plugin.generation)"])
            }
            for refusal in refused {
                logger.warning("plugin file changed: new build refused, old one kept", metadata: ["error": "\(refusal)"])
            }
        }
    }

    func shutdown(graceSeconds: Double) { stop.signal() }
}

StrategyDaemon.main()
