import Engine
import Foundation
import Logging
import PluginHost
import RPC
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's JSON-RPC methods (docs/api.md) over one resident engine and its plugins.
final class Methods: RPCHandler, @unchecked Sendable {
    let engine: Engine
    let resources: SharedResources
    let registry: PluginRegistry
    let configuration: Configuration
    let modelInfo: ModelInfo
    let logger: Logger
    let metrics: DaemonMetrics
    /// Connections open now (set by the RPC service once its server exists).
    nonisolated(unsafe) var openConnections: @Sendable () -> Int = { 0 }
    private let started = Date()
    private let lock = NSLock()
    /// Solves queued or running, by connection and id (for cancel).
    private var inFlight: [InFlightKey: InFlightSolve] = [:]
    private var requestsInFlight = 0
    /// Solves started and not yet answered (a solve leaves `inFlight` just before its answer).
    private var unanswered = 0
    private var acceptingSolves = true
    private let solvesDone = NSCondition()

    struct InFlightKey: Hashable {
        let connection: Int
        let id: String
    }

    /// Solves in flight per peer uid (nil: a peer whose credentials could not be read).
    private var inFlightByUser: [UInt32?: Int] = [:]

    /// A solve from its arrival: queued until a running place frees, then running.
    final class InFlightSolve: @unchecked Sendable {
        private let lock = NSLock()
        private var request: SolveRequest?
        private var cancelled = false

        /// Runs `request` from now on; false when the solve was cancelled while queued.
        func start(_ request: SolveRequest) -> Bool {
            lock.withLock {
                guard !cancelled else { return false }
                self.request = request
                return true
            }
        }

        func cancel() { lock.withLock { () -> SolveRequest? in cancelled = true; return request }?.cancel() }
        var isCancelled: Bool { lock.withLock { cancelled } }
        var isRunning: Bool { lock.withLock { request != nil } }
    }

    // Admission: at most maxConcurrentSolves run; the others wait in arrival order.
    private let admission = NSCondition()
    private var running = 0
    private var waiting: [UInt64] = []
    private var nextTicket: UInt64 = 0

    init(engine: Engine, resources: SharedResources, registry: PluginRegistry, configuration: Configuration, modelInfo: ModelInfo,
         logger: Logger, metrics: DaemonMetrics) {
        self.metrics = metrics
        self.engine = engine
        self.resources = resources
        self.registry = registry
        self.configuration = configuration
        self.modelInfo = modelInfo
        self.logger = logger
    }

    // MARK: dispatch

    func handle(_ request: Request, on connection: Connection, reply: @escaping @Sendable (Result<JSON, RPCError>) -> Void) {
        lock.withLock { requestsInFlight += 1 }
        let finish: @Sendable (Result<JSON, RPCError>) -> Void = { [self] result in
            lock.withLock { requestsInFlight -= 1 }
            reply(result)
        }
        let params: [String: JSON]
        switch request.params {
        case nil: params = [:]
        case .object(let members)?: params = members
        default: return finish(.failure(.invalidParams("params", expected: "an object (by-name params)")))
        }
        if let (path, bytes) = JSON.object(params).firstString(longerThan: configuration.maxStringBytes) {
            return finish(.failure(.limitExceeded("max_string_bytes", "'\(path)' holds \(bytes) bytes",
                                                  max: configuration.maxStringBytes, found: bytes)))
        }
        switch request.method {
        case "ping": finish(.success("pong"))
        case "status": finish(.success(status()))
        case "metrics": finish(.success(.string(metricsText())))
        case "models.info": finish(.success(modelInfo.json))
        case "solve": solve(request, params: params, on: connection, reply: finish)
        case "cancel": finish(cancel(params, on: connection))
        case "plugins.list": finish(.success(.array(registry.all.map(\.json))))
        case "plugins.load", "plugins.reload": finish(loadPlugin(params, on: connection, reload: request.method == "plugins.reload"))
        case "plugins.unload": finish(unloadPlugin(params, on: connection))
        default: finish(.failure(.methodNotFound(request.method)))
        }
    }

    func connectionClosed(_ connection: Connection) {
        let orphans = lock.withLock { inFlight.filter { $0.key.connection == connection.id }.map(\.value) }
        for request in orphans { request.cancel() }
        if !orphans.isEmpty { logger.info("client gone, cancelled its solves", metadata: ["count": "\(orphans.count)"]) }
    }

    // MARK: status

    private func status() -> JSON {
        let (requests, solves) = lock.withLock { (requestsInFlight, inFlight.count) }
        let queued = admission.withLock { waiting.count }
        let cache = engine.promptCacheState
        let totals = engine.totals.snapshot
        return ["version": .string(Configuration.version), "uptime_s": JSON(Date().timeIntervalSince(started)),
                "model": modelInfo.json, "plugins": .array(registry.all.map { .string($0.name) }),
                "requests_in_flight": JSON(requests), "solves_in_flight": JSON(solves), "solves_queued": JSON(queued),
                "deterministic": .bool(configuration.deterministic),
                "live_sequences": JSON(engine.liveSequences),
                "prompt_cache": ["prompts": JSON(cache.prompts), "tokens": JSON(cache.tokens)],
                "totals": SolveRequest.metrics(totals, wallSeconds: Date().timeIntervalSince(started)),
                "limits": configuration.limitsJSON]
    }

    private func metricsText() -> String {
        let (solves, queued) = (lock.withLock { inFlight.count }, admission.withLock { waiting.count })
        return metrics.text(solvesRunning: solves - queued, solvesQueued: queued, liveSequences: engine.liveSequences,
                            cellsInUse: configuration.contextSize - engine.cellsAvailable, connections: openConnections())
    }

    // MARK: solve

    private func solve(_ request: Request, params: [String: JSON], on connection: Connection,
                       reply: @escaping @Sendable (Result<JSON, RPCError>) -> Void) {
        let parsed: SolveParams
        switch SolveParams.parse(params, configuration: configuration) {
        case .success(let value): parsed = value
        case .failure(let error): return reply(.failure(error))
        }
        guard let strategy = registry.get(parsed.strategy), strategy.kind == .strategy else {
            let available = registry.all.filter { $0.kind == .strategy }.map { JSON.string($0.name) }
            return reply(.failure(RPCError(RPCError.unknownPluginCode, "Unknown plugin: no strategy '\(parsed.strategy)' is loaded",
                                           data: ["plugin": .string(parsed.strategy), "available": .array(available)])))
        }
        let pluginParams: JSON
        switch strategy.schema.complete(parsed.params) {
        case .success(let value): pluginParams = value
        case .failure(let mismatch): return reply(.failure(RPCError(mismatch)))
        }
        let id = request.id ?? .null
        var progress: (@Sendable (JSON) -> Void)?
        if parsed.stream {
            progress = { event in
                guard var object = event.objectValue else { return }
                object["id"] = id
                connection.send(Message.notification(method: "progress", params: .object(object)))
            }
        }
        // A solve sent as a notification runs (the spec says so) but nobody can cancel it by id.
        let key = InFlightKey(connection: connection.id, id: request.isNotification ? UUID().uuidString : id.serialized())
        let solve = InFlightSolve()
        let capacity = configuration.maxConcurrentSolves + configuration.maxQueuedSolves
        let user = connection.peer?.uid
        let admitted: RPCError? = lock.withLock {
            guard acceptingSolves else { return RPCError(RPCError.shuttingDownCode, "Shutting down: no new solves") }
            guard inFlight.count < capacity else {
                RPCError.countRefusal("busy")
                return RPCError(RPCError.busyCode, "Busy: \(configuration.maxConcurrentSolves) solves are running and "
                                + "\(configuration.maxQueuedSolves) waiting",
                                data: ["max_concurrent_solves": JSON(configuration.maxConcurrentSolves),
                                       "max_queued_solves": JSON(configuration.maxQueuedSolves)])
            }
            guard inFlight[key] == nil else {
                return .invalidParams("id", expected: "unique among this connection's solves in flight")
            }
            guard inFlightByUser[user, default: 0] < configuration.maxSolvesPerUser else {
                return .limitExceeded("max_solves_per_user", "this user has \(configuration.maxSolvesPerUser) solves in flight",
                                      max: configuration.maxSolvesPerUser)
            }
            inFlight[key] = solve
            inFlightByUser[user, default: 0] += 1
            unanswered += 1
            return nil
        }
        if let admitted { return reply(.failure(admitted)) }
        // The place in the queue is taken here, on arrival, not when the thread starts.
        let ticket = admission.withLock { () -> UInt64 in
            defer { nextTicket += 1 }
            waiting.append(nextTicket)
            return nextTicket
        }
        let thread = Thread { [self, progress] in
            let outcome: SolveOutcome
            var solveRequest: SolveRequest?
            if admit(solve, ticket: ticket, progress: progress) {
                defer { admission.withLock { running -= 1; admission.broadcast() } }
                // The budget's clock starts when the solve runs, not while it waits.
                let started = SolveRequest(
                    engine: engine, rewardEngine: resources.rewardEngine, registry: registry, problem: parsed.problem,
                    budget: Budget(maxTokens: parsed.maxTokens, maxFlops: parsed.maxFlops,
                                   deadline: Date().addingTimeInterval(parsed.timeoutSeconds)),
                    limits: configuration.requestLimits, seed: parsed.seed, progress: progress)
                solveRequest = started
                outcome = solve.start(started) ? started.run(strategy, params: pluginParams) : .cancelled
            } else {
                outcome = .cancelled
            }
            // Leave the in-flight set before answering (a cancel after the answer finds
            // nothing), but count as running until answered: shutdown closes connections
            // only once every answer is out.
            lock.withLock {
                _ = inFlight.removeValue(forKey: key)
                inFlightByUser[user]! -= 1
                if inFlightByUser[user] == 0 { inFlightByUser[user] = nil }
            }
            defer {
                lock.withLock { unanswered -= 1 }
                solvesDone.withLock { solvesDone.broadcast() }
            }
            metrics.solved(strategy: strategy.name, outcome: outcome, usage: solveRequest?.usage,
                           seconds: solveRequest?.wallSeconds ?? 0)
            switch outcome {
            case .success(let result):
                logger.info("solved", metadata: [
                    "strategy": "\(strategy.name)", "answer": "\(result["answer"]?.stringValue ?? "null")",
                    "tokens": "\(solveRequest?.usage.evaluatedTokens ?? 0)",
                    "wall_s": "\(String(format: "%.2f", solveRequest?.wallSeconds ?? 0))"])
                reply(.success(result))
            default:
                let error = RPCError(outcome)
                logger.info("solve ended without a result", metadata: ["error": "\(error)"])
                reply(.failure(error))
            }
        }
        thread.name = "strategyd-solve"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Waits for a running place, in arrival order; false when the solve was cancelled
    /// (by its client, a disconnect or shutdown) before it got one. A streaming client
    /// hears once how many solves are ahead of it.
    private func admit(_ solve: InFlightSolve, ticket: UInt64, progress: (@Sendable (JSON) -> Void)?) -> Bool {
        admission.lock()
        defer { admission.unlock() }
        var told = false
        // A solve starts once it is first in line, a running place is free, and the KV cells
        // free hold its share of the cache (not needed when nothing runs): beyond that it
        // would only wait inside the engine for cells, holding what it has.
        let share = configuration.contextSize / configuration.maxConcurrentSolves
        while !(waiting.first == ticket && running < configuration.maxConcurrentSolves
                && (running == 0 || engine.cellsAvailable >= share)) {
            if solve.isCancelled {
                waiting.removeAll { $0 == ticket }
                admission.broadcast()
                return false
            }
            if !told, let progress {
                told = true
                let ahead = (waiting.firstIndex(of: ticket) ?? 0) + running
                // Sending may block on a slow client: never while holding the queue.
                admission.unlock()
                progress(["event": "queued", "ahead": JSON(ahead)])
                admission.lock()
                continue
            }
            // Cancellation does not signal the condition: look again every 100 ms.
            _ = admission.wait(until: Date(timeIntervalSinceNow: 0.1))
        }
        waiting.removeFirst()
        running += 1
        admission.broadcast()
        return true
    }

    private func cancel(_ params: [String: JSON], on connection: Connection) -> Result<JSON, RPCError> {
        guard let id = params["id"], id != .null, id.objectValue == nil, id.arrayValue == nil else {
            return .failure(.invalidParams("id", expected: "the id (string or number) of a solve on this connection"))
        }
        let request = lock.withLock { inFlight[InFlightKey(connection: connection.id, id: id.serialized())] }
        request?.cancel()
        return .success(["cancelled": .bool(request != nil)])
    }

    // MARK: plugins

    private func authorize(_ connection: Connection) -> RPCError? {
        guard !PeerCredentials.mayAdminister(connection.peer) else { return nil }
        return RPCError(RPCError.notPermittedCode, "Not permitted: plugin administration is for the daemon's user or root",
                        data: ["uid": connection.peer.map { JSON(Int($0.uid)) } ?? .null])
    }

    private func pluginName(_ params: [String: JSON]) -> Result<String, RPCError> {
        guard let name = params["name"]?.stringValue, PluginRegistry.isValidName(name) else {
            return .failure(.invalidParams("name", expected: "a plugin name matching [a-z0-9-]+ (never a path)"))
        }
        return .success(name)
    }

    private func loadPlugin(_ params: [String: JSON], on connection: Connection, reload: Bool) -> Result<JSON, RPCError> {
        if let denied = authorize(connection) { return .failure(denied) }
        let name: String
        switch pluginName(params) {
        case .success(let value): name = value
        case .failure(let error): return .failure(error)
        }
        let startedAt = Date()
        do {
            let loaded = try registry.load(name)
            metrics.plugin(name, event: loaded.generation > 1 ? "reload" : "load")
            logger.info(reload ? "plugin reloaded" : "plugin loaded", metadata: [
                "plugin": "\(name)", "generation": "\(loaded.generation)", "version": "\(loaded.version)",
                "ms": "\(String(format: "%.1f", Date().timeIntervalSince(startedAt) * 1000))"])
            return .success(loaded.json)
        } catch let error as PluginLoadError {
            metrics.plugin(name, event: "refused")
            logger.warning("plugin refused", metadata: ["plugin": "\(name)", "error": "\(error)"])
            return .failure(RPCError(error))
        } catch {
            return .failure(.internalError("\(error)"))
        }
    }

    private func unloadPlugin(_ params: [String: JSON], on connection: Connection) -> Result<JSON, RPCError> {
        if let denied = authorize(connection) { return .failure(denied) }
        switch pluginName(params) {
        case .failure(let error): return .failure(error)
        case .success(let name):
            guard registry.unload(name) else {
                return .failure(RPCError(RPCError.unknownPluginCode, "Unknown plugin: '\(name)' is not loaded",
                                         data: ["plugin": .string(name), "available": .array(registry.all.map { .string($0.name) })]))
            }
            metrics.plugin(name, event: "unload")
            logger.info("plugin unloaded", metadata: ["plugin": "\(name)"])
            return .success(["unloaded": .string(name)])
        }
    }

    // MARK: shutdown

    /// Refuses new solves, waits up to `grace` seconds for those running, then cancels the
    /// rest and waits for them to return their answers.
    func drain(graceSeconds: Double) {
        lock.withLock { acceptingSolves = false }
        // Solves still waiting for a running place would only start to be cancelled.
        let queued = lock.withLock { inFlight.values.filter { !$0.isRunning } }
        queued.forEach { $0.cancel() }
        let deadline = Date().addingTimeInterval(graceSeconds)
        solvesDone.lock()
        while lock.withLock({ unanswered > 0 }) && solvesDone.wait(until: deadline) {}
        solvesDone.unlock()
        let remaining = lock.withLock { Array(inFlight.values) }
        if !remaining.isEmpty {
            logger.info("grace period over, cancelling solves", metadata: ["count": "\(remaining.count)"])
            remaining.forEach { $0.cancel() }
        }
        solvesDone.lock()
        while lock.withLock({ unanswered > 0 }) { _ = solvesDone.wait(until: Date().addingTimeInterval(0.2)) }
        solvesDone.unlock()
    }
}

/// A solve request's params, checked against the daemon's limits.
struct SolveParams {
    var problem: String
    var strategy: String
    var params: JSON?
    var maxTokens: Int
    var maxFlops: Double?
    var timeoutSeconds: Double
    var seed: UInt32
    var stream: Bool

    static func parse(_ params: [String: JSON], configuration: Configuration) -> Result<SolveParams, RPCError> {
        let known: Set = ["problem", "strategy", "params", "budget", "seed", "stream"]
        if let unknown = params.keys.sorted().first(where: { !known.contains($0) }) {
            return .failure(.invalidParams(unknown, expected: "absent: solve takes \(known.sorted().joined(separator: ", "))"))
        }
        guard let problem = params["problem"]?.stringValue, !problem.isEmpty else {
            return .failure(.invalidParams("problem", expected: "a non-empty string"))
        }
        var strategy = "greedy"
        if let value = params["strategy"] {
            guard let name = value.stringValue, PluginRegistry.isValidName(name) else {
                return .failure(.invalidParams("strategy", expected: "a plugin name matching [a-z0-9-]+"))
            }
            strategy = name
        }
        if let value = params["params"], value != .null, value.objectValue == nil {
            return .failure(.invalidParams("params", expected: "an object"))
        }
        var maxTokens = configuration.defaultTokens
        var maxFlops: Double?
        var timeout = configuration.defaultTimeoutSeconds
        if let budget = params["budget"], budget != .null {
            guard let members = budget.objectValue else { return .failure(.invalidParams("budget", expected: "an object")) }
            for key in members.keys.sorted() where !["max_tokens", "max_flops", "timeout_s"].contains(key) {
                return .failure(.invalidParams("budget.\(key)", expected: "absent: a budget has max_tokens, max_flops, timeout_s"))
            }
            if let value = members["max_tokens"] {
                guard let tokens = value.intValue, tokens >= 1, tokens <= configuration.maxTokens else {
                    return .failure(.invalidParams("budget.max_tokens", expected: "an integer in [1, \(configuration.maxTokens)]"))
                }
                maxTokens = Int(tokens)
            }
            if let value = members["max_flops"] {
                guard let flops = value.doubleValue, flops > 0, flops.isFinite else {
                    return .failure(.invalidParams("budget.max_flops", expected: "a positive number"))
                }
                maxFlops = flops
            }
            if let value = members["timeout_s"] {
                guard let seconds = value.doubleValue, seconds > 0, seconds <= configuration.maxTimeoutSeconds else {
                    return .failure(.invalidParams("budget.timeout_s", expected: "a number in (0, \(configuration.maxTimeoutSeconds)]"))
                }
                timeout = seconds
            }
        }
        var seed: UInt32 = 0
        if let value = params["seed"], value != .null {
            guard let number = value.intValue, number >= 0, number <= Int64(UInt32.max) else {
                return .failure(.invalidParams("seed", expected: "an integer in [0, 4294967295]"))
            }
            seed = UInt32(number)
        }
        var stream = false
        if let value = params["stream"], value != .null {
            guard let flag = value.boolValue else { return .failure(.invalidParams("stream", expected: "a boolean")) }
            stream = flag
        }
        return .success(SolveParams(problem: problem, strategy: strategy, params: params["params"], maxTokens: maxTokens,
                                    maxFlops: maxFlops, timeoutSeconds: timeout, seed: seed, stream: stream))
    }
}
