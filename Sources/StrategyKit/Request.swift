import Foundation
import PluginABI

/// A sequence in the shared KV cache, owned by the request.
public struct Sequence: Hashable, Sendable {
    public let id: sd_seq
}

public enum TokenKind: Int32, Sendable {
    case prompt = 0, generated = 1, thought = 2, scorer = 3
}

public enum Finish: Int32, Sendable {
    case endOfGeneration = 0, stop = 1, maxTokens = 2, stopped = 3
    /// A window of tokens fell below the signal params' stop_below.
    case lowConfidence = 4
}

/// How sure the model was of each generated token (sd_token_signals).
public struct TokenSignals: Sendable, Equatable {
    public var tokens: [Int32]
    public var logprob: [Float]
    /// Minus the mean log-probability of the top k tokens (DeepConf's token confidence).
    public var confidence: [Float]
    public var entropy: [Float]
    public var margin: [Float]
    /// KL(uniform || p): Kang et al. 2025's self-certainty.
    public var certainty: [Float]

    public init(tokens: [Int32] = [], logprob: [Float] = [], confidence: [Float] = [], entropy: [Float] = [],
                margin: [Float] = [], certainty: [Float] = []) {
        self.tokens = tokens
        self.logprob = logprob
        self.confidence = confidence
        self.entropy = entropy
        self.margin = margin
        self.certainty = certainty
    }
}

extension TokenSignals {
    /// A copy of the host's arrays (the caller frees them with token_signals_free).
    init(record: sd_token_signals) {
        let n = Int(record.n)
        func array<T>(_ pointer: UnsafeMutablePointer<T>?) -> [T] { pointer.map { Array(UnsafeBufferPointer(start: $0, count: n)) } ?? [] }
        self.init(tokens: array(record.tokens), logprob: array(record.logprob), confidence: array(record.confidence),
                  entropy: array(record.entropy), margin: array(record.margin), certainty: array(record.certainty))
    }
}

/// What generateWithSignals records and when it stops a sequence (sd_signal_params).
public struct SignalParams: Sendable {
    public var topK: Int
    public var window: Int
    /// > 0: end a sequence once its last `window` tokens' mean confidence is below this.
    public var stopBelow: Double

    public init(topK: Int = 5, window: Int = 64, stopBelow: Double = 0) {
        self.topK = topK
        self.window = window
        self.stopBelow = stopBelow
    }
}

public struct Sampling: Sendable {
    public var temperature: Float
    public var topK: Int32 = 0
    public var topP: Float = 1
    public var minP: Float = 0
    /// Added to the request's seed; sequence i of one generate call adds i more.
    public var seed: UInt32 = 0

    public init(temperature: Float, topK: Int32 = 0, topP: Float = 1, minP: Float = 0, seed: UInt32 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.seed = seed
    }

    public static let greedy = Sampling(temperature: 0)

    var raw: sd_sampling { sd_sampling(temperature: temperature, top_k: topK, top_p: topP, min_p: minP, seed: seed) }
}

public struct Generated: Sendable {
    public var text: String
    public var tokens: Int
    public var finish: Finish
    public var logprobSum: Double
    public var logprobMin: Double
}

/// The request a plugin works on: the host table, with Swift types and errors.
public struct Request: @unchecked Sendable {
    let host: UnsafePointer<sd_host>
    let raw: OpaquePointer?

    public struct HostError: Error, CustomStringConvertible {
        public let status: Int32
        public let call: String
        public var description: String { "\(call) failed with status \(status)" }
        public var isStop: Bool { status == Int32(SD_ERR_STOPPED.rawValue) }
    }

    private func check(_ status: Int32, _ call: String) throws {
        if status != Int32(SD_OK.rawValue) { throw HostError(status: status, call: call) }
    }

    /// Model facts (architecture, vocabulary_size, embedding_width, ...).
    public var modelInfo: [String: Any] {
        guard let text = host.pointee.model_info(raw) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: Data(String(cString: text).utf8))) as? [String: Any] ?? [:]
    }

    public func chat(system: String? = nil, user: String, assistantPrefix: String? = nil) throws -> Sequence {
        var id: sd_seq = -1
        try check(host.pointee.seq_from_chat(raw, system, user, assistantPrefix, &id), "seq_from_chat")
        return Sequence(id: id)
    }

    public func text(_ text: String, kind: TokenKind = .prompt) throws -> Sequence {
        var id: sd_seq = -1
        try check(host.pointee.seq_from_text(raw, text, kind.rawValue, &id), "seq_from_text")
        return Sequence(id: id)
    }

    public func fork(_ parent: Sequence, count: Int) throws -> [Sequence] {
        guard count > 0 else { return [] }
        var ids = [sd_seq](repeating: -1, count: count)
        try check(host.pointee.seq_fork(raw, parent.id, Int32(count), &ids), "seq_fork")
        return ids.map(Sequence.init)
    }

    public func append(_ sequence: Sequence, text: String, kind: TokenKind = .prompt) throws {
        try check(host.pointee.seq_append_text(raw, sequence.id, text, kind.rawValue), "seq_append_text")
    }

    public func append(_ sequence: Sequence, tokens: [Int32], kind: TokenKind) throws {
        try check(host.pointee.seq_append_tokens(raw, sequence.id, tokens, Int32(tokens.count), kind.rawValue),
                  "seq_append_tokens")
    }

    /// Appends `tokens` and returns log p(tokens[i] | all before it) for each, from one batch.
    public func appendScored(_ sequence: Sequence, tokens: [Int32], kind: TokenKind) throws -> [Float] {
        var out = [Float](repeating: 0, count: tokens.count)
        try check(host.pointee.seq_append_scored(raw, sequence.id, tokens, Int32(tokens.count), kind.rawValue, &out),
                  "seq_append_scored")
        return out
    }

    /// appendScored, and each appended token's certainty signals (sd_host.seq_append_signals).
    public func appendWithSignals(_ sequence: Sequence, tokens: [Int32], kind: TokenKind,
                                  signals: SignalParams) throws -> TokenSignals {
        guard hostHas(\.seq_append_signals) else {
            throw HostError(status: Int32(SD_ERR_INVALID_ARGUMENT.rawValue), call: "seq_append_signals (host too old)")
        }
        var out = [Float](repeating: 0, count: tokens.count)
        var params = sd_signal_params(size: UInt32(MemoryLayout<sd_signal_params>.size), top_k: Int32(signals.topK),
                                      window: Int32(signals.window), stop_below: 0)
        var recorded = sd_token_signals()
        try check(host.pointee.seq_append_signals(raw, sequence.id, tokens, Int32(tokens.count), kind.rawValue, &params,
                                                  &out, &recorded), "seq_append_signals")
        defer { host.pointee.token_signals_free(raw, &recorded, 1) }
        return TokenSignals(record: recorded)
    }

    public func free(_ sequence: Sequence) { host.pointee.seq_free(raw, sequence.id) }

    /// Evaluates the queued tokens of all these sequences in one batch (before forking
    /// many parents: otherwise each fork evaluates its parent alone).
    public func evaluate(_ sequences: [Sequence]) throws {
        try check(host.pointee.seq_evaluate(raw, sequences.map(\.id), Int32(sequences.count)), "seq_evaluate")
    }

    /// Generates on all `sequences` together, one decode per step. When the request is
    /// stopped (cancelled, out of budget) it returns what was generated so far, with
    /// finish `.stopped`, rather than throwing.
    public func generate(_ sequences: [Sequence], maxTokens: Int, minTokens: Int = 0, stop: [String] = [],
                         sampling: Sampling = .greedy, kind: TokenKind = .generated,
                         logprobs: Bool = false) throws -> [Generated] {
        guard !sequences.isEmpty else { return [] }
        var out = [sd_generation](repeating: sd_generation(), count: sequences.count)
        let ids = sequences.map(\.id)
        let cStops = stop.map { strdup($0) }
        defer { cStops.forEach { Foundation.free($0) } }
        let status = cStops.map { UnsafePointer($0) }.withUnsafeBufferPointer { stops in
            var params = sd_generate_params(
                max_tokens: Int32(maxTokens), min_tokens: Int32(minTokens), stop: stops.baseAddress,
                n_stop: Int32(stops.count), sampling: sampling.raw, kind: kind.rawValue, logprobs: logprobs)
            return host.pointee.generate(raw, ids, Int32(ids.count), &params, &out)
        }
        defer { host.pointee.generations_free(raw, &out, Int32(out.count)) }
        if status != Int32(SD_OK.rawValue) && status != Int32(SD_ERR_STOPPED.rawValue) {
            throw HostError(status: status, call: "generate")
        }
        return out.map { generation in
            Generated(text: generation.text.map { String(cString: $0) } ?? "", tokens: Int(generation.n_tokens),
                      finish: Finish(rawValue: generation.finish) ?? .stopped,
                      logprobSum: generation.logprob_sum, logprobMin: generation.logprob_min)
        }
    }

    /// Whether the host table has a function appended to ABI 1 after its first release
    /// (SD_HOST_HAS): a daemon older than the plugin's header does not.
    func hostHas<Function>(_ member: KeyPath<sd_host, Function>) -> Bool {
        host.pointee.size >= UInt32(MemoryLayout<sd_host>.offset(of: member)! + MemoryLayout<Function>.size)
    }

    /// generate(), with each token's signals of certainty, and an early stop on low
    /// confidence (finish `.lowConfidence`) when `signals.stopBelow` > 0.
    public func generateWithSignals(_ sequences: [Sequence], maxTokens: Int, minTokens: Int = 0, stop: [String] = [],
                                    sampling: Sampling = .greedy, kind: TokenKind = .generated,
                                    signals: SignalParams) throws -> [(generated: Generated, signals: TokenSignals)] {
        guard !sequences.isEmpty else { return [] }
        guard hostHas(\.token_signals_free) else { throw HostError(status: Int32(SD_ERR_INVALID_ARGUMENT.rawValue), call: "generate_with_signals (host too old)") }
        var out = [sd_generation](repeating: sd_generation(), count: sequences.count)
        var recorded = [sd_token_signals](repeating: sd_token_signals(), count: sequences.count)
        let ids = sequences.map(\.id)
        let cStops = stop.map { strdup($0) }
        defer { cStops.forEach { Foundation.free($0) } }
        var params = sd_signal_params(size: UInt32(MemoryLayout<sd_signal_params>.size), top_k: Int32(signals.topK),
                                      window: Int32(signals.window), stop_below: signals.stopBelow)
        let status = cStops.map { UnsafePointer($0) }.withUnsafeBufferPointer { stops in
            var generate = sd_generate_params(
                max_tokens: Int32(maxTokens), min_tokens: Int32(minTokens), stop: stops.baseAddress,
                n_stop: Int32(stops.count), sampling: sampling.raw, kind: kind.rawValue, logprobs: true)
            return host.pointee.generate_with_signals(raw, ids, Int32(ids.count), &generate, &params, &out, &recorded)
        }
        if status != Int32(SD_OK.rawValue) && status != Int32(SD_ERR_STOPPED.rawValue) {
            throw HostError(status: status, call: "generate_with_signals")
        }
        defer {
            host.pointee.generations_free(raw, &out, Int32(out.count))
            host.pointee.token_signals_free(raw, &recorded, Int32(recorded.count))
        }
        return zip(out, recorded).map { generation, record in
            (Generated(text: generation.text.map { String(cString: $0) } ?? "", tokens: Int(generation.n_tokens),
                       finish: Finish(rawValue: generation.finish) ?? .stopped,
                       logprobSum: generation.logprob_sum, logprobMin: generation.logprob_min),
             TokenSignals(record: record))
        }
    }

    public func logits(_ sequence: Sequence, vocabularySize: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: vocabularySize)
        try check(host.pointee.logits(raw, sequence.id, &out, Int32(vocabularySize)), "logits")
        return out
    }

    public func hiddenState(_ sequence: Sequence, width: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: width)
        try check(host.pointee.hidden_state(raw, sequence.id, &out, Int32(width)), "hidden_state")
        return out
    }

    public func sample(_ logits: [Float], sampling: Sampling) throws -> Int32 {
        var token: Int32 = -1
        var params = sampling.raw
        try check(host.pointee.sample(raw, logits, Int32(logits.count), &params, &token), "sample")
        return token
    }

    public func tokenize(_ text: String) throws -> [Int32] {
        var capacity = text.utf8.count + 8
        while true {
            var out = [Int32](repeating: 0, count: capacity)
            let count = host.pointee.tokenize(raw, text, &out, Int32(capacity))
            if count >= 0 { return Array(out.prefix(Int(count))) }
            guard count == Int32(SD_ERR_BUFFER_TOO_SMALL.rawValue) else { throw HostError(status: count, call: "tokenize") }
            capacity *= 2
        }
    }

    public func detokenize(_ tokens: [Int32]) throws -> String {
        String(decoding: try detokenizedBytes(tokens), as: UTF8.self)
    }

    /// The bytes of tokens' text as the model spells them: one token may hold part of a
    /// character, which a String would replace.
    public func detokenizedBytes(_ tokens: [Int32]) throws -> [UInt8] {
        var capacity = tokens.count * 16 + 16
        while true {
            var out = [CChar](repeating: 0, count: capacity)
            let count = host.pointee.detokenize(raw, tokens, Int32(tokens.count), &out, Int32(capacity))
            if count >= 0 { return out.prefix(Int(count)).map { UInt8(bitPattern: $0) } }
            guard count == Int32(SD_ERR_BUFFER_TOO_SMALL.rawValue) else { throw HostError(status: count, call: "detokenize") }
            capacity *= 2
        }
    }

    public func isEndOfGeneration(_ token: Int32) -> Bool { host.pointee.is_end_of_generation(raw, token) }

    /// The normalized final answer of a solution text, nil if it has none.
    public func extractAnswer(_ text: String) -> String? {
        var out = [CChar](repeating: 0, count: Int(SD_ANSWER_MAX_BYTES) + 1)
        let count = host.pointee.extract_answer(raw, text, &out, Int32(out.count))
        return count > 0 ? String(decoding: out.prefix(Int(count)).map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }

    /// Scores a (partial) solution with a scorer plugin; its tokens are charged as scorer tokens.
    public func score(with scorer: String, params: [String: Any] = [:], problem: String, solution: String) throws -> Double {
        var value = 0.0
        try check(host.pointee.score(raw, scorer, jsonText(params), problem, solution, &value), "score(\(scorer))")
        return value
    }

    /// Whether a scorer, with these params, reads the log-probabilities of the policy's
    /// tokens: a strategy that will score with it samples with logprobs then.
    public func scorerReadsLogprobs(_ scorer: String, params: [String: Any] = [:]) -> Bool {
        host.pointee.scorer_reads_logprobs(raw, scorer, jsonText(params))
    }

    public enum Model: Int32, Sendable {
        case policy = 0, reward = 1
    }

    /// Log-probabilities of the first token of each candidate as the next token after
    /// `text` (evaluated in a sequence of its own, charged as scorer tokens).
    public func nextTokenLogprobs(_ model: Model = .policy, text: String, candidates: [String]) throws -> [Double] {
        var out = [Double](repeating: 0, count: candidates.count)
        let cCandidates = candidates.map { strdup($0) }
        defer { cCandidates.forEach { Foundation.free($0) } }
        let status = cCandidates.map { UnsafePointer($0) }.withUnsafeBufferPointer { pointers in
            host.pointee.next_token_logprobs(raw, model.rawValue, text, pointers.baseAddress, Int32(candidates.count), &out)
        }
        try check(status, "next_token_logprobs")
        return out
    }

    public var shouldStop: Bool { host.pointee.should_stop(raw) }

    /// Sends a progress event to a streaming client (a JSON-serializable object).
    public func progress(_ event: [String: Any]) { host.pointee.progress(raw, jsonText(event)) }

    public var usage: sd_usage {
        var usage = sd_usage()
        host.pointee.usage(raw, &usage)
        return usage
    }

    public func log(_ message: String, level: Int32 = 1) { host.pointee.log(raw, level, message) }
}
