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
    /// Queued tokens (prompts, appended text) one tick evaluates at most, besides one
    /// token per generating sequence: a long prompt delays others' generation by at most
    /// one such chunk per tick. 1 ... batchSize.
    public var tickTokens = 512
    /// KV cells the prompt cache may keep: the prompts of freed sequences, which a new
    /// sequence starting with the same tokens copies instead of evaluating. 0 = off.
    public var promptCacheTokens = 0
    /// KV cells the sequences of one account (a solve) may hold together; a sequence whose
    /// tokens would take its account past it ends `kvCacheFull`. 0 = the whole cache.
    public var maxCellsPerAccount = 0
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
    /// A window of tokens fell below `ConfidenceOptions.stopBelow` (DeepConf's early stop).
    case lowConfidence = "low_confidence"
}

/// Per-token signals of how sure the model was of each step, read from the next-token
/// distribution at temperature 1 before sampling: DeepConf's token confidence (Fu et al.
/// 2025: minus the mean log-probability of the top k tokens), the entropy, and the margin
/// between the two likeliest tokens.
public struct ConfidenceOptions: Sendable, Equatable {
    /// Tokens whose mean log-probability makes a token's confidence, 1 ... 20.
    public var topK: Int
    /// Tokens in a group, whose mean confidence is the group's.
    public var window: Int
    /// Ends a sequence (finish `.lowConfidence`) once the group of its last `window`
    /// tokens has a mean confidence below this; nil never does.
    public var stopBelow: Double?

    public static let topKRange = 1...20

    public init(topK: Int = 5, window: Int = 64, stopBelow: Double? = nil) {
        self.topK = topK
        self.window = window
        self.stopBelow = stopBelow
    }
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
    /// keeps them too, and the tokens' signals at top k 1, so that `appendScored` over these
    /// tokens costs nothing.
    public var logprobs = false
    /// What the sampled tokens are charged as.
    public var kind = TokenKind.generated
    /// Record each token's confidence, entropy, margin and certainty, and stop on low
    /// confidence. The sequence keeps them and the log-probabilities, as with `logprobs`.
    public var confidence: ConfidenceOptions?

    public init(maxTokens: Int = 256, minTokens: Int = 0, stop: [String] = [], sampling: SamplingParams = .greedy,
                logprobs: Bool = false, kind: TokenKind = .generated, confidence: ConfidenceOptions? = nil) {
        self.maxTokens = maxTokens
        self.minTokens = minTokens
        self.stop = stop
        self.sampling = sampling
        self.logprobs = logprobs
        self.kind = kind
        self.confidence = confidence
    }
}

/// What `ConfidenceOptions` records, one entry per generated token.
public struct TokenConfidence: Sendable, Equatable {
    /// Minus the mean log-probability of the top k tokens: high when the mass is on few tokens.
    public var confidence: [Float] = []
    /// Entropy of the next-token distribution, in nats.
    public var entropy: [Float] = []
    /// p(likeliest token) - p(second likeliest).
    public var margin: [Float] = []
    /// KL(uniform || p) of the next-token distribution, Kang et al. 2025's self-certainty.
    public var certainty: [Float] = []

    public init() {}

    fileprivate init(_ rows: [Engine.SignalRow]) {
        rows.forEach { append($0) }
    }

    fileprivate mutating func append(_ row: Engine.SignalRow) {
        confidence.append(row.confidence)
        entropy.append(row.entropy)
        margin.append(row.margin)
        certainty.append(row.certainty)
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
    /// Per-token confidence signals, when asked for (`GenerationOptions.confidence`).
    public var confidence: TokenConfidence?
}

/// Many sequences over one resident model in one llama.cpp context.
///
/// Tokens are evaluated lazily: `createSequence` and `append` queue tokens, and the
/// queue is evaluated when logits are needed — by `generate`, `fork`, `logits` or
/// `hiddenState` — with every queued token of every sequence involved in one
/// llama_batch. A fork copies KV cell references (llama_memory_seq_cp over a unified
/// KV buffer), so children never re-evaluate their parent's tokens.
///
/// One owner: a scheduler thread owns the llama.cpp context, as the update loop of
/// llama.cpp's server does. Other threads post operations and wait for them. Each tick
/// the owner runs the posted operations, samples one token for every generating sequence
/// of every caller, and evaluates in one llama_batch those tokens and, up to
/// `tickTokens`, the queued tokens that callers wait on (prompts, appended text, scored
/// continuations), taken round-robin. So concurrent solves share every decode, and a long
/// prompt stalls others' generation by at most one chunk. Each account counts the decodes
/// it took part in. On a CPU a batch of n tokens costs far less than n decodes, so
/// concurrent solves raise throughput instead of only taking turns.
public final class Engine: @unchecked Sendable {
    public let model: Model
    public let options: EngineOptions
    public let flopsModel: FlopsModel
    /// Everything evaluated since the engine started, all accounts together.
    public let totals = Account()

    private let context: OpaquePointer
    private let memory: OpaquePointer
    private var batch: llama_batch
    /// Read without waiting for the owner, so status never waits for a decode.
    private let countLock = NSLock()
    /// The live sequences as callers see them: a removed one leaves at once, though the
    /// owner frees its cells after the current tick.
    private var liveIDs = Set<SequenceID>()
    private var decodeCalls = 0
    // The owner's state: touched only on the owner thread.
    private var sequences: [SequenceID: SequenceState] = [:]
    private var freeIDs: [SequenceID]
    /// Callers waiting for queued tokens to be evaluated, in arrival order.
    private var evaluations: [Evaluation] = []
    /// Generations in progress, one token per live sequence per tick.
    private var generations: [GenerationTask] = []
    /// Where the next tick starts taking queued tokens: rotates, so no caller waits behind
    /// another's long prompt for more than a chunk per tick.
    private var nextEvaluation = 0
    /// Kept prompts, least recently used first out.
    private var promptCache: [CachedPrompt] = [] { didSet { publishCacheSummary() } }
    private var cacheClock: UInt64 = 0
    private var cacheSummary = (prompts: 0, tokens: 0)
    private var ledger = CellLedger()
    /// The accounts with live sequences: in the order they opened their first (the oldest
    /// goes first when cells run short) and how many they hold.
    private var liveAccounts: [ObjectIdentifier: (serial: UInt64, sequences: Int)] = [:]
    private var accountClock: UInt64 = 0
    /// Cells free or held only by kept prompts, for admission (under countLock).
    private var availableCells = 0
    // Posted operations, for the owner to run.
    private let posted = NSCondition()
    private var operations: [() -> Void] = []
    private var ownerThread: Thread?
    /// A recurrent state cannot be copied up to a position (llama.cpp copies all of it),
    /// so models with one never lend a prefix.
    private let prefixesShareable: Bool
    /// Whether outputs carry hidden states: from the options, or turned on later (under
    /// countLock, so that anyone may read it).
    private var keepsHiddenStates: Bool
    /// Tokens of callers' sequences per llama_decode call.
    private let decodeRows: Int
    /// Sequences per llama_decode call. ggml's CPU flash attention (with an F16 cache) takes
    /// a micro-batch of 64 rows or more in tiles of 64 rows over every cell in use, and skips
    /// a tile only where all its rows mask all its cells: rows of many sequences rarely do,
    /// so a decode of one token for each of many sequences would pay for attention over the
    /// whole cache, several times the weights' work once thousands of cells are in use.
    /// Below 64 rows it takes each row alone and skips the cells its sequence cannot see.
    /// A few sequences' chunks (prompts) share a call: their tiles skip the others' cells.
    private let sequencesPerCall: Int
    /// GGML_FA_TILE_Q in ggml/src/ggml-cpu/common.h.
    private static let attentionTileRows = 64
    /// With batch-invariant numerics, for a model whose one-row products take other kernels:
    /// the sequence of the padding row a decode with one row or one output row carries.
    private let paddingSequence: SequenceID?

    private struct PendingToken: Equatable {
        var kind: TokenKind
        var sampled: Bool
        /// Evaluated before, then given up to free cells for an older solve: evaluated again
        /// at the engine's expense, not charged to the account a second time.
        var recomputed = false
    }

    private struct SequenceState {
        let account: Account
        /// Every token of the sequence; the first `evaluated` are in the KV cache.
        var tokens: [Int32]
        /// logprobs[i] = log p(tokens[i] | tokens before it) where known (sampled with
        /// logprobs or signals, or scored), NaN elsewhere.
        var logprobs: [Float]
        /// signals[i]: the signals of the distribution that predicted tokens[i] where known
        /// (sampled with logprobs or signals, or scored with signals), nil elsewhere.
        var signals: [SignalRow?]
        var evaluated = 0
        /// The tokens not yet evaluated, in order: their kind, and whether they were
        /// counted when sampled.
        var pending: [PendingToken]
        /// Next-token logits (and hidden state) after the last evaluated token.
        var logits: [Float] = []
        var hidden: [Float] = []
        /// How many leading tokens were created as the sequence's prompt: what the prompt
        /// cache keeps when the sequence is freed.
        var promptLength = 0
        /// The ledger's handles of the cells holding the evaluated tokens, one per position.
        var cells: [Int32] = []
        /// After preemption: the sibling whose first `length` cells this sequence shared,
        /// to be shared again rather than evaluated twice.
        var sharesOnRecompute: (donor: SequenceID, length: Int)?
    }

    /// One position's signals, as `ConfidenceOptions` records them at `topK`.
    fileprivate struct SignalRow {
        let topK: Int
        let confidence, entropy, margin, certainty: Float

        init(topK: Int, _ row: (confidence: Float, entropy: Float, margin: Float, certainty: Float, logSumExp: Float)) {
            self.topK = topK
            (confidence, entropy, margin, certainty) = (row.confidence, row.entropy, row.margin, row.certainty)
        }
    }

    /// A freed sequence's prompt, its cells kept under a sequence id of its own.
    private struct CachedPrompt {
        let id: SequenceID
        let tokens: [Int32]
        let cells: [Int32]
        var lastUsed: UInt64
    }

    /// Shorter prompts are not worth a sequence id.
    private static let shortestCachedPrompt = 16

    public init(model: Model, options: EngineOptions = EngineOptions()) throws {
        self.model = model
        self.options = options
        flopsModel = FlopsModel(facts: model.facts)
        var params = llama_context_default_params()
        params.n_ctx = UInt32(options.contextSize)
        params.n_batch = UInt32(options.batchSize)
        params.n_ubatch = UInt32(min(options.microBatchSize, options.batchSize))
        params.n_seq_max = UInt32(options.maxSequences)
        if model.batchInvariant {
            // Attention runs as flash attention over a q8_0 KV cache: for any number of
            // query rows ggml's CPU kernel then computes each row alone, visiting only its
            // own sequence's cells, in cell order (its split-KV kernel for one row and its
            // tiled kernel for 64 rows or more take F16 caches only, and add up in another
            // order). llama.cpp, as strategyd builds it, keeps a sequence's cells in
            // position order (scripts/patches/llama.cpp, turned on by the model).
            params.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED
            params.type_k = GGML_TYPE_Q8_0
            params.type_v = GGML_TYPE_Q8_0
        }
        if model.batchInvariant && model.oneRowTakesOtherKernels {
            // llamafile's sgemm takes products of two rows or more, a vector dot product
            // one row: each call is one micro-batch, padded to two rows and two outputs.
            guard options.maxSequences < 256 else {
                throw EngineError.contextCreationFailed(reason: "batch-invariant numerics keep one of llama.cpp's 256 sequence ids for a padding row: at most 255 sequences")
            }
            params.n_seq_max = UInt32(options.maxSequences + 1)
            decodeRows = Int(params.n_ubatch) - 1
            paddingSequence = SequenceID(options.maxSequences)
        } else {
            decodeRows = options.batchSize
            paddingSequence = nil
        }
        // A q8_0 cache (batch-invariant numerics) never takes the tiled kernel.
        sequencesPerCall = model.batchInvariant ? decodeRows : Engine.attentionTileRows - 1
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
        publishAvailableCells()
        startOwner()
    }

    /// Whether evaluated sequences keep their last hidden state.
    public var hiddenStates: Bool { countLock.withLock { keepsHiddenStates } }

    /// Keeps hidden states from the next evaluation on, for every sequence (a plugin's
    /// settings ask for it when the daemon runs). Sequences evaluated before have none
    /// until they are evaluated again.
    public func enableHiddenStates() {
        run { [self] in
            guard !hiddenStates else { return }
            llama_set_embeddings(context, true)
            countLock.withLock { keepsHiddenStates = true }
        }
    }

    deinit {
        llama_batch_free(batch)
        llama_free(context)
    }

    /// llama_decode calls made so far.
    public var decodeCallCount: Int { countLock.withLock { decodeCalls } }
    public var liveSequences: Int { countLock.withLock { liveIDs.count } }

    // MARK: sequences

    /// `prompt` as tokens (`model.tokenize(prompt, addSpecial: true)`), except that the
    /// longest prefix of its text a sequence in `reusing` spells keeps that sequence's own
    /// tokens. Sampling often picks tokens the tokenizer would not ("4", "8" for "48"): a
    /// scorer's prompt quoting the sampled text then still shares the sequence's KV cells to
    /// its end, not only up to the first such token, and sees the text as the policy wrote
    /// it. Tokens are taken over only for text: never a control token, never where the
    /// chat template wrote.
    public func tokenize(_ prompt: PromptText, reusing candidates: [SequenceID]) -> [Int32] {
        let canonical = model.tokenize(prompt, addSpecial: true)
        let owned = run { [self] in candidates.compactMap { sequences[$0]?.tokens } }
        let bytes = Array(prompt.text.utf8)
        // The template's own bytes keep the template's tokens (its control tokens above all).
        var templateBytes: [Range<Int>] = []
        var start = 0
        for part in prompt.parts {
            let end = start + part.text.utf8.count
            if part.isTemplate { templateBytes.append(start..<end) }
            start = end
        }
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
                guard !piece.isEmpty, !model.isControl(tokens[reused]), offset + piece.count <= bytes.count,
                      !templateBytes.contains(where: { $0.overlaps(offset..<(offset + piece.count)) }),
                      bytes[offset..<(offset + piece.count)].elementsEqual(piece) else { break }
                offset += piece.count
                reused += 1
            }
            guard reused > max(canonicalShared, best?.shared ?? 0) else { continue }
            // The rest tokenized alone must spell exactly the rest: not if the cut splits a
            // character or a control token's spelling, or the tokenizer prefixes a space to
            // a text's start.
            let rest = Array(bytes[offset...])
            guard let restPrompt = prompt.suffix(fromByte: offset) else { continue }
            let restTokens = model.tokenize(restPrompt)
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
        try run { [self] in
            try checkTokens(tokens)
            guard !tokens.isEmpty else { throw EngineError.emptySequence }
            guard let id = takeID() else { throw EngineError.tooManySequences(limit: options.maxSequences) }
            var donor: (id: SequenceID, shared: Int)?
            for candidate in prefixesShareable ? candidates : [] {
                guard let state = sequences[candidate] else { continue }
                let limit = min(state.evaluated, tokens.count - 1)
                var shared = 0
                while shared < limit && state.tokens[shared] == tokens[shared] { shared += 1 }
                if shared > (donor?.shared ?? 0) { donor = (candidate, shared) }
            }
            // A kept prompt lends its cells where it shares more than a live sequence of
            // the caller's: those tokens are charged as if evaluated (the solve's compute
            // stays what it would be alone) and counted as cached.
            var cached = 0
            if let hit = cachedPrefix(of: tokens), hit.shared > (donor?.shared ?? 0) {
                donor = (hit.id, hit.shared)
                cached = hit.shared
            }
            let shared = donor?.shared ?? 0
            var cells: [Int32] = []
            if let donor {
                llama_memory_seq_cp(memory, donor.id, id, 0, Int32(shared))
                cells = Array(cellsOf(donor.id)[..<shared])
                ledger.retain(cells)
            }
            let known = cached == 0 ? donor.map { sequences[$0.id]!.logprobs[..<shared] } ?? [] : []
            let knownSignals = cached == 0 ? donor.map { sequences[$0.id]!.signals[..<shared] } ?? [] : []
            sequences[id] = SequenceState(account: account, tokens: tokens,
                                          logprobs: known + Array(repeating: .nan, count: tokens.count - known.count),
                                          signals: knownSignals + Array(repeating: nil, count: tokens.count - knownSignals.count),
                                          evaluated: shared,
                                          pending: Array(repeating: PendingToken(kind: kind, sampled: false),
                                                         count: tokens.count - shared),
                                          promptLength: kind == .prompt ? tokens.count : 0, cells: cells)
            if cached > 0 {
                let flops = flopsModel.flops(start: 0, count: cached)
                account.update { $0.chargeCached(kind, tokens: cached, flops: flops) }
                totals.update { $0.cachedTokens += cached }
            }
            account.sequenceOpened(byFork: false)
            accountOpened(account)
            countLock.withLock { _ = liveIDs.insert(id) }
            return id
        }
    }

    /// `count` children of `parent`, each sharing every token the parent holds (the
    /// parent's queued tokens are evaluated first, once).
    public func fork(_ parent: SequenceID, count: Int) throws -> [SequenceID] {
        try evaluateInTick([parent])
        return try run { [self] in
            guard sequences[parent] != nil else { throw EngineError.unknownSequence(parent) }
            guard count <= freeIDs.count + promptCache.count else {
                throw EngineError.tooManySequences(limit: options.maxSequences)
            }
            // Tokens appended since the tick are evaluated here, before the cells are shared.
            try evaluateNow([parent])
            let state = sequences[parent]!
            return (0..<count).map { _ in
                let child = takeID()!
                llama_memory_seq_cp(memory, parent, child, -1, -1)
                ledger.retain(state.cells)
                sequences[child] = state
                state.account.sequenceOpened(byFork: true)
                accountOpened(state.account)
                countLock.withLock { _ = liveIDs.insert(child) }
                return child
            }
        }
    }

    /// Queues tokens at the end of a sequence.
    public func append(_ id: SequenceID, tokens: [Int32], kind: TokenKind = .prompt) throws {
        try run { [self] in
            try checkTokens(tokens)
            guard sequences[id] != nil else { throw EngineError.unknownSequence(id) }
            sequences[id]!.tokens += tokens
            sequences[id]!.logprobs += Array(repeating: .nan, count: tokens.count)
            sequences[id]!.signals += Array(repeating: nil, count: tokens.count)
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
    /// with their log-probabilities known (sampled with `logprobs` or signals, or scored), those are
    /// read and its KV cells lent instead: only the tokens past the longest such run are
    /// evaluated and charged. A scorer that teacher-forces a step the policy just sampled
    /// then costs nothing, or the few tokens where its tokenization of the text differs.
    public func appendScored(_ id: SequenceID, tokens: [Int32], kind: TokenKind = .prompt,
                             reusing candidates: [SequenceID] = []) throws -> [Float] {
        try appendScored(id, tokens: tokens, kind: kind, reusing: candidates, signals: nil).logprobs
    }

    /// `appendScored`, and with `signals` each position's certainty signals too (as
    /// `GenerationOptions.confidence` records them while sampling; its stop is not used).
    /// A donor then lends the run whose signals it knows at the same top k: a sequence
    /// sampled with signals keeps them at theirs, one sampled with logprobs at top k 1.
    public func appendScored(_ id: SequenceID, tokens: [Int32], kind: TokenKind = .prompt, reusing candidates: [SequenceID] = [],
                             signals: ConfidenceOptions?) throws -> (logprobs: [Float], signals: TokenConfidence?) {
        let recorded = SignalsBox()
        // log p(token) from a position's logits, recording its signals when asked: their pass
        // over the vocabulary gives the log-sum-exp too.
        let score = { (logits: UnsafeBufferPointer<Float>, token: Int32) -> Float in
            guard let signals else { return logits[Int(token)] - LogProbabilities.logSumExp(logits) }
            let row = LogProbabilities.signals(logits, topK: signals.topK)
            recorded.rows.append(SignalRow(topK: signals.topK, row))
            return logits[Int(token)] - row.logSumExp
        }
        // The lent run first, from a candidate that knows it; else the first token's score
        // from the sequence's logits. Then the rest, output rows in some ticks' batches.
        var (start, scores) = try run { [self] () throws -> (Int, [Float]) in
            try checkTokens(tokens)
            guard sequences[id] != nil else { throw EngineError.unknownSequence(id) }
            guard !tokens.isEmpty else { return (0, []) }
            let start = sequences[id]!.tokens.count
            let lent = lendScored(id, tokens: tokens, kind: kind, from: candidates, signalsAt: signals?.topK)
            recorded.rows += lent.signals
            return (start, lent.scores)
        }
        guard !tokens.isEmpty else { return ([], signals.map { _ in TokenConfidence() }) }
        if scores.isEmpty {
            try evaluateInTick([id])
            scores = try run { [self] in
                guard sequences[id] != nil else { throw EngineError.unknownSequence(id) }
                try evaluateNow([id])
                start = sequences[id]!.tokens.count
                let first = sequences[id]!.logits.withUnsafeBufferPointer { score($0, tokens[0]) }
                sequences[id]!.tokens += tokens
                sequences[id]!.logprobs += Array(repeating: .nan, count: tokens.count)
                sequences[id]!.signals += Array(repeating: nil, count: tokens.count)
                sequences[id]!.pending += Array(repeating: PendingToken(kind: kind, sampled: false), count: tokens.count)
                return [first]
            }
        }
        let scored = ScoresBox()
        try evaluateInTick([id], scoring: id) { logits, next in scored.scores.append(score(logits, next)) }
        let all: [Float] = try run { [self, start, scores] in
            guard sequences[id] != nil else { throw EngineError.unknownSequence(id) }
            let all = scores + scored.scores
            // Another caller's tokens on the same sequence between the steps would leave
            // scores and tokens apart: refuse rather than record a wrong score.
            guard all.count == tokens.count, sequences[id]!.tokens.count == start + tokens.count else {
                throw EngineError.unknownSequence(id)
            }
            sequences[id]!.logprobs.replaceSubrange(start..., with: all)
            if signals != nil && recorded.rows.count == all.count {
                sequences[id]!.signals.replaceSubrange(start..., with: recorded.rows.map(Optional.some))
            }
            return all
        }
        return (all, signals.map { _ in TokenConfidence(recorded.rows) })
    }

    private final class ScoresBox {
        var scores: [Float] = []
    }

    private final class SignalsBox {
        var rows: [SignalRow] = []
    }

    /// The logits of a scored position and the token they predict.
    private typealias ScoredRow = (UnsafeBufferPointer<Float>, Int32) -> Void

    /// The start of `appendScored` from the candidate that holds `id`'s tokens followed by
    /// the longest run of `tokens` whose log-probabilities it knows, and its signals at top
    /// k `signalsAt` if given (owner thread). Its cells up to the run's last token are
    /// copied, as `createSequence` lends a prefix; `tokens` are appended, the run's last
    /// token and those after it queued, and the run's log-probabilities (and signals)
    /// returned. Empty when no candidate knows the first token's.
    private func lendScored(_ id: SequenceID, tokens: [Int32], kind: TokenKind, from candidates: [SequenceID],
                            signalsAt topK: Int?) -> (scores: [Float], signals: [SignalRow]) {
        guard prefixesShareable else { return ([], []) }
        let state = sequences[id]!
        let start = state.tokens.count
        var donor: (id: SequenceID, run: Int)?
        for candidate in candidates.sorted() where candidate != id {
            guard let other = sequences[candidate], other.tokens.count > start,
                  other.tokens[..<start].elementsEqual(state.tokens) else { continue }
            // Cells must exist up to the run's last token, which stays queued.
            let limit = min(tokens.count, other.tokens.count - start, other.evaluated - start + 1)
            var run = 0
            while run < limit && other.tokens[start + run] == tokens[run] && !other.logprobs[start + run].isNaN
                    && (topK == nil || other.signals[start + run]?.topK == topK) { run += 1 }
            if run > (donor?.run ?? 0) { donor = (candidate, run) }
        }
        guard let donor else { return ([], []) }
        let lentEnd = start + donor.run - 1
        llama_memory_seq_rm(memory, id, Int32(state.evaluated), -1)
        llama_memory_seq_cp(memory, donor.id, id, Int32(state.evaluated), Int32(lentEnd))
        let lent = sequences[donor.id]!.cells[state.evaluated..<lentEnd]
        ledger.retain(lent)
        sequences[id]!.cells += lent
        let scores = Array(sequences[donor.id]!.logprobs[start..<(start + donor.run)])
        let signals = Array(sequences[donor.id]!.signals[start..<(start + donor.run)])
        sequences[id]!.tokens += tokens
        sequences[id]!.logprobs += scores + Array(repeating: .nan, count: tokens.count - donor.run)
        sequences[id]!.signals += signals + Array(repeating: nil, count: tokens.count - donor.run)
        // The queued tokens are evaluated by the next use, which refreshes the logits.
        sequences[id]!.evaluated = lentEnd
        sequences[id]!.pending = Array(repeating: PendingToken(kind: kind, sampled: false), count: start + tokens.count - lentEnd)
        return (scores, topK == nil ? [] : signals.compactMap { $0 })
    }

    /// Frees a sequence and the KV cells no other sequence shares. It returns at once: the
    /// owner frees the cells between ticks, before any operation posted after this one,
    /// so a solve that frees many sequences never waits a tick for each.
    public func remove(_ id: SequenceID) {
        guard countLock.withLock({ liveIDs.remove(id) != nil }) else { return }
        post { [self] in
            guard let state = sequences.removeValue(forKey: id) else { return }
            keepPrompt(of: id, state)
            llama_memory_seq_rm(memory, id, -1, -1)
            ledger.release(state.cells)
            publishAvailableCells()
            freeIDs.append(id)
            state.account.sequenceClosed()
            let key = ObjectIdentifier(state.account)
            liveAccounts[key]!.sequences -= 1
            if liveAccounts[key]!.sequences == 0 { liveAccounts[key] = nil }
        }
    }

    /// Evaluates every queued token of these sequences, in the owner's ticks with every
    /// other caller's tokens (one decode, when they fit in a tick).
    public func evaluate(_ ids: [SequenceID]) throws {
        try evaluateInTick(ids)
    }

    // MARK: logits, hidden states, sampling

    /// Runs `body` over the sequence's next-token logits (vocabulary-sized).
    public func withLogits<T>(_ id: SequenceID, _ body: (UnsafeBufferPointer<Float>) throws -> T) throws -> T {
        try evaluateInTick([id])
        let logits = try run { [self] in
            guard sequences[id] != nil else { throw EngineError.unknownSequence(id) }
            try evaluateNow([id])
            return sequences[id]!.logits
        }
        return try logits.withUnsafeBufferPointer(body)
    }

    /// The last hidden state (after the final norm: what the output head reads).
    public func hiddenState(_ id: SequenceID) throws -> [Float] {
        guard hiddenStates else { throw EngineError.hiddenStatesDisabled }
        try evaluateInTick([id])
        return try run { [self] in
            guard sequences[id] != nil else { throw EngineError.unknownSequence(id) }
            try evaluateNow([id])
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

    /// Generates on every sequence in `ids` at once: each tick samples one token per live
    /// sequence, and the owner evaluates them with every other caller's in one
    /// llama_decode call. `shouldContinue` is asked before every step (with the step
    /// number, on the owner thread: it must not block); false ends the live ones as
    /// `.interrupted`, and a step the KV cache has no room for as `.cacheFull`: what was
    /// generated is returned either way. Sequence i samples with seed `sampling.seed + i`.
    public func generate(_ ids: [SequenceID], options: GenerationOptions,
                         shouldContinue: @escaping (Int) -> Bool = { _ in true }) throws -> [Generation] {
        precondition(Thread.current !== ownerThread, "generate on the engine's owner thread")
        let task = GenerationTask(ids: ids, options: options, shouldContinue: shouldContinue)
        let done = DispatchSemaphore(value: 0)
        task.done = { done.signal() }
        try run { [self] in
            for id in ids where sequences[id] == nil { throw EngineError.unknownSequence(id) }
            generations.append(task)
        }
        done.wait()
        return try task.outcome!.get()
    }

    /// One generate call in progress, advanced by the owner one step per tick.
    private final class GenerationTask {
        let ids: [SequenceID]
        let options: GenerationOptions
        let shouldContinue: (Int) -> Bool
        let samplers: [Sampler]
        let stops: [[UInt8]]
        var results: [Generation]
        var bytes: [[UInt8]]
        var live: [Int]
        var step = 0
        var outcome: Result<[Generation], Error>?
        var done: () -> Void = {}

        init(ids: [SequenceID], options: GenerationOptions, shouldContinue: @escaping (Int) -> Bool) {
            self.ids = ids
            self.options = options
            self.shouldContinue = shouldContinue
            samplers = ids.indices.map { index in
                var params = options.sampling
                params.seed = params.seed &+ UInt32(index)
                return Sampler(params)
            }
            stops = options.stop.filter { !$0.isEmpty }.map { Array($0.utf8) }
            results = [Generation](repeating: Generation(), count: ids.count)
            bytes = [[UInt8]](repeating: [], count: ids.count)
            live = Array(ids.indices)
        }

        func finish(_ outcome: Result<[Generation], Error>) {
            var outcome = outcome
            if case .success = outcome {
                for index in ids.indices { results[index].text = String(decoding: bytes[index], as: UTF8.self) }
                outcome = .success(results)
            }
            self.outcome = outcome
            done()
        }
    }

    /// One step of a generation whose live sequences are all evaluated (owner thread):
    /// samples a token for each and queues it. Returns false once the task has finished.
    private func advance(_ task: GenerationTask) -> Bool {
        let options = task.options
        guard !task.live.isEmpty else { task.finish(.success([])); return false }
        guard options.maxTokens > 0, task.shouldContinue(task.step) else {
            for index in task.live { task.results[index].finish = options.maxTokens > 0 ? .interrupted : .maxTokens }
            task.finish(.success([]))
            return false
        }
        task.step += 1
        var stillLive: [Int] = []
        for index in task.live {
            let id = task.ids[index]
            guard sequences[id] != nil else {
                task.finish(.failure(EngineError.unknownSequence(id)))
                return false
            }
            // The model's own distribution, before min_tokens hides the end tokens. Sampled
            // with logprobs or signals, the sequence keeps both (signals at top k 1 when not
            // asked for: what a certainty scorer reads), so that a scorer teacher-forcing
            // these tokens reads them instead of evaluating them again.
            let topK = options.confidence?.topK ?? 1
            let row = options.logprobs || options.confidence != nil
                ? sequences[id]!.logits.withUnsafeBufferPointer { LogProbabilities.signals($0, topK: topK) } : nil
            let lse = row?.logSumExp ?? 0
            let signalRow = row.map { SignalRow(topK: topK, $0) }
            if task.results[index].tokens.count < options.minTokens {
                for eog in model.endOfGenerationTokens { sequences[id]!.logits[Int(eog)] = -.infinity }
            }
            let token = sequences[id]!.logits.withUnsafeBufferPointer { task.samplers[index].sample($0) }
            let logprob = sequences[id]!.logits[Int(token)] - lse
            if model.isEndOfGeneration(token) {
                task.results[index].finish = .endOfGeneration
                continue
            }
            task.results[index].tokens.append(token)
            if options.logprobs { task.results[index].logprobs.append(logprob) }
            if options.confidence != nil, let signalRow {
                // In place: a copy per token would make a long generation quadratic on the owner thread.
                if task.results[index].confidence == nil { task.results[index].confidence = TokenConfidence() }
                task.results[index].confidence!.append(signalRow)
            }
            sequences[id]!.tokens.append(token)
            sequences[id]!.logprobs.append(row == nil ? .nan : logprob)
            sequences[id]!.signals.append(signalRow)
            sequences[id]!.pending.append(PendingToken(kind: options.kind, sampled: true))
            sequences[id]!.account.update { $0.count(options.kind, tokens: 1) }
            totals.update { $0.count(options.kind, tokens: 1) }
            let piece = model.piece(token)
            task.bytes[index] += piece
            if let stop = Engine.firstStop(task.stops, in: task.bytes[index], newBytes: piece.count) {
                task.results[index].finish = .stop
                task.results[index].stopString = String(decoding: stop, as: UTF8.self)
            } else if task.results[index].tokens.count >= options.maxTokens {
                task.results[index].finish = .maxTokens
            } else if let confidence = options.confidence, let threshold = confidence.stopBelow,
                      let record = task.results[index].confidence, record.confidence.count >= confidence.window,
                      Self.groupConfidence(record.confidence, window: confidence.window) < threshold {
                task.results[index].finish = .lowConfidence
            } else {
                stillLive.append(index)
            }
        }
        task.live = stillLive
        if task.live.isEmpty {
            task.finish(.success([]))
            return false
        }
        return true
    }

    /// The mean confidence of the last `window` tokens (DeepConf's group confidence).
    public static func groupConfidence(_ confidence: [Float], window: Int) -> Double {
        let group = confidence.suffix(max(1, window))
        return group.isEmpty ? 0 : group.reduce(0) { $0 + Double($1) } / Double(group.count)
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

    private func checkTokens(_ tokens: [Int32]) throws {
        let vocabularySize = model.facts.vocabularySize
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= vocabularySize }) {
            throw EngineError.invalidToken(bad, vocabularySize: vocabularySize)
        }
    }

    // MARK: the prompt cache

    /// A free sequence id; when there is none, the least recently used kept prompt's.
    private func takeID() -> SequenceID? {
        if let id = freeIDs.popLast() { return id }
        return oldestPrompt.map(evictPrompt)
    }

    /// The least recently used kept prompt's index.
    private var oldestPrompt: Int? { promptCache.indices.min { promptCache[$0].lastUsed < promptCache[$1].lastUsed } }

    /// The KV cells the kept prompts hold.
    private var promptCacheCells: Int { promptCache.reduce(0) { $0 + $1.tokens.count } }

    /// Frees a kept prompt's cells and returns its sequence id, now unused.
    private func evictPrompt(at index: Int) -> SequenceID {
        let entry = promptCache.remove(at: index)
        llama_memory_seq_rm(memory, entry.id, -1, -1)
        ledger.release(entry.cells)
        return entry.id
    }

    /// The kept prompt sharing the longest prefix with `tokens` (the last token excepted:
    /// its logits are computed anew), if any shares one.
    private func cachedPrefix(of tokens: [Int32]) -> (id: SequenceID, shared: Int)? {
        var best: (index: Int, shared: Int)?
        for (index, entry) in promptCache.enumerated() {
            let limit = min(entry.tokens.count, tokens.count - 1)
            var shared = 0
            while shared < limit && entry.tokens[shared] == tokens[shared] { shared += 1 }
            if shared > (best?.shared ?? 0) { best = (index, shared) }
        }
        guard let best, best.shared >= Engine.shortestCachedPrompt else { return nil }
        cacheClock += 1
        promptCache[best.index].lastUsed = cacheClock
        return (promptCache[best.index].id, best.shared)
    }

    /// Keeps the evaluated prompt of a sequence being freed (owner thread), within the
    /// cache's cell budget, least recently used out first. A prompt another kept one
    /// starts with is not kept twice; one that extends a kept one replaces it.
    private func keepPrompt(of id: SequenceID, _ state: SequenceState) {
        let length = min(state.promptLength, state.evaluated)
        guard prefixesShareable, options.promptCacheTokens > 0, length >= Engine.shortestCachedPrompt,
              length <= options.promptCacheTokens else { return }
        let tokens = Array(state.tokens[..<length])
        cacheClock += 1
        if let index = promptCache.firstIndex(where: { $0.tokens.count >= length && $0.tokens.starts(with: tokens) }) {
            promptCache[index].lastUsed = cacheClock
            return
        }
        while let shorter = promptCache.firstIndex(where: { tokens.starts(with: $0.tokens) }) {
            freeIDs.append(evictPrompt(at: shorter))
        }
        // Leave most ids to live sequences: the cache takes one only while a quarter are free.
        guard freeIDs.count > options.maxSequences / 4, let cacheID = freeIDs.popLast() else { return }
        llama_memory_seq_cp(memory, id, cacheID, 0, Int32(length))
        let cells = Array(state.cells[..<length])
        ledger.retain(cells)
        promptCache.append(CachedPrompt(id: cacheID, tokens: tokens, cells: cells, lastUsed: cacheClock))
        while promptCacheCells > options.promptCacheTokens, let oldest = oldestPrompt {
            freeIDs.append(evictPrompt(at: oldest))
        }
    }

    /// Prompts kept and the cells they hold (status: read without waiting for the owner).
    public var promptCacheState: (prompts: Int, tokens: Int) { countLock.withLock { cacheSummary } }

    private func publishCacheSummary() {
        let summary = (promptCache.count, promptCacheCells)
        countLock.withLock { cacheSummary = summary }
        publishAvailableCells()
    }

    // MARK: KV cells

    /// The cells of a live sequence or a kept prompt.
    private func cellsOf(_ id: SequenceID) -> [Int32] {
        sequences[id]?.cells ?? promptCache.first { $0.id == id }!.cells
    }

    /// KV cells no sequence or kept prompt holds (the padding row's kept apart).
    private var freeCells: Int { Int(llama_n_ctx(context)) - ledger.used - (paddingSequence == nil ? 0 : 1) }

    /// Cells free or held only by kept prompts (which give way to callers): what a new
    /// solve can count on now. Read without waiting for the owner.
    public var cellsAvailable: Int { countLock.withLock { availableCells } }

    private func publishAvailableCells() {
        let available = freeCells + promptCacheCells
        countLock.withLock { availableCells = available }
    }

    private func accountOpened(_ account: Account) {
        let key = ObjectIdentifier(account)
        if liveAccounts[key] == nil {
            accountClock += 1
            liveAccounts[key] = (accountClock, 0)
        }
        liveAccounts[key]!.sequences += 1
    }

    /// The part of a tick's work the free KV cells hold (owner thread). Kept prompts give
    /// way first; then the oldest accounts' tokens go in first and the rest wait, queued,
    /// for cells to free, so that a solve wanting cells waits for others to finish instead
    /// of failing. Nothing fits only when no cell is free. If then every account with live
    /// sequences is `waiting` on the engine, none will free any: the youngest account
    /// holding cells gives them up, its tokens queued to be evaluated again once there is
    /// room (as a batching server preempts by recomputation), and when only one account
    /// holds cells, that one alone exceeds the cache and fails with a full cache.
    /// The work whose accounts stay within `maxCellsPerAccount` cells (owner thread); an
    /// account that would go past it fails in the sequences that asked for more, which
    /// is what it alone exceeds. Its other sequences keep what they hold.
    private func withinAccountLimits(_ work: [WorkItem], failures: inout [SequenceID: Error]) -> [WorkItem] {
        let limit = options.maxCellsPerAccount
        guard limit > 0, prefixesShareable else { return work }
        var adding: [ObjectIdentifier: Int] = [:]
        for item in work { adding[ObjectIdentifier(sequences[item.id]!.account), default: 0] += item.end - sequences[item.id]!.evaluated }
        // Cells counted once per sequence bound what an account holds (forks share theirs):
        // only an account past the limit by that bound has its distinct cells counted.
        var bound: [ObjectIdentifier: Int] = [:]
        for state in sequences.values { bound[ObjectIdentifier(state.account), default: 0] += state.cells.count }
        var over: [ObjectIdentifier: Int] = [:]
        for (account, count) in adding where count > 0 && bound[account, default: 0] + count > limit {
            let held = Set(sequences.values.lazy.filter { ObjectIdentifier($0.account) == account }.flatMap(\.cells)).count
            if held + count > limit { over[account] = count }
        }
        guard !over.isEmpty else { return work }
        return work.filter { item in
            guard let count = over[ObjectIdentifier(sequences[item.id]!.account)] else { return true }
            failures[item.id] = EngineError.kvCacheFull(tokens: count, capacity: limit)
            return false
        }
    }

    private func fitToFreeCells(_ work: [WorkItem], waiting: Set<ObjectIdentifier>,
                                failures: inout [SequenceID: Error]) -> [WorkItem] {
        // A recurrent state takes one cell per sequence, not per token: llama.cpp alone knows.
        guard prefixesShareable else { return work }
        let needed = work.reduce(0) { $0 + $1.end - sequences[$1.id]!.evaluated }
        while needed > freeCells, let oldest = oldestPrompt { freeIDs.append(evictPrompt(at: oldest)) }
        var free = freeCells
        guard needed > free else { return work }
        func serial(_ id: SequenceID) -> UInt64 { liveAccounts[ObjectIdentifier(sequences[id]!.account)]!.serial }
        let ordered = work.indices.sorted { (serial(work[$0].id), $0) < (serial(work[$1].id), $1) }.map { work[$0] }
        // A preempted account comes back only once all it queued fits: taking cells a bit
        // at a time, it would give them up again as soon as an older one grows.
        var outstanding: [UInt64: Int] = [:]
        for (id, state) in sequences where state.pending.contains(where: \.recomputed) {
            outstanding[serial(id), default: 0] += state.tokens.count - state.evaluated
        }
        var fitting: [WorkItem] = []
        for wholly in [true, false] where fitting.isEmpty {
            // (When nothing else takes the cells, a preempted account takes them as it can.)
            for item in ordered where free > 0 {
                if wholly, let queued = outstanding[serial(item.id)], queued > free { continue }
                let evaluated = sequences[item.id]!.evaluated
                let count = min(item.end - evaluated, free)
                fitting.append((item.id, evaluated + count, item.scoring))
                free -= count
            }
        }
        guard fitting.isEmpty, waiting.count == liveAccounts.count else { return fitting }
        var holders: [UInt64: [SequenceID]] = [:]
        for (id, state) in sequences where state.evaluated > 0 { holders[serial(id), default: []].append(id) }
        // A sequence being scored reports each position's score once: it is never preempted.
        let scored = Set(evaluations.compactMap(\.scoring))
        let oldest = holders.keys.min()
        if let youngest = holders.filter({ $0.key != oldest && $0.value.allSatisfy { !scored.contains($0) } }).keys.max() {
            preempt(holders[youngest]!.sorted())
            return fitToFreeCells(work, waiting: waiting, failures: &failures)
        }
        // The youngest holder fails (alone, it is the one that exceeds the cache), every one
        // of its sequences, so that its cells are freed.
        guard let failing = holders.keys.max() else { return [] }
        let capacity = Int(llama_n_ctx(context))
        for (id, state) in sequences where serial(id) == failing {
            failures[id] = EngineError.kvCacheFull(tokens: state.tokens.count - state.evaluated, capacity: capacity)
        }
        return []
    }

    /// Frees these sequences' cells and queues all their tokens again (owner thread): they
    /// are evaluated anew when there is room, charged to nobody but executed FLOPs. Cells
    /// a sequence shared with one preempted before it (forks of one prompt) are copied
    /// from that one once it is evaluated again, not evaluated twice.
    private func preempt(_ ids: [SequenceID]) {
        var dropped: [(id: SequenceID, cells: [Int32])] = []
        for id in ids {
            var state = sequences[id]!
            var share: (donor: SequenceID, length: Int)?
            for other in dropped {
                let common = zip(other.cells, state.cells).prefix { $0 == $1 }.count
                if common > (share?.length ?? 0) { share = (other.id, common) }
            }
            dropped.append((id, state.cells))
            llama_memory_seq_rm(memory, id, -1, -1)
            ledger.release(state.cells)
            state.cells = []
            state.pending = state.tokens[..<state.evaluated].indices.map { _ in
                PendingToken(kind: .prompt, sampled: true, recomputed: true)
            } + state.pending
            state.evaluated = 0
            state.sharesOnRecompute = share
            sequences[id] = state
        }
        publishAvailableCells()
    }

    /// A preempted sequence takes its shared prefix's cells from the sibling that holds
    /// them again (owner thread).
    private func resumeShared(_ id: SequenceID) {
        let share = sequences[id]!.sharesOnRecompute!
        let cells = Array(sequences[share.donor]!.cells[..<share.length])
        llama_memory_seq_cp(memory, share.donor, id, 0, Int32(share.length))
        ledger.retain(cells)
        sequences[id]!.cells = cells
        sequences[id]!.pending.removeFirst(share.length)
        sequences[id]!.evaluated = share.length
        sequences[id]!.sharesOnRecompute = nil
    }

    // MARK: the owner

    /// A caller waiting for the queued tokens of some sequences to be evaluated.
    private final class Evaluation {
        let ids: [SequenceID]
        /// A sequence with an output row at every queued position but its last (appendScored).
        let scoring: SequenceID?
        let onRow: ScoredRow
        let done: (Error?) -> Void

        init(ids: [SequenceID], scoring: SequenceID?, onRow: @escaping ScoredRow, done: @escaping (Error?) -> Void) {
            self.ids = ids
            self.scoring = scoring
            self.onRow = onRow
            self.done = done
        }
    }

    /// Runs `body` on the owner thread, between ticks, and returns what it returns.
    private func run<T>(_ body: @escaping () throws -> T) throws -> T {
        if Thread.current === ownerThread { return try body() }
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        post {
            box.result = Result { try body() }
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }

    private func run<T>(_ body: @escaping () -> T) -> T {
        // A body that cannot throw makes run(_:) unable to.
        try! run { () throws -> T in body() }
    }

    private final class ResultBox<T> {
        var result: Result<T, Error>?
    }

    private func post(_ operation: @escaping () -> Void) {
        posted.withLock {
            operations.append(operation)
            posted.signal()
        }
    }

    /// Waits until the queued tokens of `ids` are evaluated (in some tick's batch).
    private func evaluateInTick(_ ids: [SequenceID], scoring: SequenceID? = nil,
                                onRow: @escaping ScoredRow = { _, _ in }) throws {
        // The owner waiting for its own tick would wait for ever.
        precondition(Thread.current !== ownerThread, "evaluateInTick on the engine's owner thread")
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<Void>()
        post { [self] in
            evaluations.append(Evaluation(ids: ids, scoring: scoring, onRow: onRow) { error in
                box.result = error.map { .failure($0) } ?? .success(())
                done.signal()
            })
        }
        done.wait()
        try box.result!.get()
    }

    /// The owner thread. It holds the engine only while it works: once the last other
    /// reference is gone it finds the engine gone and ends, and the engine's deinit frees
    /// the context (on whichever thread let it go last).
    private func startOwner() {
        let thread = Thread { [weak self] in
            while let engine = self, engine.runOnce() {}
        }
        thread.name = "strategyd-engine"
        thread.stackSize = 8 << 20
        ownerThread = thread
        thread.start()
    }

    /// Runs what was posted, then one tick if anything waits for one. Waits a little when
    /// there is nothing to do (so an idle engine can be released).
    private func runOnce() -> Bool {
        let work: [() -> Void] = posted.withLock {
            if operations.isEmpty && evaluations.isEmpty && generations.isEmpty {
                _ = posted.wait(until: Date(timeIntervalSinceNow: 0.1))
            }
            defer { operations.removeAll() }
            return operations
        }
        for operation in work { operation() }
        if !evaluations.isEmpty || !generations.isEmpty, !tick() {
            // Everything waits for cells that only a posted operation (a remove) frees.
            posted.withLock { if operations.isEmpty { _ = posted.wait(until: Date(timeIntervalSinceNow: 0.01)) } }
        }
        return true
    }

    /// One batch: a token for every generating sequence whose last one is evaluated, then
    /// queued tokens of the callers waiting, round-robin, up to `tickTokens`. False when
    /// nothing could be evaluated or answered.
    private func tick() -> Bool {
        let waitingBefore = evaluations.count + generations.count
        // Sample the next step of every generation that is ready for one.
        var generating: [SequenceID] = []
        generations = generations.filter { task in
            let ids = task.live.map { task.ids[$0] }
            guard ids.allSatisfy({ sequences[$0].map { $0.evaluated == $0.tokens.count } ?? true }) else {
                // Its prompt (or a token waiting for cells) is still to evaluate; a cancel or
                // a budget ends it meanwhile, as it would between steps.
                guard task.shouldContinue(task.step) else {
                    for index in task.live { task.results[index].finish = .interrupted }
                    task.finish(.success([]))
                    return false
                }
                generating += ids
                return true
            }
            guard advance(task) else { return false }
            generating += task.live.map { task.ids[$0] }
            return true
        }
        // What this tick evaluates: the generating sequences' tokens first (one each, or a
        // chunk of a prompt), then the waiting callers'. Prompts of new generations take at
        // most half the budget while callers wait, so a stream of them cannot hold a
        // caller's evaluation (a fork, logits, a score) back.
        var budget = options.tickTokens
        var promptBudget = evaluations.isEmpty ? budget : max(1, budget / 2)
        var work: [WorkItem] = []
        var taken = Set<SequenceID>()
        /// Takes up to `limit` of a sequence's queued tokens into the tick's work, once, and
        /// returns how many. A preempted sequence that shared cells with a sibling takes
        /// them again from the sibling once it is evaluated that far, and waits till then.
        func take(_ id: SequenceID, scoring: Bool, limit: Int) -> Int {
            guard !taken.contains(id), sequences[id] != nil else { return 0 }
            if let share = sequences[id]!.sharesOnRecompute {
                guard let donor = sequences[share.donor], sequences[id]!.evaluated == 0 else {
                    sequences[id]!.sharesOnRecompute = nil
                    return take(id, scoring: scoring, limit: limit)
                }
                guard donor.evaluated >= share.length else { return take(share.donor, scoring: false, limit: limit) }
                resumeShared(id)
            }
            let state = sequences[id]!
            let end = state.tokens.count - (scoring ? 1 : 0)
            let count = min(end - state.evaluated, limit)
            guard count > 0 else { return 0 }
            taken.insert(id)
            work.append((id, state.evaluated + count, scoring))
            return count
        }
        for id in generating {
            let queued = sequences[id].map { $0.tokens.count - $0.evaluated } ?? 0
            // A generating sequence's sampled token always goes in; a prompt is chunked.
            let count = take(id, scoring: false, limit: queued <= 1 ? 1 : promptBudget)
            if queued > 1 {
                budget -= count
                promptBudget -= count
            }
        }
        if !evaluations.isEmpty {
            let order = (0..<evaluations.count).map { (nextEvaluation + $0) % evaluations.count }
            for index in order where budget > 0 {
                let evaluation = evaluations[index]
                for id in evaluation.ids where budget > 0 {
                    budget -= take(id, scoring: id == evaluation.scoring, limit: budget)
                }
            }
            nextEvaluation = (nextEvaluation + 1) % max(evaluations.count, 1)
        }
        // Why each sequence that could not be evaluated failed.
        var failures: [SequenceID: Error] = [:]
        let waiting = Set((generations.flatMap { task in task.live.map { task.ids[$0] } } + evaluations.flatMap(\.ids))
            .compactMap { sequences[$0].map { ObjectIdentifier($0.account) } })
        work = withinAccountLimits(work, failures: &failures)
        work = fitToFreeCells(work, waiting: waiting, failures: &failures)
        if !work.isEmpty {
            do {
                try evaluateWork(work)
            } catch let error as EngineError where error.isOutOfRoom && work.count > 1 {
                // A sequence past the context's end fails alone: each alone, and only those
                // that fail alone fail.
                for item in work {
                    do { try evaluateWork([item]) } catch { failures[item.id] = error }
                }
            } catch {
                for item in work { failures[item.id] = error }
            }
        }
        if !failures.isEmpty {
            generations = generations.filter { task in
                guard let error = task.live.lazy.compactMap({ failures[task.ids[$0]] }).first else { return true }
                // A full KV cache ends a generation as far as it got; a prompt longer than
                // the context is the caller's error, unless the generation had begun (then
                // the sequence has merely reached the context's end).
                var outOfRoom = false
                if let engineError = error as? EngineError {
                    if case .kvCacheFull = engineError { outOfRoom = true } else { outOfRoom = engineError.isOutOfRoom && task.step > 0 }
                }
                if outOfRoom {
                    for index in task.live { task.results[index].finish = .cacheFull }
                    task.finish(.success([]))
                } else {
                    task.finish(.failure(error))
                }
                return false
            }
        }
        // Callers whose tokens are all evaluated (or failed) are answered.
        evaluations = evaluations.filter { evaluation in
            if let error = evaluation.ids.lazy.compactMap({ failures[$0] }).first {
                evaluation.done(error)
                return false
            }
            for id in evaluation.ids {
                guard let state = sequences[id] else {
                    evaluation.done(EngineError.unknownSequence(id))
                    return false
                }
                if state.evaluated < state.tokens.count - (id == evaluation.scoring ? 1 : 0) { return true }
            }
            evaluation.done(nil)
            return false
        }
        return !work.isEmpty || !failures.isEmpty || evaluations.count + generations.count != waitingBefore
    }

    /// Queued tokens of a sequence a tick evaluates: up to `end`, with an output row at each
    /// position when `scoring`.
    private typealias WorkItem = (id: SequenceID, end: Int, scoring: Bool)

    /// Evaluates the chosen tokens in as few decodes as the batch allows (one, when they fit).
    private func evaluateWork(_ work: [WorkItem]) throws {
        var callbacks: [SequenceID: ScoredRow] = [:]
        for item in work where item.scoring {
            if let evaluation = evaluations.first(where: { $0.scoring == item.id }) { callbacks[item.id] = evaluation.onRow }
        }
        try evaluatePending(work.map { ($0.id, $0.end) }, scoring: Set(callbacks.keys)) { id, logits, next in
            callbacks[id]?(logits, next)
        }
    }

    /// Evaluates the queued tokens of each sequence up to its `end` (owner thread). Each
    /// sequence's last evaluated token is an output row; its logits are copied out before
    /// the next call reuses llama.cpp's buffers. Every token of a sequence in `scoring` is an
    /// output row too: `onRow` receives, in order, the logits that predict each token after
    /// the first evaluated one, given those before it.
    private func evaluatePending(_ targets: [(id: SequenceID, end: Int)], scoring: Set<SequenceID> = [],
                                 onRow: (SequenceID, UnsafeBufferPointer<Float>, Int32) -> Void = { _, _, _ in }) throws {
        var work: [(id: SequenceID, start: Int, end: Int)] = []
        for (id, end) in targets {
            guard let state = sequences[id] else { throw EngineError.unknownSequence(id) }
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
            while item < work.count && Int(batch.n_tokens) < decodeRows && rows.count < sequencesPerCall {
                let (id, _, end) = work[item]
                let take = min(end - position, decodeRows - Int(batch.n_tokens))
                let tokens = sequences[id]!.tokens
                let scored = scoring.contains(id)
                var output: Int32?
                for offset in 0..<take {
                    let slot = Int(batch.n_tokens)
                    let isLast = position + offset == end - 1
                    batch.token[slot] = tokens[position + offset]
                    batch.pos[slot] = Int32(position + offset)
                    batch.n_seq_id[slot] = 1
                    batch.seq_id[slot]![0] = id
                    batch.logits[slot] = isLast || scored ? 1 : 0
                    if isLast { output = Int32(slot) }
                    batch.n_tokens += 1
                }
                rows.append(Row(id: id, start: position, end: position + take, firstSlot: batch.n_tokens - Int32(take),
                                output: output, scored: scored))
                position += take
                if position == end {
                    item += 1
                    if item < work.count { position = work[item].start }
                }
            }
            try decode(rows, onRow: onRow)
        }
    }

    /// Evaluates every queued token of these sequences now, in this thread (owner only).
    private func evaluateNow(_ ids: [SequenceID]) throws {
        try evaluatePending(ids.compactMap { id in sequences[id].map { (id, $0.tokens.count) } })
        for id in ids where sequences[id] == nil { throw EngineError.unknownSequence(id) }
    }

    /// A run of one sequence's tokens in a batch: positions [start, end) from `firstSlot`.
    private struct Row {
        var id: SequenceID
        var start: Int
        var end: Int
        var firstSlot: Int32
        /// The slot whose logits become the sequence's next-token logits.
        var output: Int32?
        /// Whether every slot is an output whose score is reported.
        var scored: Bool
    }

    private func decode(_ rows: [Row], onRow: (SequenceID, UnsafeBufferPointer<Float>, Int32) -> Void) throws {
        if let padding = paddingSequence,
           batch.n_tokens == 1 || (0..<Int(batch.n_tokens)).filter({ batch.logits[$0] != 0 }).count == 1 {
            // One token at position 0 of a sequence of its own, with an output; its cell from
            // the last call goes first.
            llama_memory_seq_rm(memory, padding, -1, -1)
            let slot = Int(batch.n_tokens)
            batch.token[slot] = model.beginningOfSequence ?? 0
            batch.pos[slot] = 0
            batch.n_seq_id[slot] = 1
            batch.seq_id[slot]![0] = padding
            batch.logits[slot] = 1
            batch.n_tokens += 1
        }
        let status = llama_decode(context, batch)
        if status == 1 { throw EngineError.kvCacheFull(tokens: Int(batch.n_tokens), capacity: options.contextSize) }
        if status != 0 {
            // After an abort or a fatal error the micro-batches already processed stay in
            // the cache, though their tokens count as not evaluated: drop them, or the next
            // decode of these sequences (perhaps other solves') meets positions it has.
            for row in rows { llama_memory_seq_rm(memory, row.id, Int32(row.start), -1) }
            throw EngineError.decodeFailed(code: status)
        }
        countLock.withLock { decodeCalls += 1 }
        let vocabularySize = model.facts.vocabularySize
        var charged = Set<ObjectIdentifier>()
        for row in rows {
            var state = sequences[row.id]!
            chargeTokens(&state, from: row.start, to: row.end, firstCall: charged.insert(ObjectIdentifier(state.account)).inserted)
            if row.scored {
                // The row at position p predicts the token at p + 1.
                for position in row.start..<row.end {
                    let logits = UnsafeBufferPointer(start: llama_get_logits_ith(context, row.firstSlot + Int32(position - row.start)),
                                                     count: vocabularySize)
                    onRow(row.id, logits, state.tokens[position + 1])
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
        publishAvailableCells()
    }

    /// Charges tokens [from, to) of a sequence, now evaluated, to its account and the totals.
    private func chargeTokens(_ state: inout SequenceState, from: Int, to: Int, firstCall: Bool) {
        var runStart = from
        while runStart < to {
            let first = state.pending[runStart - state.evaluated]
            var runEnd = runStart + 1
            while runEnd < to, state.pending[runEnd - state.evaluated] == first { runEnd += 1 }
            let count = runEnd - runStart
            let flops = flopsModel.flops(start: runStart, count: count)
            for account in [state.account, totals] {
                account.update {
                    if first.recomputed {
                        $0.executedFlops += flops
                    } else {
                        $0.chargeEvaluation(first.kind, tokens: count, flops: flops)
                        if !first.sampled { $0.count(first.kind, tokens: count) }
                    }
                }
            }
            runStart = runEnd
        }
        if firstCall { state.account.update { $0.decodeCalls += 1 } }
        state.pending.removeFirst(to - state.evaluated)
        state.cells += ledger.take(to - state.evaluated)
        state.evaluated = to
    }
}
