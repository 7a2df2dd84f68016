import Answers
import Engine
import Foundation
import PluginABI
import JSONValue

/// Limits on what one request may do; every one has a default and a maximum in the daemon.
public struct RequestLimits: Sendable {
    /// Live sequences one request may hold at once.
    public var maxSequences = 64
    /// Tokens one generate() call may produce per sequence.
    public var maxTokensPerCall = 4096
    public init() {}
}

/// A budget a client sets on a solve (the daemon fills in its maximum tokens and time
/// where the client set none).
public struct Budget: Sendable {
    public var maxTokens: Int
    /// nil: no FLOPs cap.
    public var maxFlops: Double?
    public var deadline: Date
    public init(maxTokens: Int, maxFlops: Double?, deadline: Date) {
        self.maxTokens = maxTokens
        self.maxFlops = maxFlops
        self.deadline = deadline
    }
}

/// One request in flight: what sd_request points to. It owns the sequences its plugin
/// creates (freed as soon as the plugin returns), its compute account, its budget and
/// cancellation.
public final class SolveRequest: @unchecked Sendable {
    public let engine: Engine
    /// The reward model's engine (a Math-Shepherd-style PRM), when the daemon has one.
    public let rewardEngine: Engine?
    public let registry: PluginRegistry
    public let problem: String
    public let account = Account()
    public let budget: Budget
    public let limits: RequestLimits
    public let seed: UInt32
    public let started = Date()
    /// Receives progress notifications' params (nil when the client did not stream).
    let progressSink: (@Sendable (JSON) -> Void)?

    private let lock = NSLock()
    private var cancelledFlag = false
    private var budgetSpent = false
    /// What ran out first: "max_tokens", "max_flops", "timeout_s" or "kv_cache".
    private var spentOn: String?
    private var sequences = Set<SequenceID>()
    private(set) var result: JSON?
    private(set) var failure: String?
    /// The last engine error, so a plugin failure caused by the engine can be reported as such.
    private(set) var engineError: EngineError?
    /// Scorer calls in progress: while > 0 every token is charged as a scorer token.
    var scorerDepth = 0
    /// Strategies run by strategies (solve_with) in progress.
    var strategyDepth = 0

    public init(engine: Engine, rewardEngine: Engine? = nil, registry: PluginRegistry, problem: String, budget: Budget,
                limits: RequestLimits, seed: UInt32, progress: (@Sendable (JSON) -> Void)?) {
        self.engine = engine
        self.rewardEngine = rewardEngine
        self.registry = registry
        self.problem = problem
        self.budget = budget
        self.limits = limits
        self.seed = seed
        progressSink = progress
    }

    deinit { releaseSequences() }

    /// Frees what the plugin left, before the answer goes out: a solve admitted right
    /// after must find the sequences and KV cells this one used.
    func releaseSequences() {
        let left = lock.withLock { () -> Set<SequenceID> in
            defer { sequences.removeAll() }
            return sequences
        }
        for id in left { engine.remove(id) }
    }

    public func cancel() { lock.withLock { cancelledFlag = true } }
    public var isCancelled: Bool { lock.withLock { cancelledFlag } }
    public var budgetExhausted: Bool { lock.withLock { budgetSpent } }
    public var stoppedBy: String? { lock.withLock { spentOn } }

    /// True once cancelled or out of budget; records which budget ran out. Only this
    /// question marks a solve as stopped: a strategy that finishes on its own answers with
    /// `budget_exhausted: false`, even if its last step reached a limit.
    public func shouldStop() -> Bool {
        if isCancelled || budgetExhausted { return true }
        let usage = account.snapshot
        let spent = usage.evaluatedTokens >= budget.maxTokens ? "max_tokens"
            : budget.maxFlops.map { usage.flops >= $0 } == true ? "max_flops"
            : Date() >= budget.deadline ? "timeout_s" : nil
        guard let spent else { return false }
        spend(on: spent)
        return true
    }

    /// The KV cache had no room for this request's tokens: the daemon's own budget ran out,
    /// so the strategy stops and answers with what it has, as when the request's does. The
    /// stop holds even if other solves free cells later: a search that resumed would find
    /// the cache full again at its next width.
    func noteCacheFull() { spend(on: "kv_cache") }

    private func spend(on resource: String) {
        lock.withLock {
            budgetSpent = true
            if spentOn == nil { spentOn = resource }
        }
    }

    public var usage: Usage { account.snapshot }
    public var wallSeconds: Double { Date().timeIntervalSince(started) }

    // MARK: used by the host table

    func owns(_ id: SequenceID) -> Bool { lock.withLock { sequences.contains(id) } }
    func adopt(_ ids: [SequenceID]) { lock.withLock { sequences.formUnion(ids) } }
    func release(_ id: SequenceID) -> Bool { lock.withLock { sequences.remove(id) != nil } }
    var sequenceCount: Int { lock.withLock { sequences.count } }
    var ownedSequences: [SequenceID] { lock.withLock { Array(sequences) } }

    func kind(_ requested: TokenKind) -> TokenKind { scorerDepth > 0 ? .scorer : requested }

    func setResult(_ value: JSON) { lock.withLock { result = value } }
    /// The result set so far, cleared: a strategy run inside another hands its result back.
    func takeResult() -> JSON? { lock.withLock { defer { result = nil }; return result } }
    /// Failures nest (a strategy failing because its scorer did): keep the inner reason.
    func setFailure(_ message: String) {
        lock.withLock { failure = failure.map { "\(message): \($0)" } ?? message }
    }
    func noteEngineError(_ error: EngineError) { lock.withLock { engineError = error } }

    func sendProgress(_ event: JSON) {
        guard let progressSink, var object = event.objectValue else { return }
        if object["metrics"] == nil { object["metrics"] = SolveRequest.metrics(usage, wallSeconds: wallSeconds) }
        progressSink(.object(object))
    }

    /// The metrics object of docs/api.md.
    public static func metrics(_ usage: Usage, wallSeconds: Double) -> JSON {
        ["prompt_tokens": JSON(usage.promptTokens), "generated_tokens": JSON(usage.generatedTokens),
         "thought_tokens": JSON(usage.thoughtTokens), "scorer_tokens": JSON(usage.scorerTokens),
         "evaluated_tokens": JSON(usage.evaluatedTokens), "flops": JSON(usage.flops),
         "scorer_flops": JSON(usage.scorerFlops), "cached_tokens": JSON(usage.cachedTokens),
         "executed_flops": JSON(usage.executedFlops), "wall_s": JSON(wallSeconds), "forks": JSON(usage.forks),
         "peak_sequences": JSON(usage.peakSequences), "decode_calls": JSON(usage.decodeCalls)]
    }
}

/// How a strategy run ended.
public enum SolveOutcome: Sendable {
    case success(JSON)
    case cancelled
    /// llama.cpp failed under the request (the reason is the engine error's text).
    case engineError(String)
    /// The plugin failed or returned no result; `status` is what solve() returned.
    case pluginFailed(plugin: String, message: String, status: Int32)
}

extension SolveRequest {
    /// Runs a strategy plugin on this request and builds the API's result object.
    public func run(_ strategy: PluginGeneration, params: JSON) -> SolveOutcome {
        sendProgress(["event": "started", "strategy": .string(strategy.name)])
        let status = strategy.using {
            strategy.plugin.pointee.solve!(strategy.state, HostTable.pointer, opaque, problem, params.serialized())
        }
        releaseSequences()
        if isCancelled {
            return .cancelled
        }
        guard status == 0, var object = result?.objectValue else {
            if let engineError {
                return .engineError("\(engineError)")
            }
            let message = failure ?? (status == 0 ? "the plugin returned no result" : "the plugin returned \(status)")
            return .pluginFailed(plugin: strategy.name, message: message, status: status)
        }
        object["answer"] = SolveRequest.normalizedAnswer(object["answer"])
        if case .array(let candidates)? = object["candidates"] {
            object["candidates"] = .array(candidates.map { candidate in
                guard var fields = candidate.objectValue else { return candidate }
                fields["answer"] = SolveRequest.normalizedAnswer(fields["answer"])
                return .object(fields)
            })
        } else {
            object["candidates"] = []
        }
        if object["text"] == nil { object["text"] = "" }
        if object["details"] == nil { object["details"] = [:] }
        object["strategy"] = ["name": .string(strategy.name), "version": .string(strategy.version),
                              "generation": JSON(strategy.generation)]
        object["budget_exhausted"] = .bool(budgetExhausted)
        object["stopped_by"] = stoppedBy.map(JSON.string) ?? .null
        object["metrics"] = SolveRequest.metrics(usage, wallSeconds: wallSeconds)
        return .success(.object(object))
    }

    /// A plugin's answer in the canonical form ("72.0" -> "72", "\dfrac{\sqrt{2}}{2}" ->
    /// "\frac{\sqrt{2}}{2}"); text that reads as no answer stays as it is.
    static func normalizedAnswer(_ value: JSON?) -> JSON {
        switch value {
        case .string(let text)?: return .string(AnswerExtractor.read(text)?.description ?? text)
        case .int(let number)?: return .string(String(number))
        case .double(let number)?: return .string(AnswerExtractor.parse(String(number))?.description ?? String(number))
        default: return .null
        }
    }

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ pointer: OpaquePointer?) -> SolveRequest? {
        pointer.map { Unmanaged<SolveRequest>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
    }
}
