import Foundation
import RPC

/// Latency and throughput of a JSON-RPC server on a Unix socket: ping round trips on one
/// connection and on many at once, optionally solve overhead, plugin reload time, and the
/// generation throughput of greedy solves sent one at a time against the same sent at once.
/// scripts/bench-daemon runs it against strategyd and against a socat echo server (the
/// floor: a line in, the same line out, no JSON) and prints both side by side.
///
///   strategyd-bench-daemon --socket PATH [--calls 10000] [--connections 32] [--solves 20] [--reload NAME]
///                          [--throughput SOLVES] [--batching 1,4,8,16 [--batching-tokens 128]]
///                          [--prompt-cache]
///
/// --batching: for each N, N greedy solves of the same problem sent at once, each
/// generating up to `--batching-tokens` tokens in one call: generated tokens per second
/// of wall time (prompts included), the figure llama-batched-bench gives as
/// npl * ntg / t for as many sequences with prompts of the same length.
/// --prompt-cache: the time to the first generated token of a solve with a prompt of
/// about 850 tokens, first cold, then repeated (the daemon's prompt cache holds it), over
/// three prompts.
struct Options {
    var socket = ""
    var calls = 10_000
    var connections = 32
    var solves = 0
    var reload: String?
    var throughput = 0
    var batching: [Int] = []
    var batchingTokens = 128
    var promptCache = false

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            switch flag {
            case "--socket": socket = iterator.next() ?? ""
            case "--calls": calls = Int(iterator.next() ?? "") ?? calls
            case "--connections": connections = Int(iterator.next() ?? "") ?? connections
            case "--solves": solves = Int(iterator.next() ?? "") ?? solves
            case "--reload": reload = iterator.next()
            case "--throughput": throughput = Int(iterator.next() ?? "") ?? throughput
            case "--batching": batching = (iterator.next() ?? "").split(separator: ",").compactMap { Int($0) }
            case "--batching-tokens": batchingTokens = Int(iterator.next() ?? "") ?? batchingTokens
            case "--prompt-cache": promptCache = true
            default: FileHandle.standardError.write(Data("unknown flag \(flag)\n".utf8)); exit(2)
            }
        }
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1)]
}

/// Round trips of `calls` pings over `connections` connections at once; latencies in ms.
func pings(socket: String, calls: Int, connections: Int) throws -> (latencies: [Double], seconds: Double, failed: Int) {
    let perConnection = max(1, calls / connections)
    let lock = NSLock()
    nonisolated(unsafe) var latencies: [Double] = []
    nonisolated(unsafe) var failed = 0
    nonisolated(unsafe) let clients = try (0..<connections).map { _ in try RPCClient(path: socket) }
    let started = DispatchTime.now()
    DispatchQueue.concurrentPerform(iterations: connections) { index in
        var local: [Double] = []
        local.reserveCapacity(perConnection)
        var localFailures = 0
        for _ in 0..<perConnection {
            let start = DispatchTime.now()
            guard case .success? = try? clients[index].call("ping") else { localFailures += 1; continue }
            local.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6)
        }
        lock.withLock { latencies += local; failed += localFailures }
    }
    return (latencies.sorted(), seconds(since: started), failed)
}

/// Tokens a greedy solve of at most 96 tokens generated.
func generatedTokens(_ client: RPCClient, _ problem: String) throws -> Int {
    let result = try client.call("solve", ["problem": .string(problem), "params": ["max_tokens": 96]]).get()
    return Int(result["metrics"]?["generated_tokens"]?.intValue ?? 0)
}

/// A greedy solve of a problem whose answer runs long, so it generates its full `tokens`
/// (in one generate call; the report says how many it did generate).
func longSolve(_ client: RPCClient, tokens: Int) throws -> JSON {
    try client.call("solve", ["problem": "Write a long story about the number 7.",
                              "params": ["max_tokens": JSON(tokens), "progress_every": JSON(tokens)]]).get()
}

/// Seconds since `start`.
func seconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

/// Runs `count` solves at once, a thread and a connection each (Dispatch runs no more
/// iterations at once than there are cores): the tokens they generated, how many failed,
/// and the wall time of them all.
func concurrentSolves(_ count: Int, socket: String,
                      _ solve: @escaping @Sendable (RPCClient, Int) throws -> Int) throws -> (tokens: Int, failed: Int, seconds: Double) {
    nonisolated(unsafe) let clients = try (0..<count).map { _ in try RPCClient(path: socket) }
    let lock = NSLock()
    nonisolated(unsafe) var tokens = 0
    nonisolated(unsafe) var failed = 0
    let started = DispatchTime.now()
    let finished = DispatchGroup()
    for index in 0..<count {
        finished.enter()
        Thread.detachNewThread {
            defer { finished.leave() }
            let generated = try? solve(clients[index], index)
            lock.withLock { if let generated { tokens += generated } else { failed += 1 } }
        }
    }
    finished.wait()
    return (tokens, failed, seconds(since: started))
}

let options = Options(CommandLine.arguments)
var report: [String: JSON] = [:]
for connections in [1, options.connections] {
    let result = try pings(socket: options.socket, calls: options.calls, connections: connections)
    report["ping_\(connections)"] = ["p50_ms": JSON(percentile(result.latencies, 50)), "p99_ms": JSON(percentile(result.latencies, 99)),
                                     "calls_per_s": JSON(Double(result.latencies.count) / result.seconds),
                                     "failed": JSON(result.failed)]
}

if options.solves > 0 {
    // Client round trip minus the daemon's own wall_s: framing, JSON, dispatch, threads.
    let client = try RPCClient(path: options.socket)
    var overheads: [Double] = []
    for index in 0..<options.solves {
        let start = DispatchTime.now()
        let result = try client.call("solve", ["problem": .string("What is \(index) + 1?"), "params": ["max_tokens": 8]]).get()
        let roundTrip = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
        overheads.append(roundTrip - (result["metrics"]?["wall_s"]?.doubleValue ?? 0) * 1000)
    }
    overheads.sort()
    report["solve_overhead"] = ["p50_ms": JSON(percentile(overheads, 50)), "p99_ms": JSON(percentile(overheads, 99))]
}

if let plugin = options.reload {
    // Reload while 8 connections keep pinging: no call may fail.
    let stop = NSLock()
    nonisolated(unsafe) var running = true
    nonisolated(unsafe) var failures = 0
    nonisolated(unsafe) var calls = 0
    let group = DispatchGroup()
    for _ in 0..<8 {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            guard let client = try? RPCClient(path: options.socket) else { stop.withLock { failures += 1 }; return }
            while stop.withLock({ running }) {
                let ok: Bool
                if case .success? = try? client.call("ping") { ok = true } else { ok = false }
                stop.withLock { calls += 1; if !ok { failures += 1 } }
            }
        }
    }
    let admin = try RPCClient(path: options.socket)
    var reloads: [Double] = []
    for _ in 0..<10 {
        let start = DispatchTime.now()
        _ = try admin.call("plugins.reload", ["name": .string(plugin)]).get()
        reloads.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6)
    }
    stop.withLock { running = false }
    group.wait()
    reloads.sort()
    report["reload"] = ["plugin": .string(plugin), "p50_ms": JSON(percentile(reloads, 50)), "max_ms": JSON(reloads.last ?? 0),
                        "concurrent_calls": JSON(calls), "failed_calls": JSON(failures)]
}
if options.throughput > 0 {
    // The same greedy solves one after another, then all at once on their own connections:
    // generated tokens per second of wall time.
    let problems = (0..<options.throughput).map { "Write a long story about the number \($0)." }
    let serial = try RPCClient(path: options.socket)
    let started = DispatchTime.now()
    let serialTokens = try problems.map { try generatedTokens(serial, $0) }.reduce(0, +)
    let serialSeconds = seconds(since: started)
    let together = try concurrentSolves(problems.count, socket: options.socket) { client, index in
        try generatedTokens(client, problems[index])
    }
    report["throughput"] = ["solves": JSON(problems.count),
                            "serial_tokens_per_s": JSON(Double(serialTokens) / serialSeconds),
                            "concurrent_tokens_per_s": JSON(Double(together.tokens) / together.seconds),
                            "serial_tokens": JSON(serialTokens), "concurrent_tokens": JSON(together.tokens),
                            "failed": JSON(together.failed)]
}
if !options.batching.isEmpty {
    let tokens = options.batchingTokens
    let warmUp = try longSolve(try RPCClient(path: options.socket), tokens: tokens)
    var rows: [JSON] = []
    for count in options.batching {
        let run = try concurrentSolves(count, socket: options.socket) { client, _ in
            guard let generated = try longSolve(client, tokens: tokens)["metrics"]?["generated_tokens"]?.intValue else {
                throw RPCError.internalError("a solve without generated_tokens")
            }
            return Int(generated)
        }
        rows.append(["n": JSON(count), "generated_tokens": JSON(run.tokens), "seconds": JSON(run.seconds),
                     "tokens_per_s": JSON(Double(run.tokens) / run.seconds), "failed": JSON(run.failed)])
    }
    report["batching"] = ["prompt_tokens": warmUp["metrics"]?["prompt_tokens"] ?? .null,
                          "tokens": JSON(options.batchingTokens), "rows": .array(rows)]
}
if options.promptCache {
    // A one-token solve: its wall time is the time to the first generated token.
    let client = try RPCClient(path: options.socket)
    var cold: [Double] = [], warm: [Double] = []
    var promptTokens: JSON = .null, cachedTokens: JSON = .null
    for round in 0..<3 {
        let prices = (1...55).map { "Item \($0) of list \(round) costs \($0 * 3 + round) dollars." }.joined(separator: " ")
        let problem = "\(prices) What do all the items of list \(round) cost together?"
        for pass in 0..<2 {
            let start = DispatchTime.now()
            let result = try client.call("solve", ["problem": .string(problem), "params": ["max_tokens": 1]]).get()
            let elapsed = seconds(since: start)
            if pass == 0 { cold.append(elapsed) } else { warm.append(elapsed) }
            promptTokens = result["metrics"]?["prompt_tokens"] ?? .null
            if pass == 1 { cachedTokens = result["metrics"]?["cached_tokens"] ?? .null }
        }
    }
    report["prompt_cache"] = ["prompt_tokens": promptTokens, "cached_tokens": cachedTokens,
                              "cold_s": JSON(percentile(cold.sorted(), 50)), "warm_s": JSON(percentile(warm.sorted(), 50))]
}
print(JSON.object(report).serialized())
