import Foundation
import PluginABI

/// Where to think (Quiet-STaR thinks at every position; thinking only where the base
/// model hesitates costs a fraction of the thought tokens).
public enum ThinkWhen: String, CaseIterable, Sendable {
    case always, interval, entropy
}

/// How Quiet-STaR decoding thinks, from a request's params (`ThoughtSettings.params`).
public struct ThoughtSettings: Sendable {
    public var thoughts: Int
    public var length: Int
    public var temperature: Double
    public var startMarker: String
    public var endMarker: String
    public var when: ThinkWhen
    public var interval: Int
    public var entropyThreshold: Double
    public var head: MixingHead

    /// The params every thought-mixing strategy takes.
    public static let params: [Param] = [
        .integer("n_thoughts", 1, 1...16, "thoughts forked at a position; their mixtures are averaged"),
        .integer("thought_len", 6, 1...64, "tokens sampled per thought between the markers (Quiet-STaR's 8 thought tokens = 6 + 2 markers)"),
        .number("thought_temperature", 1, 0...5, "sampling temperature of thought tokens"),
        .string("start_marker", "<think>", "text appended before a thought (our models have no trained thought token)"),
        .string("end_marker", "</think>", "text appended after a thought; a thought that writes it itself ends there"),
        .choice("when", ThinkWhen.always.rawValue, ThinkWhen.allCases.map(\.rawValue),
                "where to think: every position, every `interval` positions, or where the base entropy exceeds `entropy_threshold`"),
        .integer("interval", 4, 1...4096, "when=interval: think at positions 0, interval, 2*interval, ..."),
        .number("entropy_threshold", 1, 0...20, "when=entropy: think where the base next-token entropy (nats) exceeds this"),
        .choice("mixing", "constant", ["constant", "entropy", "learned"],
                "mixing head: a constant w, w gated by the base entropy, or a trained head (param `head`)"),
        .number("weight", 0.3, 0...1, "w of the constant head; the largest w of the entropy head"),
        .number("entropy_low", 0.5, 0...20, "mixing=entropy: w is 0 at or below this base entropy (nats)"),
        .number("entropy_high", 3, 0...20, "mixing=entropy: w reaches `weight` at this base entropy (nats)"),
        .string("head", "", "mixing=learned: file name of a head strategyd-train-head wrote, in the heads_dir setting's folder"),
    ]

    /// The settings of every plugin that mixes thoughts.
    public static let settings: [Param] = [
        .path("heads_dir", "heads", "the folder mixing heads are read from (relative: in the plugin directory)"),
        .boolean("hidden_states", false,
                 "keep hidden states, which mixing=learned and teacher forcing read (every solve then copies n_embd floats per output)"),
    ]

    /// Turns on what the settings ask for.
    public static func configure(_ settings: Params, host: HostResources) throws {
        if settings.bool("hidden_states") { try host.enableHiddenStates() }
    }

    public init(params: Params, request: Request) throws {
        thoughts = params.int("n_thoughts")
        length = params.int("thought_len")
        temperature = params.double("thought_temperature")
        startMarker = params.string("start_marker")
        endMarker = params.string("end_marker")
        when = ThinkWhen(rawValue: params.string("when")) ?? .always
        interval = params.int("interval")
        entropyThreshold = params.double("entropy_threshold")
        switch params.string("mixing") {
        case "entropy":
            head = .entropyGated(weight: params.double("weight"), low: params.double("entropy_low"),
                                 high: params.double("entropy_high"))
        case "learned":
            guard !params.string("head").isEmpty else {
                throw PluginFailure("mixing=learned needs the param `head`: a file from strategyd-train-head",
                                    status: Int32(SD_ERR_INVALID_ARGUMENT.rawValue))
            }
            do {
                head = .learned(try LearnedMixingHead(named: params.string("head"), in: request.settings.string("heads_dir"),
                                                                modelInfo: request.modelInfo))
            } catch let error as LearnedMixingHead.FileError {
                throw PluginFailure(error.description, status: Int32(SD_ERR_INVALID_ARGUMENT.rawValue))
            }
        default:
            head = .constant(weight: params.double("weight"))
        }
        if head.needsHiddenStates, (request.modelInfo["hidden_states"] as? Bool) != true {
            throw PluginFailure("the learned mixing head reads hidden states: set the plugin's hidden_states setting (--plugin-config quiet-star.hidden_states=true)",
                                status: Int32(SD_ERR_INVALID_ARGUMENT.rawValue))
        }
    }

    func thinks(at position: Int, entropy: Double) -> Bool {
        switch when {
        case .always: return true
        case .interval: return position % interval == 0
        case .entropy: return entropy > entropyThreshold
        }
    }

    public var summary: [String: Any] {
        ["n_thoughts": thoughts, "thought_len": length, "when": when.rawValue, "head": head.summary]
    }
}

/// What thinking a generation did.
public struct ThoughtStats: Sendable {
    /// Positions decoded, and those at which the model thought.
    public var positions = 0
    public var thoughtPositions = 0
    /// Thought tokens sampled and appended (markers included): all charged as thought tokens.
    public var thoughtTokens = 0
    public var weightSum = 0.0
    /// The first few thoughts' text, for the curious; never part of the answer.
    public var examples: [String] = []
    /// Per decoded position: the base entropy (nats) and the mixing weight (nil: no thought).
    public var trace: [(entropy: Double, weight: Double?)] = []

    public init() {}

    public mutating func add(_ other: ThoughtStats) {
        positions += other.positions
        thoughtPositions += other.thoughtPositions
        thoughtTokens += other.thoughtTokens
        weightSum += other.weightSum
        examples += other.examples.prefix(max(0, 3 - examples.count))
        trace += other.trace
    }

    public var traceJSON: [[String: Any]] {
        trace.enumerated().map { ["position": $0.offset, "entropy": $0.element.entropy, "weight": $0.element.weight ?? NSNull()] }
    }

    public var summary: [String: Any] {
        ["positions": positions, "thought_positions": thoughtPositions, "thought_tokens": thoughtTokens,
         "mean_weight": thoughtPositions > 0 ? weightSum / Double(thoughtPositions) : 0, "example_thoughts": examples]
    }
}

public struct ThoughtGeneration: Sendable {
    public var generated: Generated
    public var stats: ThoughtStats
}

/// One teacher-forced position (for training a mixing head): the hidden states before and
/// after a thought and the log-probabilities of the true next token under each.
public struct ThoughtFeature {
    public var position: Int
    public var entropy: Double
    public var baseHidden: [Float]
    public var thoughtHidden: [Float]
    public var baseLogprob: Double
    public var thoughtLogprob: Double

    public var json: [String: Any] {
        ["position": position, "entropy": entropy, "h_base": baseHidden.map(Double.init),
         "h_thought": thoughtHidden.map(Double.init), "logp_base": baseLogprob, "logp_thought": thoughtLogprob]
    }
}

/// Quiet-STaR decoding over the host: at each position (where `ThoughtSettings` says so)
/// every sequence forks its thoughts, all thoughts of all sequences sample together (one
/// decode per thought token), the post-thought distributions are mixed with the base one,
/// the next token is drawn from the mixture, and the thoughts' KV cells are dropped. The
/// thought text never enters the sequences' text or KV.
public struct QuietDecoder {
    public let request: Request
    public let settings: ThoughtSettings
    let vocabularySize: Int
    let width: Int

    public init(request: Request, settings: ThoughtSettings) {
        self.request = request
        self.settings = settings
        let info = request.modelInfo
        vocabularySize = (info["vocabulary_size"] as? NSNumber)?.intValue ?? 0
        width = (info["embedding_width"] as? NSNumber)?.intValue ?? 0
    }

    /// Generates on all `sequences` together, like `Request.generate`; stopped requests
    /// return what was generated so far with finish `.stopped`. With `teacher`, sequence i
    /// is fed teacher[i]'s tokens instead of sampling and `onFeature` receives each
    /// position's features (the learned head's training data). `progressEvery` positions a
    /// "step" progress event is sent (callers with steps of their own send theirs).
    public func generate(_ sequences: [Sequence], maxTokens: Int, stop: [String] = [], sampling: Sampling,
                         teacher: [[Int32]]? = nil, progressEvery: Int? = nil,
                         onFeature: ((Int, ThoughtFeature) -> Void)? = nil) throws -> [ThoughtGeneration] {
        let count = sequences.count
        var tokens = [[Int32]](repeating: [], count: count)
        var finishes = [Finish?](repeating: nil, count: count)
        var stats = [ThoughtStats](repeating: ThoughtStats(), count: count)
        let collecting = onFeature != nil
        // The markers' lengths in tokens, for the thought count: the same at every position.
        let markerTokens = try request.tokenize(settings.startMarker).count
        let endTokens = try request.tokenize(settings.endMarker).count
        let stopWindow = (stop.map(\.utf8.count).max() ?? 0) + 4

        position: for position in 0..<maxTokens {
            var active = (0..<count).filter { finishes[$0] == nil }
            if let teacher {
                for index in active where position >= teacher[index].count { finishes[index] = .maxTokens }
                active = active.filter { finishes[$0] == nil }
            }
            guard !active.isEmpty else { break }
            do {
                guard !request.shouldStop else { throw Request.HostError(status: Int32(SD_ERR_STOPPED.rawValue), call: "should_stop") }
                try request.evaluate(active.map { sequences[$0] })
                var baseLogits: [Int: [Float]] = [:]
                var entropies: [Int: Double] = [:]
                for index in active {
                    baseLogits[index] = try request.logits(sequences[index], vocabularySize: vocabularySize)
                    entropies[index] = ThoughtMixture.entropy(baseLogits[index]!)
                }
                let thinkers = active.filter { settings.thinks(at: position, entropy: entropies[$0]!) }
                let needHidden = settings.head.needsHiddenStates || collecting
                var baseHidden: [Int: [Float]] = [:]
                if needHidden {
                    for index in thinkers { baseHidden[index] = try request.hiddenState(sequences[index], width: width) }
                }

                // Fork every thinker's thoughts, open them, sample them all in one generate.
                var owners: [Int] = []
                var children: [Sequence] = []
                for index in thinkers {
                    for child in try request.fork(sequences[index], count: settings.thoughts, needing: "n_thoughts thoughts per sequence") {
                        owners.append(index)
                        children.append(child)
                    }
                }
                defer { children.forEach(request.free) }
                for child in children { try request.append(child, text: settings.startMarker, kind: .thought) }
                let thoughts = try request.generate(
                    children, maxTokens: settings.length, stop: settings.endMarker.isEmpty ? [] : [settings.endMarker],
                    sampling: Sampling(temperature: Float(settings.temperature),
                                       seed: sampling.seed &+ UInt32(truncatingIfNeeded: (position + 1) &* 7919 &* max(1, count))),
                    kind: .thought)
                if thoughts.contains(where: { $0.finish == .stopped }) {
                    throw Request.HostError(status: Int32(SD_ERR_STOPPED.rawValue), call: "generate")
                }
                for (child, thought) in zip(children, thoughts) where thought.finish != .stop && !settings.endMarker.isEmpty {
                    try request.append(child, text: settings.endMarker, kind: .thought)
                }
                try request.evaluate(children)
                var thoughtLogits: [Int: [[Float]]] = [:]
                var thoughtHidden: [Int: [[Float]]] = [:]
                for (slot, child) in children.enumerated() {
                    let owner = owners[slot]
                    thoughtLogits[owner, default: []].append(try request.logits(child, vocabularySize: vocabularySize))
                    if needHidden { thoughtHidden[owner, default: []].append(try request.hiddenState(child, width: width)) }
                    stats[owner].thoughtTokens += markerTokens + thoughts[slot].tokens
                        + (thoughts[slot].finish == .stop || settings.endMarker.isEmpty ? 0 : endTokens)
                    if stats[owner].examples.count < 3 { stats[owner].examples.append(thoughts[slot].text) }
                }

                // Mix, choose each sequence's next token, append it.
                for index in active {
                    stats[index].positions += 1
                    var logits = baseLogits[index]!
                    var traced: Double?
                    defer { stats[index].trace.append((entropies[index]!, traced)) }
                    if let mine = thoughtLogits[index] {
                        let weights = mine.indices.map { j in
                            settings.head.weight(entropy: entropies[index]!, base: baseHidden[index], thought: thoughtHidden[index]?[j])
                        }
                        logits = ThoughtMixture.mix(base: logits, thoughts: mine, weights: weights, space: settings.head.space)
                        stats[index].thoughtPositions += 1
                        traced = weights.reduce(0, +) / Double(weights.count)
                        stats[index].weightSum += traced!
                        if let teacher, let onFeature {
                            let truth = Int(teacher[index][position])
                            let baseLog = ThoughtMixture.logProbability(of: truth, in: baseLogits[index]!)
                            for (j, thought) in mine.enumerated() {
                                onFeature(index, ThoughtFeature(position: position, entropy: entropies[index]!,
                                                                baseHidden: baseHidden[index] ?? [], thoughtHidden: thoughtHidden[index]?[j] ?? [],
                                                                baseLogprob: Double(baseLog),
                                                                thoughtLogprob: Double(ThoughtMixture.logProbability(of: truth, in: thought))))
                            }
                        }
                    }
                    let token: Int32
                    if let teacher {
                        token = teacher[index][position]
                    } else {
                        var draw = sampling
                        draw.seed = sampling.seed &+ UInt32(truncatingIfNeeded: position &* count &+ index)
                        token = try request.sample(logits, sampling: draw)
                    }
                    if request.isEndOfGeneration(token) {
                        finishes[index] = .endOfGeneration
                        continue
                    }
                    try request.append(sequences[index], tokens: [token], kind: .generated)
                    tokens[index].append(token)
                    // Like the engine, the step ends with the token that completes a stop
                    // string and its text is all of that token: what the sequence holds. A
                    // stop first appears in the last few tokens (each at least one byte;
                    // 4 more cover a character split across tokens).
                    if !stop.isEmpty {
                        let window = try request.detokenize(Array(tokens[index].suffix(stopWindow)))
                        if stop.contains(where: { window.contains($0) }) { finishes[index] = .stop }
                    }
                }
                if let progressEvery, position % progressEvery == progressEvery - 1 {
                    request.progress(["event": "step", "position": position + 1,
                                      "thought_positions": stats.map(\.thoughtPositions).reduce(0, +)])
                }
            } catch let error as Request.HostError where error.isStop {
                for index in active { finishes[index] = .stopped }
                break position
            }
        }
        return try (0..<count).map { index in
            ThoughtGeneration(generated: Generated(text: try request.detokenize(tokens[index]), tokens: tokens[index].count,
                                                   finish: finishes[index] ?? .maxTokens, logprobSum: 0, logprobMin: 0),
                              stats: stats[index])
        }
    }
}
