// strategyd-bench-engine: throughput of the Engine, measured like llama.cpp's own tools so
// that scripts/bench-engine can put the two side by side.
//
//   pp<P>   a sequence of P tokens evaluated in one go (llama-bench -p P): createSequence,
//           evaluate, remove; P / seconds of the evaluate.
//   tg<G>   G tokens generated one at a time by `generate` (greedy, minTokens = maxTokens so
//           end-of-generation cannot end it early), from a one-token sequence, as llama-bench
//           -n G does: G llama_decode calls at positions 0 ..< G; G / seconds.
//   gen xN  N sequences forked from one shared S-token prompt, G tokens each (llama-batched-bench
//           -npp S -ntg G -npl N -pps): only the generation phase is timed — `generate` on all N
//           at once plus the evaluation of the last sampled tokens, i.e. G llama_decode calls of N
//           tokens, as the peer makes; aggregate = N * G / seconds.
//
// Every figure: one untimed warm-up (pp: a full run; generation: 8 tokens), then R repetitions
// on a fresh engine state (every sequence removed); mean, sample standard deviation and
// median of the per-repetition rates.
//
//   strategyd-bench-engine --model PATH [--threads N] [--repetitions R] [--prompt-tokens P]
//       [--gen-tokens G] [--parallel 1,4,16] [--shared-prompt S] [--context C]
//       [--batch 2048] [--ubatch 512] [--seed N] [--json]
import Engine
import Foundation

struct Arguments {
    var model = ""
    var threads = ProcessInfo.processInfo.activeProcessorCount
    var repetitions = 5
    var promptTokens = 512
    var genTokens = 128
    var parallel = [1, 4, 16]
    var sharedPrompt = 128
    var context: Int?
    var batch = 2048
    var ubatch = 512
    var seed: UInt64 = 1234
    var json = false

    static let usage = """
        usage: strategyd-bench-engine --model PATH [--threads N] [--repetitions R] [--prompt-tokens P]
               [--gen-tokens G] [--parallel N1,N2,...] [--shared-prompt S] [--context C]
               [--batch B] [--ubatch U] [--seed N] [--json]
        """

    static func parse(_ argv: [String]) -> Arguments {
        var result = Arguments()
        var index = 0
        func fail(_ message: String) -> Never {
            FileHandle.standardError.write(Data("strategyd-bench-engine: \(message)\n\(usage)\n".utf8))
            exit(2)
        }
        func value(_ name: String) -> String {
            index += 1
            guard index < argv.count else { fail("\(name) needs a value") }
            return argv[index]
        }
        func int(_ name: String, min: Int = 1) -> Int {
            let text = value(name)
            guard let number = Int(text), number >= min else { fail("\(name): not an integer >= \(min): \(text)") }
            return number
        }
        while index < argv.count {
            let name = argv[index]
            switch name {
            case "--model": result.model = value(name)
            case "--threads": result.threads = int(name)
            case "--repetitions": result.repetitions = int(name)
            case "--prompt-tokens": result.promptTokens = int(name)
            case "--gen-tokens": result.genTokens = int(name)
            case "--shared-prompt": result.sharedPrompt = int(name)
            case "--context": result.context = int(name, min: 256)
            case "--batch": result.batch = int(name, min: 32)
            case "--ubatch": result.ubatch = int(name, min: 32)
            case "--seed": result.seed = UInt64(int(name, min: 0))
            case "--parallel":
                let text = value(name)
                let list = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !list.isEmpty, list.allSatisfy({ $0 >= 1 }) else { fail("--parallel: a list like 1,4,16: \(text)") }
                result.parallel = list
            case "--json": result.json = true
            case "-h", "--help": print(usage); exit(0)
            default: fail("unknown argument \(name)")
            }
            index += 1
        }
        if result.model.isEmpty { fail("--model is required") }
        return result
    }
}

/// SplitMix64: reproducible random tokens without Foundation's unseeded generators.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

struct Stats: Encodable {
    var mean: Double
    var stddev: Double
    var median: Double
    var samples: [Double]

    init(_ samples: [Double]) {
        self.samples = samples
        let n = Double(samples.count)
        let mean = samples.reduce(0, +) / max(n, 1)
        let squares = samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        self.mean = mean
        let sorted = samples.sorted()
        median = sorted.isEmpty ? 0 : (sorted[(sorted.count - 1) / 2] + sorted[sorted.count / 2]) / 2
        stddev = samples.count > 1 ? (squares / (n - 1)).squareRoot() : 0
    }
}

struct ParallelResult: Encodable {
    var sequences: Int
    var sharedPrompt: Int
    var genTokens: Int
    /// Aggregate generated tokens per second: sequences * genTokens / seconds.
    var aggregate: Stats
    var aggregate_tps: Double
    var seconds: Stats
    var decodeCallsPerRun: Int
}

struct Report: Encodable {
    var model: String
    var description: String
    var threads: Int
    var repetitions: Int
    var contextSize: Int
    var maxSequences: Int
    var batchSize: Int
    var microBatchSize: Int
    var flashAttention: String
    var kvUnified: Bool
    var promptTokens: Int
    var genTokens: Int
    var pp: Stats
    var tg: Stats
    var parallel: [ParallelResult]
}

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
func seconds(_ start: UInt64, _ end: UInt64) -> Double { Double(end - start) / 1e9 }
func log(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

func run() throws {
    let args = Arguments.parse(Array(CommandLine.arguments.dropFirst()))
    let model = try Model(path: args.model)
    let maxParallel = args.parallel.max() ?? 1
    // Room for the largest figure: pp, tg, or maxParallel forks of (shared + gen) plus the
    // shared prompt itself, rounded up to 256 cells.
    let needed = max(args.promptTokens + 1, args.genTokens + 1, maxParallel * (args.sharedPrompt + args.genTokens) + args.sharedPrompt)
    var options = EngineOptions()
    options.contextSize = args.context ?? ((needed + 255) / 256 * 256)
    options.maxSequences = max(maxParallel + 1, 17)
    options.batchSize = args.batch
    options.microBatchSize = args.ubatch
    options.threads = args.threads
    let engine = try Engine(model: model, options: options)
    let account = Account()
    let vocabulary = model.facts.vocabularySize
    var random = SplitMix64(state: args.seed)
    // Like llama-bench: BOS first when the model adds one, then uniformly random tokens.
    func randomTokens(_ count: Int) -> [Int32] {
        (0..<count).map { index in
            if index == 0, let bos = model.beginningOfSequence { return bos }
            return Int32(Int.random(in: 0..<vocabulary, using: &random))
        }
    }
    func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { log("strategyd-bench-engine: \(message())"); exit(1) }
    }

    // pp: one sequence of P tokens, evaluated in one go.
    func promptRun() throws -> Double {
        let id = try engine.createSequence(randomTokens(args.promptTokens), account: account)
        defer { engine.remove(id) }
        let start = now()
        try engine.evaluate([id])
        return Double(args.promptTokens) / seconds(start, now())
    }
    log("pp\(args.promptTokens): warm-up + \(args.repetitions) repetitions")
    _ = try promptRun()
    let pp = Stats(try (0..<args.repetitions).map { _ in try promptRun() })

    // tg: G tokens one at a time from a one-token sequence (G decodes, G samples).
    // Warm-ups of the generation figures are short (llama-bench warms tg with one decode).
    let warmUpTokens = min(8, args.genTokens)
    func generationRun(_ tokens: Int) throws -> Double {
        let generation = GenerationOptions(maxTokens: tokens, minTokens: tokens, sampling: .greedy)
        let start = now()
        let id = try engine.createSequence(randomTokens(1), account: account)
        let result = try engine.generate([id], options: generation)
        let elapsed = seconds(start, now())
        engine.remove(id)
        check(result[0].tokens.count == tokens, "tg: \(result[0].tokens.count) tokens, not \(tokens)")
        return Double(tokens) / elapsed
    }
    log("tg\(args.genTokens): warm-up + \(args.repetitions) repetitions")
    _ = try generationRun(warmUpTokens)
    let tg = Stats(try (0..<args.repetitions).map { _ in try generationRun(args.genTokens) })

    // gen xN: N forks of one shared S-token prompt; only the generation phase is timed.
    var parallel: [ParallelResult] = []
    for count in args.parallel {
        var decodeCalls = 0
        func parallelRun(_ tokens: Int) throws -> Double {
            let generation = GenerationOptions(maxTokens: tokens, minTokens: tokens, sampling: .greedy)
            let root = try engine.createSequence(randomTokens(args.sharedPrompt), account: account)
            let children = try engine.fork(root, count: count)   // evaluates the prompt once
            engine.remove(root)                                   // its cells stay, shared by the children
            defer { children.forEach(engine.remove) }
            let calls = engine.decodeCallCount
            let start = now()
            let results = try engine.generate(children, options: generation)
            try engine.evaluate(children)                         // the last sampled tokens: decode G
            let elapsed = seconds(start, now())
            decodeCalls = engine.decodeCallCount - calls
            check(results.allSatisfy { $0.tokens.count == tokens }, "gen x\(count): short generation")
            return elapsed
        }
        log("gen x\(count): warm-up + \(args.repetitions) repetitions")
        _ = try parallelRun(warmUpTokens)
        let times = try (0..<args.repetitions).map { _ in try parallelRun(args.genTokens) }
        let aggregate = Stats(times.map { Double(count * args.genTokens) / $0 })
        parallel.append(ParallelResult(sequences: count, sharedPrompt: args.sharedPrompt, genTokens: args.genTokens,
                                       aggregate: aggregate, aggregate_tps: aggregate.mean, seconds: Stats(times),
                                       decodeCallsPerRun: decodeCalls))
    }

    let report = Report(model: args.model, description: model.facts.description, threads: args.threads,
                        repetitions: args.repetitions, contextSize: options.contextSize,
                        maxSequences: options.maxSequences, batchSize: options.batchSize,
                        microBatchSize: options.microBatchSize,
                        flashAttention: "auto (llama_context_default_params)", kvUnified: true,
                        promptTokens: args.promptTokens, genTokens: args.genTokens, pp: pp, tg: tg, parallel: parallel)
    if args.json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
        return
    }
    func row(_ name: String, _ value: String) { print(name.padding(toLength: 34, withPad: " ", startingAt: 0) + " " + value) }
    print("model: \(model.facts.description) (\(args.model))")
    print("threads \(args.threads), context \(options.contextSize), batch \(options.batchSize), ubatch \(options.microBatchSize), "
          + "sequences \(options.maxSequences), flash attention auto, repetitions \(args.repetitions)")
    row("figure", "tok/s")
    row("pp\(args.promptTokens)", String(format: "%10.2f ± %.2f", pp.mean, pp.stddev))
    row("tg\(args.genTokens)", String(format: "%10.2f ± %.2f", tg.mean, tg.stddev))
    for result in parallel {
        row("gen x\(result.sequences) (pps \(result.sharedPrompt), tg \(result.genTokens))",
            String(format: "%10.2f ± %.2f  (%d decodes)", result.aggregate.mean, result.aggregate.stddev, result.decodeCallsPerRun))
    }
}

do {
    try run()
} catch {
    log("strategyd-bench-engine: \(error)")
    exit(1)
}
