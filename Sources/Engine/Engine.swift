import CLlama
import Foundation

public struct EngineOptions: Sendable, Equatable {
    /// KV cells shared by all live sequences (forks share their common prefix's cells);
    /// also the longest one sequence can grow. 256 ... 1_048_576.
    public var contextSize = 16_384
    /// Live sequences at once. 1 ... 256 (llama.cpp's LLAMA_MAX_SEQ).
    public var maxSequences = 64
    /// Tokens per llama_decode call; more are split over several calls. 32 ... 8192.
    public var batchSize = 2048
    /// Tokens per compute graph inside one call. 32 ... batchSize.
    public var microBatchSize = 512
    /// CPU threads for decoding. 1 ... 256; default: every core.
    public var threads = ProcessInfo.processInfo.activeProcessorCount
    /// Keep the last hidden state (after the final norm) of every sequence, as well as
    /// its logits, from the start (`Engine.enableHiddenStates` turns it on later). Costs a
    /// copy of n_embd floats per output; Quiet-STaR's learned head needs it.
    public var hiddenStates = false

    public init() {}
}

public typealias SequenceID = Int32

/// How a generation ended.
public enum FinishReason: String, Sendable, Codable {
    /// The model produced an end-of-generation token.
    case endOfGeneration = "eog"
    /// The text reached one of the stop strings.
    case stop
    /// The per-call token limit was reached.
    case maxTokens = "max_tokens"
    /// `shouldContinue` said no (cancellation, a budget).
    case interrupted
    /// The context had no room for the step (KV cache full, or the sequence at the context
    /// size), or the KV cache none for the queued tokens before the first step. Sampled
    /// tokens that were not evaluated stay queued, evaluated when the sequence is next used
    /// if there is room by then.
    case cacheFull = "cache_full"
}

public struct GenerationOptions: Sendable {
    /// 1 ... 32_768 tokens per sequence per call.
    public var maxTokens = 256
    /// End-of-generation tokens are suppressed until this many tokens. 0 ... maxTokens.
    public var minTokens = 0
    /// Generation of a sequence ends once its text contains one of these.
    public var stop: [String] = []
    public var sampling = SamplingParams.greedy
    /// Record each token's log-probability under the model (temperature 1). The sequence
    /// keeps them too, so that `appendScored` over these tokens costs nothing.
    public var logprobs = false
    /// What the sampled tokens are charged as.
    public var kind = TokenKind.generated

    public init(maxTokens: Int = 256, minTokens: Int = 0, stop: [String] = [], sampling: SamplingParams = .greedy,
                logprobs: Bool = false, kind: TokenKind = .generated) {
        self.maxTokens = maxTokens
        self.minTokens = minTokens
        self.stop = stop
        self.sampling = sampling
        self.logprobs = logprobs
        self.kind = kind
    }
}

public struct Generation: Sendable {
    public var tokens: [Int32] = []
    /// The decoded text of `tokens`, stop string included: it is exactly what the
    /// sequence now holds, so a later generation continues from it.
    public var text = ""
    public var finish = FinishReason.maxTokens
    public var stopString: String?
    /// Per-token log-probabilities, when asked for.
    public var logprobs: [Float] = []
}

/// Many sequences over one resident model in one llama.cpp context.
///
/// Tokens are evaluated lazily: `createSequence` and `append` queue tokens, and the
/// queue is evaluated when logits are needed — by `generate`, `fork`, `logits` or
/// `hiddenState` — with every queued token of every sequence involved in one
/// llama_batch. A fork copies KV cell references (llama_memory_seq_cp over a unified
/// KV buffer), so children never re-evaluate their parent's tokens.
///
/// Thread-safe: one first-come-first-served lock guards the context; `generate` takes it
/// twice per step (to sample, to decode), so that concurrent callers interleave rather
/// than wait for whole generations. Concurrent generations also share their decodes: each
/// step samples under the lock, queues its sequences, and waits (5 ms at most) until every
/// other generation has its place in the lock's queue; the first to decode then evaluates
/// all queued sequences in one batch. Each account counts the decodes it took part in. On
/// a CPU a batch of n tokens costs far less than n decodes, so concurrent solves raise
/// throughput instead of only taking turns.
public final class Engine: @unchecked Sendable {
    public let model: Model
    public let options: EngineOptions
    public let flopsModel: FlopsModel
    /// Everything evaluated since the engine started, all accounts together.
    public let totals = Account()

    private let context: OpaquePointer
    private let memory: OpaquePointer
    private var batch: llama_batch
    private let lock = FairLock()
    /// Read without the context lock, so status never waits for a decode.
    private let countLock = NSLock()
    private var sequenceCount = 0
    private var sequences: [SequenceID: SequenceState] = [:]
    private var freeIDs: [SequenceID]
    private var decodeCalls = 0
    /// Sequences whose callers wait for their queued tokens to be evaluated; the next
    /// caller to evaluate takes them all into its batch.
    private var awaitingEvaluation = Set<SequenceID>()
    /// Generations between one step's decode and their place in the queue for the next
    /// step: a step waits for them (briefly) so that they join its batch.
    private let steps = NSCondition()
    private var generationsBetweenSteps = 0
    /// A recurrent state cannot be copied up to a position (llama.cpp copies all of it),
    /// so models with one never lend a prefix.
    private let prefixesShareable: Bool
    /// Whether outputs carry hidden states: from the options, or turned on later.
    private var keepsHiddenStates: Bool

    private struct PendingToken {
        var kind: TokenKind
        var sampled: Bool
    }

    private struct SequenceState {
        let account: Account
        /// Every token of the sequence; the first `evaluated` are in the KV cache.
        var tokens: [Int32]
        /// logprobs[i] = log p(tokens[i] | tokens before it) where known (sampled with
        /// logprobs, or scored), NaN elsewhere.
        var logprobs: [Float]
        var evaluated = 0
        /// The tokens not yet evaluated, in order: their kind, and whether they were
        /// counted when sampled.
        var pending: [PendingToken]
        /// Next-token logits (and hidden state) after the last evaluated token.
        var logits: [Float] = []
        var hidden: [Float] = []
    }

    public init(model: Model, options: EngineOptions = EngineOptions()) throws {
        self.model = model
        self.options = options
        flopsModel = FlopsModel(facts: model.facts)
        var params = llama_context_default_params()
        params.n_ctx = UInt32(options.contextSize)
        params.n_batch = UInt32(options.batchSize)
        params.n_ubatch = UInt32(min(options.microBatchSize, options.batchSize))
        params.n_seq_max = UInt32(options.maxSequences)
        params.n_threads = Int32(options.threads)
        params.n_threads_batch = Int32(options.threads)
        params.kv_unified = true
        params.embeddings = options.hiddenStates
        params.pooling_type = LLAMA_POOLING_TYPE_NONE
        params.no_perf = true
        let (created, log) = LlamaRuntime.capturingLog { llama_init_from_model(model.pointer, params) }
        guard let context = created else {
            throw EngineError.contextCreationFailed(reason: log.isEmpty ? "no reason given" : log)
        }
        self.context = context
        memory = llama_get_memory(context)
        batch = llama_batch_init(Int32(options.batchSize), 0, 1)
        freeIDs = (0..<Int32(options.maxSequences)).reversed()
        prefixesShareable = !llama_model_is_recurrent(model.pointer) && !llama_model_is_hybrid(model.pointer)
        keepsHiddenStates = options.hiddenStates
    }

    /// Whether evaluated sequences keep their last hidden state.
    public var hiddenStates: Bool { locked { keepsHiddenStates } }

    /// Keeps hidden states from the next evaluation on, for every sequence (a plugin's
    /// settings ask for it when the daemon runs). Sequences evaluated before have none
    /// until they are evaluated again.
    public func enableHiddenStates() {
        locked {
            guard !keepsHiddenStates else { return }
            llama_set_embeddings(context, true)
            keepsHiddenStates = true
        }
    }

    deinit {
        llama_batch_free(batch)
        llama_free(context)
    }

    /// llama_decode calls made so far.
    public var decodeCallCount: Int { locked { decodeCalls } }
    public var liveSequences: Int { countLock.withLock { sequenceCount } }

    // MARK: sequences

    /// `text` as tokens (`model.tokenize(text, addSpecial: true)`), except that the longest
    /// prefix of the text a sequence in `reusing` spells keeps that sequence's own tokens.
    /// Sampling often picks tokens the tokenizer would not ("4", "8" for "48"): a scorer's
    /// prompt quoting the sampled text then still shares the sequence's KV cells to its end,
    /// not only up to the first such token, and sees the text as the policy wrote it.
    public func tokenize(_ text: String, reusing candidates: [SequenceID]) -> [Int32] {
        let canonical = model.tokenize(text, addSpecial: true)
        let owned = locked { candidates.compactMap { sequences[$0]?.tokens } }
        let bytes = Array(text.utf8)
        let addedBOS = model.beginningOfSequence != nil && canonical.first == model.beginningOfSequence ? 1 : 0
        // Where each canonical token's text ends (the added BOS spells none): computed once,
        // when the first sequence parts from the canonical tokens, not once per sequence.
        lazy var ends: [Int] = {
            var total = 0
            return canonical.indices.map { index in
                total += index < addedBOS ? 0 : model.piece(canonical[index], renderSpecial: true).count
                return total
            }
        }()
        var canonicalShared = 0
        var best: (tokens: [Int32], shared: Int)?
        for tokens in owned {
            var common = 0
            while common < min(tokens.count, canonical.count) && tokens[common] == canonical[common] { common += 1 }
            canonicalShared = max(canonicalShared, common)
            // A sequence without the BOS the tokenizer adds lends nothing.
            guard common >= addedBOS, common < canonical.count, common < tokens.count else { continue }
            // Past the bytes the shared tokens spell, as many of the sequence's own tokens as
            // spell the text on from there.
            var offset = common == 0 ? 0 : ends[common - 1]
            var reused = common
            while reused < tokens.count {
                let piece = model.piece(tokens[reused], renderSpecial: true)
                guard !piece.isEmpty, offset + piece.count <= bytes.count,
                      bytes[offset..<(offset + piece.count)].elementsEqual(piece) else { break }
                offset += piece.count
                reused += 1
            }
            guard reused > max(canonicalShared, best?.shared ?? 0) else { continue }
            // The rest tokenized alone must spell exactly the rest: not if the cut splits a
            // character, or the tokenizer prefixes a space to a text's start.
            let rest = Array(bytes[offset...])
            let restTokens = rest.isEmpty ? [] : model.tokenize(String(decoding: rest, as: UTF8.self))
            guard restTokens.flatMap({ model.piece($0, renderSpecial: true) }) == rest else { continue }
            best = (Array(tokens[..<reused]) + restTokens, reused)
        }
        guard let best, best.shared > canonicalShared else { return canonical }
        return best.tokens
    }

    /// A new sequence holding `tokens`, charged to `account`. The tokens are evaluated
    /// with the next operation that needs them. Of the sequences in `reusing`, the one
    /// whose evaluated tokens share the longest prefix with `tokens` lends its KV cells
    /// for that prefix: those tokens are neither evaluated again nor charged (the last
    /// token always is, for the next-token logits).
    public func createSequence(_ tokens: [Int32], account: Account, kind: TokenKind = .prompt,
                               reusing candidates: [SequenceID] = []) throws -> SequenceID {
        try locked {
            try checkTokens(tokens)
            guard !tokens.isEmpty else { throw EngineError.emptySequence }
            guard let id = freeIDs.popLast() else { throw EngineError.tooManySequences(limit: options.maxSequences) }
            var donor: (id: SequenceID, shared: Int)?
            for candidate in prefixesShareable ? candidates : [] {
                guard let state = sequences[candidate] else { continue }
                let limit = min(state.evaluated, tokens.count - 1)
                var shared = 0
                while shared < limit && state.tokens[shared] == tokens[shared] { shared += 1 }
                if shared > (donor?.shared ?? 0) { donor = (candidate, shared) }
            }
            let shared = donor?.shared ?? 0
            if let donor { llama_memory_seq_cp(memory, donor.id, id, 0, Int32(shared)) }
            let known = donor.map { sequences[$0.id]!.logprobs[..<shared] } ?? []
            sequences[id] = SequenceState(account: account, tokens: tokens,
                                          logprobs: known + Array(repeating: .nan, count: tokens.count - shared),
                                          evaluated: shared,
                                          pending: Array(repeating: PendingToken(kind: kind, sampled: false),
                                                         count: tokens.count - shared))
            account.sequenceOpened(byFork: false)
            countLock.withLock { sequenceCount += 1 }
            return id
        }
    }

    /// `count` children of `parent`, each sharing every token the parent holds (the
    /// parent's queued tokens are evaluated first, once).
    public func fork(_ parent: SequenceID, count: Int) throws -> [SequenceID] {
        try locked {
            guard sequences[parent] != nil else { throw EngineError.unknownSequence(parent) }
            guard count <= freeIDs.count else { throw EngineError.tooManySequences(limit: options.maxSequences) }
            try evaluatePending([parent])
            let state = sequences[parent]!
            return (0..<count).map { _ in
                let child = freeIDs.popLast()!
                llama_memory_seq_cp(memory, parent, child, -1, -1)
                sequences[child] = state
                state.account.sequenceOpened(byFork: true)
                countLock.withLock { sequenceCount += 1 }
                return child
            }
        }
    }

    /// Queues tokens at the end of a sequence.
    public func append(_ id: SequenceID, tokens: [Int32], kind: TokenKind = .prompt) throws {
        try locked {
            try checkTokens(tokens)
            guard sequences[id] != nil else { throw EngineError.unknownSequence(id) }
            sequences[id]!.tokens += tokens
            sequences[id]!.logprobs += Array(repeating: .nan, count: tokens.count)
            // Generated tokens a caller appends were sampled by it (from a mixture, say):
            // counted now, like the engine's own samples, even if never evaluated.
            let sampled = kind == .generated
            if sampled {
                sequences[id]!.account.update { $0.count(kind, tokens: tokens.count) }
                totals.update { $0.count(kind, tokens: tokens.count) }
            }
            sequences[id]!.pending += Array(repeating: PendingToken(kind: kind, sampled: sampled), count: tokens.count)
        }
    }

    public func append(_ id: SequenceID, text: String, kind: TokenKind = .prompt) throws {
        try append(id, tokens: model.tokenize(text), kind: kind)
    }

    /// Appends `tokens` and evaluates them with an output row at every position, in as
    /// few decodes as the batch allows: result[i] is log p(tokens[i] | all before it), at
    /// temperature 1. A teacher-forced score of a continuation for the price of one batch.
    /// The last token stays queued: its own output would only predict the one after it.
    ///
    /// When a sequence in `reusing` already holds the same tokens after the same prefix,
    /// with their log-probabilities known (sampled with `logprobs`, or scored), those are
    /// read and its KV cells lent instead: only the tokens past the longest such run are
    /// evaluated and charged. A scorer that teacher-forces a step the policy just sampled
    /// then costs nothing, or the few tokens where its tokenization of the text differs.
    public func appendScored(_ id: SequenceID, tokens: [Int32], kind: TokenKind = .prompt,
                             reusing candidates: [SequenceID] = []) throws -> [Float] {
        try locked {
            try checkTokens(tokens)
            guard sequences[id] != nil else { throw EngineError.unknownSequence(id) }
            guard !tokens.isEmpty else { return [] }
            let start = sequences[id]!.tokens.count
            var scores = lendScored(id, tokens: tokens, kind: kind, from: candidates)
            if scores.isEmpty {
                try evaluatePending([id])
                scores = [sequences[id]!.logits.withUnsafeBufferPointer { $0[Int(tokens[0])] - LogProbabilities.logSumExp($0) }]
                sequences[id]!.tokens += tokens
                sequences[id]!.logprobs += Array(repeating: .nan, count: tokens.count)
                sequences[id]!.pending += Array(repeating: PendingToken(kind: kind, sampled: false), count: tokens.count)
            }
            try evaluatePending([id], scoring: id) { scores.append($0) }
            sequences[id]!.logprobs.replaceSubrange(start..., with: scores)
            return scores
        }
    }

    /// The start of `appendScored` from the candidate that holds `id`'s tokens followed by
    /// the longest run of `tokens` whose log-probabilities it knows (caller holds the lock).
    /// Its cells up to the run's last token are copied, as `createSequence` lends a prefix;
    /// `tokens` are appended, the run's last token and those after it queued, and the run's
    /// log-probabilities returned. Empty when no candidate knows the first token's.
    private func lendScored(_ id: SequenceID, tokens: [Int32], kind: TokenKind, from candidates: [SequenceID]) -> [Float] {
        guard prefixesShareable else { return [] }
        let state = sequences[id]!
        let start = state.tokens.count
        var donor: (id: SequenceID, run: Int)?
        for candidate in candidates.sorted() where candidate != id {
            guard let other = sequences[candidate], other.tokens.count > start,
                  other.tokens[..<start].elementsEqual(state.tokens) else { continue }
            // Cells must exist up to the run's last token, which stays queued.
            let limit = min(tokens.count, other.tokens.count - start, other.evaluated - start + 1)
            var run = 0
            while run < limit && other.tokens[start + run] == tokens[run] && !other.logprobs[start + run].isNaN { run += 1 }
            if run > (donor?.run ?? 0) { donor = (candidate, run) }
        }
        guard let donor else { return [] }
        let lentEnd = start + donor.run - 1
        llama_memory_seq_rm(memory, id, Int32(state.evaluated), -1)
        llama_memory_seq_cp(memory, donor.id, id, Int32(state.evaluated), Int32(lentEnd))
        let scores = Array(sequences[donor.id]!.logprobs[start..<(start + donor.run)])
        sequences[id]!.tokens += tokens
        sequences[id]!.logprobs += scores + Array(repeating: .nan, count: tokens.count - donor.run)
        // The queued tokens are evaluated by the next use, which refreshes the logits.
        sequences[id]!.evaluated = lentEnd
        sequences[id]!.pending = Array(repeating: PendingToken(kind: kind, sampled: false), count: start + tokens.count - lentEnd)
        return scores
    }

    /// Frees a sequence and the KV cells no other sequence shares.
    public func remove(_ id: SequenceID) {
        locked {
            guard let state = sequences.removeValue(forKey: id) else { return }
            awaitingEvaluation.remove(id)
            llama_memory_seq_rm(memory, id, -1, -1)
            freeIDs.append(id)
            state.account.sequenceClosed()
            countLock.withLock { sequenceCount -= 1 }
        }
    }

    /// Evaluates every queued token of these sequences, in as few llama_decode calls as
    /// the batch size allows (one, when they fit), with those concurrent generations queued.
    public func evaluate(_ ids: [SequenceID]) throws {
        try locked { try evaluateJoiningOthers(ids) }
    }

    // MARK: logits, hidden states, sampling

    /// Runs `body` over the sequence's next-token logits (vocabulary-sized).
    public func withLogits<T>(_ id: SequenceID, _ body: (UnsafeBufferPointer<Float>) throws -> T) throws -> T {
        try locked {
            try evaluatePending([id])
            return try sequences[id]!.logits.withUnsafeBufferPointer(body)
        }
    }

    /// The last hidden state (after the final norm: what the output head reads).
    public func hiddenState(_ id: SequenceID) throws -> [Float] {
        return try locked {
            guard keepsHiddenStates else { throw EngineError.hiddenStatesDisabled }
            try evaluatePending([id])
            // A sequence last evaluated before hidden states were turned on has none yet.
            guard sequences[id]!.hidden.count == model.facts.embeddingWidth else { throw EngineError.hiddenStatesDisabled }
            return sequences[id]!.hidden
        }
    }

    /// Samples from logits the caller computed (for example a mixture of two distributions).
    public static func sample(_ logits: UnsafeBufferPointer<Float>, params: SamplingParams) -> Int32 {
        Sampler(params).sample(logits)
    }

    // MARK: generation

    /// Generates on every sequence in `ids` at once: each step samples one token per
    /// live sequence and evaluates them all in one llama_decode call, with the tokens
    /// concurrent generations queued for theirs. `shouldContinue`
    /// is asked before every step (with the step number); false ends the live ones as
    /// `.interrupted`, and a step the KV cache has no room for as `.cacheFull`: what was
    /// generated is returned either way. Sequence i samples with seed `sampling.seed + i`.
    public func generate(_ ids: [SequenceID], options: GenerationOptions,
                         shouldContinue: (Int) -> Bool = { _ in true }) throws -> [Generation] {
        var results = [Generation](repeating: Generation(), count: ids.count)
        var bytes = [[UInt8]](repeating: [], count: ids.count)
        let samplers = ids.indices.map { index in
            var params = options.sampling
            params.seed = params.seed &+ UInt32(index)
            return Sampler(params)
        }
        let stops = options.stop.filter { !$0.isEmpty }.map { Array($0.utf8) }
        var live = Array(ids.indices)
        var step = 0
        do {
            try evaluate(ids)
        } catch EngineError.kvCacheFull {
            return ids.map { _ in Generation(finish: .cacheFull) }
        }
        var betweenSteps = true
        steps.withLock { generationsBetweenSteps += 1 }
        defer { if betweenSteps { leaveBetweenSteps() } }
        while !live.isEmpty {
            guard options.maxTokens > 0, shouldContinue(step) else {
                for index in live { results[index].finish = options.maxTokens > 0 ? .interrupted : .maxTokens }
                break
            }
            step += 1
            lock.lock(onTicket: { betweenSteps = false; leaveBetweenSteps() })
            defer { lock.unlock() }
            var stillLive: [Int] = []
            for index in live {
                let id = ids[index]
                guard sequences[id] != nil else { throw EngineError.unknownSequence(id) }
                // The model's own log-normalizer, before min_tokens hides the end tokens.
                let lse = options.logprobs ? sequences[id]!.logits.withUnsafeBufferPointer(LogProbabilities.logSumExp) : 0
                if results[index].tokens.count < options.minTokens {
                    for eog in model.endOfGenerationTokens { sequences[id]!.logits[Int(eog)] = -.infinity }
                }
                let token = sequences[id]!.logits.withUnsafeBufferPointer { samplers[index].sample($0) }
                let logprob = sequences[id]!.logits[Int(token)] - lse
                if model.isEndOfGeneration(token) {
                    results[index].finish = .endOfGeneration
                    continue
                }
                results[index].tokens.append(token)
                if options.logprobs { results[index].logprobs.append(logprob) }
                sequences[id]!.tokens.append(token)
                sequences[id]!.logprobs.append(options.logprobs ? logprob : .nan)
                sequences[id]!.pending.append(PendingToken(kind: options.kind, sampled: true))
                sequences[id]!.account.update { $0.count(options.kind, tokens: 1) }
                totals.update { $0.count(options.kind, tokens: 1) }
                let piece = model.piece(token)
                bytes[index] += piece
                if let stop = Engine.firstStop(stops, in: bytes[index], newBytes: piece.count) {
                    results[index].finish = .stop
                    results[index].stopString = String(decoding: stop, as: UTF8.self)
                } else if results[index].tokens.count >= options.maxTokens {
                    results[index].finish = .maxTokens
                } else {
                    stillLive.append(index)
                }
            }
            live = stillLive
            awaitingEvaluation.formUnion(live.map { ids[$0] })
            guard !live.isEmpty else { break }
            lock.unlock()
            waitForGenerationsBetweenSteps()
            lock.lock()
            do {
                try evaluateJoiningOthers(live.map { ids[$0] })
            } catch let error as EngineError where error.isOutOfRoom {
                for index in live { results[index].finish = .cacheFull }
                break
            }
            steps.withLock { generationsBetweenSteps += 1 }
            betweenSteps = true
        }
        for index in ids.indices { results[index].text = String(decoding: bytes[index], as: UTF8.self) }
        return results
    }

    /// The first stop string that ends within the last `newBytes` bytes of `text`.
    static func firstStop(_ stops: [[UInt8]], in text: [UInt8], newBytes: Int) -> [UInt8]? {
        for stop in stops where text.count >= stop.count {
            let earliestStart = max(0, text.count - newBytes - stop.count + 1)
            var start = text.count - stop.count
            while start >= earliestStart {
                if text[start..<(start + stop.count)].elementsEqual(stop) { return stop }
                start -= 1
            }
        }
        return nil
    }

    // MARK: evaluation

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        return try body()
    }

    private func checkTokens(_ tokens: [Int32]) throws {
        let vocabularySize = model.facts.vocabularySize
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= vocabularySize }) {
            throw EngineError.invalidToken(bad, vocabularySize: vocabularySize)
        }
    }

    private func leaveBetweenSteps() {
        steps.withLock { generationsBetweenSteps -= 1 }
        steps.broadcast()
    }

    /// Waits until every other generation has its place in the lock's queue, so that its
    /// next step is sampled and queued before this step's decode. Between steps a
    /// generation only asks `shouldContinue`, so the wait is short; the deadline bounds it
    /// when a thread is descheduled or a callback is slow.
    private func waitForGenerationsBetweenSteps() {
        let deadline = Date(timeIntervalSinceNow: 0.005)
        steps.lock()
        while generationsBetweenSteps > 0 && steps.wait(until: deadline) {}
        steps.unlock()
    }

    /// Evaluates `own` and every sequence other callers are waiting on, in one batch
    /// (caller holds the lock). The others are taken whether or not this call succeeds.
    private func evaluateJoiningOthers(_ own: [SequenceID]) throws {
        let others = awaitingEvaluation.subtracting(own).filter { sequences[$0] != nil }.sorted()
        awaitingEvaluation.removeAll()
        do {
            try evaluatePending(own + others)
        } catch let error as EngineError where error.isOutOfRoom && !others.isEmpty {
            // The room may have run out for another caller's tokens: evaluate ours alone.
            // Theirs stay queued; their callers evaluate them next.
            try evaluatePending(own)
        }
    }

    /// Evaluates the queued tokens of `ids` (caller holds the lock). Each sequence's last
    /// token is an output row; its logits are copied out before the next call reuses
    /// llama.cpp's buffers. Every token of `scoring` but its last (left queued) is an
    /// output row too: `onScore` receives, in order, the log-probability of each of its
    /// tokens after the first queued one, given those before it.
    private func evaluatePending(_ ids: [SequenceID], scoring: SequenceID? = nil,
                                 onScore: (Float) -> Void = { _ in }) throws {
        var work: [(id: SequenceID, start: Int, end: Int)] = []
        for id in ids {
            guard let state = sequences[id] else { throw EngineError.unknownSequence(id) }
            let end = state.tokens.count - (id == scoring ? 1 : 0)
            guard state.evaluated < end else { continue }
            if state.tokens.count > options.contextSize {
                throw EngineError.contextOverflow(sequence: id, needed: state.tokens.count, capacity: options.contextSize)
            }
            work.append((id, state.evaluated, end))
        }
        guard !work.isEmpty else { return }
        var item = 0
        var position = work[0].start
        while item < work.count {
            // Fill one batch, sequence after sequence, splitting only at the batch's end.
            var rows: [Row] = []
            batch.n_tokens = 0
            while item < work.count && Int(batch.n_tokens) < options.batchSize {
                let (id, _, end) = work[item]
                let take = min(end - position, options.batchSize - Int(batch.n_tokens))
                let tokens = sequences[id]!.tokens
                var output: Int32?
                for offset in 0..<take {
                    let slot = Int(batch.n_tokens)
                    let isLast = position + offset == end - 1
                    batch.token[slot] = tokens[position + offset]
                    batch.pos[slot] = Int32(position + offset)
                    batch.n_seq_id[slot] = 1
                    batch.seq_id[slot]![0] = id
                    batch.logits[slot] = isLast || id == scoring ? 1 : 0
                    if isLast { output = Int32(slot) }
                    batch.n_tokens += 1
                }
                rows.append(Row(id: id, start: position, end: position + take, firstSlot: batch.n_tokens - Int32(take),
                                output: output))
                position += take
                if position == end {
                    item += 1
                    if item < work.count { position = work[item].start }
                }
            }
            try decode(rows, scoring: scoring, onScore: onScore)
        }
    }

    /// A run of one sequence's tokens in a batch: positions [start, end) from `firstSlot`.
    private struct Row {
        var id: SequenceID
        var start: Int
        var end: Int
        var firstSlot: Int32
        /// The slot whose logits become the sequence's next-token logits.
        var output: Int32?
    }

    private func decode(_ rows: [Row], scoring: SequenceID?, onScore: (Float) -> Void) throws {
        let status = llama_decode(context, batch)
        if status == 1 { throw EngineError.kvCacheFull(tokens: Int(batch.n_tokens), capacity: options.contextSize) }
        if status != 0 {
            // After an abort or a fatal error the micro-batches already processed stay in
            // the cache, though their tokens count as not evaluated: drop them, or the next
            // decode of these sequences (perhaps other solves') meets positions it has.
            for row in rows { llama_memory_seq_rm(memory, row.id, Int32(row.start), -1) }
            throw EngineError.decodeFailed(code: status)
        }
        decodeCalls += 1
        let vocabularySize = model.facts.vocabularySize
        var charged = Set<ObjectIdentifier>()
        for row in rows {
            var state = sequences[row.id]!
            chargeTokens(&state, from: row.start, to: row.end, firstCall: charged.insert(ObjectIdentifier(state.account)).inserted)
            if row.id == scoring {
                // The row at position p predicts the token at p + 1.
                for position in row.start..<row.end {
                    let logits = UnsafeBufferPointer(start: llama_get_logits_ith(context, row.firstSlot + Int32(position - row.start)),
                                                     count: vocabularySize)
                    onScore(logits[Int(state.tokens[position + 1])] - LogProbabilities.logSumExp(logits))
                }
            }
            if let output = row.output {
                state.logits = Array(UnsafeBufferPointer(start: llama_get_logits_ith(context, output), count: vocabularySize))
                if keepsHiddenStates, let hidden = llama_get_embeddings_ith(context, output) {
                    state.hidden = Array(UnsafeBufferPointer(start: hidden, count: model.facts.embeddingWidth))
                }
            }
            sequences[row.id] = state
        }
        totals.update { $0.decodeCalls += 1 }
    }

    /// Charges tokens [from, to) of a sequence, now evaluated, to its account and the totals.
    private func chargeTokens(_ state: inout SequenceState, from: Int, to: Int, firstCall: Bool) {
        var runStart = from
        while runStart < to {
            let first = state.pending[runStart - state.evaluated]
            var runEnd = runStart + 1
            while runEnd < to, state.pending[runEnd - state.evaluated].kind == first.kind,
                  state.pending[runEnd - state.evaluated].sampled == first.sampled { runEnd += 1 }
            let count = runEnd - runStart
            let flops = flopsModel.flops(start: runStart, count: count)
            for account in [state.account, totals] {
                account.update {
                    $0.chargeEvaluation(first.kind, tokens: count, flops: flops)
                    if !first.sampled { $0.count(first.kind, tokens: count) }
                }
            }
            runStart = runEnd
        }
        if firstCall { state.account.update { $0.decodeCalls += 1 } }
        state.pending.removeFirst(to - state.evaluated)
        state.evaluated = to
    }
}
