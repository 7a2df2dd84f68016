import Foundation

/// What an evaluated token was for. Every token llama.cpp evaluates is charged to
/// exactly one kind, on the account of the sequence it belongs to.
public enum TokenKind: Int, Sendable, CaseIterable {
    /// The problem and any text a strategy appends (instructions, markers).
    case prompt
    /// Tokens the policy sampled as part of a solution.
    case generated
    /// Tokens of a hidden thought (Quiet-STaR): evaluated, never part of the answer.
    case thought
    /// Tokens evaluated on behalf of a scorer (a verification prompt, a judged step).
    case scorer
}

/// Compute spent, by kind, with FLOPs per Kaplan et al. (2020):
///
///     FLOPs(token at position p) = 2 * N + 2 * n_layer * (p + 1) * d_attn
///
/// where N is the non-embedding parameter count, n_layer the number of layers, d_attn the
/// width of the attention's query projection, and p + 1 the number of positions the token
/// attends to (itself and every earlier token of its sequence, shared prefix included).
/// The factor 2 is one multiply and one add per weight; the backward pass is not counted.
///
/// Token counts by kind count each token once: a sampled token when it is sampled, any
/// other token when it is evaluated. `evaluatedTokens` and the FLOPs count only what
/// llama.cpp evaluated: a sampled token that ends a generation is never evaluated, and a
/// prefix shared by forks is evaluated once.
public struct Usage: Sendable, Equatable, Codable {
    public var promptTokens = 0
    public var generatedTokens = 0
    public var thoughtTokens = 0
    public var scorerTokens = 0
    public var evaluatedTokens = 0
    /// FLOPs of every evaluated token, scorer's included.
    public var flops: Double = 0
    /// The part of `flops` spent on scorer tokens.
    public var scorerFlops: Double = 0
    /// llama_decode calls that evaluated at least one of this account's tokens.
    public var decodeCalls = 0
    public var forks = 0
    public var peakSequences = 0

    public init() {}

    mutating func count(_ kind: TokenKind, tokens: Int) {
        switch kind {
        case .prompt: promptTokens += tokens
        case .generated: generatedTokens += tokens
        case .thought: thoughtTokens += tokens
        case .scorer: scorerTokens += tokens
        }
    }

    mutating func chargeEvaluation(_ kind: TokenKind, tokens: Int, flops: Double) {
        evaluatedTokens += tokens
        self.flops += flops
        if kind == .scorer { scorerFlops += flops }
    }
}

/// A running account that sequences charge their tokens to: one per solve request, so
/// that concurrent requests on one engine are accounted apart. Thread-safe.
public final class Account: @unchecked Sendable {
    private let lock = NSLock()
    private var usage = Usage()
    private var liveSequences = 0

    public init() {}

    public var snapshot: Usage {
        lock.lock(); defer { lock.unlock() }
        return usage
    }

    func update(_ body: (inout Usage) -> Void) {
        lock.lock(); defer { lock.unlock() }
        body(&usage)
    }

    func sequenceOpened(byFork: Bool) {
        lock.lock(); defer { lock.unlock() }
        liveSequences += 1
        if byFork { usage.forks += 1 }
        usage.peakSequences = max(usage.peakSequences, liveSequences)
    }

    func sequenceClosed() {
        lock.lock(); defer { lock.unlock() }
        liveSequences -= 1
    }
}

/// The per-token FLOPs formula above, for one model.
public struct FlopsModel: Sendable, Equatable {
    public var nonEmbeddingParameters: Double
    public var layers: Double
    public var attentionWidth: Double

    public init(facts: ModelFacts) {
        nonEmbeddingParameters = Double(facts.nonEmbeddingParameters)
        layers = Double(facts.layers)
        attentionWidth = Double(facts.attentionWidth)
    }

    /// FLOPs of evaluating `count` consecutive tokens of one sequence, the first at
    /// position `start` (0-based).
    public func flops(start: Int, count: Int) -> Double {
        guard count > 0 else { return 0 }
        // sum over p in start..<start+count of (p + 1)
        let attended = Double(count) * Double(2 * start + count + 1) / 2
        return 2 * nonEmbeddingParameters * Double(count) + 2 * layers * attentionWidth * attended
    }
}
