import Foundation
import StrategyKit

/// Quiet-STaR-style thought mixing (Zelikman et al. 2024) on a model never trained for it:
/// before each answer token the model thinks (text between configurable markers, in a
/// forked sequence whose KV is dropped afterwards), and the next token is drawn from a
/// mixture of the base and post-thought distributions. `votes` runs sample together and a
/// majority picks the answer, as in the paper's majority-vote evaluation. With `teacher`, the
/// plugin decodes that text instead (teacher forcing) and returns per-position features:
/// the training data of the learned mixing head (strategyd-train-head).
struct QuietStar: Strategy {
    static let name = "quiet-star"
    static let version = "1.1.0"
    static let description = "Quiet-STaR thought mixing: think before each token, mix the post-thought distribution in"
    static let settings = ThoughtSettings.settings
    static func configure(_ settings: Params, host: HostResources) throws { try ThoughtSettings.configure(settings, host: host) }
    static let params: [Param] = ThoughtSettings.params + [
        .integer("votes", 1, 1...64, "runs sampled together; the majority answer wins"),
        .number("temperature", 0, 0...5, "sampling temperature of answer tokens (Quiet-STaR's evaluation votes at 0.9)"),
        .integer("max_tokens", 512, 1...4096, "answer tokens one run may take (thoughts not counted)"),
        .boolean("trace", false, "details.trace: per run and position, the base entropy and the thought's weight (null: no thought)"),
        .string("teacher", "", "teacher forcing: decode this text and return each position's features (details.features)"),
    ]

    init() {}

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        let settings = try ThoughtSettings(params: params, request: request)
        let decoder = QuietDecoder(request: request, settings: settings)
        let prompt = try request.chat(system: Prompts.system, user: problem)
        let teacherText = params.string("teacher")
        if !teacherText.isEmpty {
            return try collect(decoder, prompt: prompt, teacher: teacherText, maxTokens: params.int("max_tokens"))
        }
        let votes = params.int("votes")
        let runs = [prompt] + (try request.fork(prompt, count: votes - 1, needing: "votes"))
        let generations = try decoder.generate(runs, maxTokens: params.int("max_tokens"),
                                               sampling: Sampling(temperature: Float(params.double("temperature"))),
                                               progressEvery: 16)
        runs.forEach(request.free)

        let texts = generations.map(\.generated.text)
        let answers = texts.map(request.extractAnswer)
        let vote = try request.vote(answers: answers, mode: .plain)
        let chosen = vote.chosen
        var total = ThoughtStats()
        generations.forEach { total.add($0.stats) }
        var details = total.summary
        details["settings"] = settings.summary
        details["votes"] = votes
        details["finish"] = generations.map { "\($0.generated.finish)" }
        if params.bool("trace") { details["trace"] = generations.map(\.stats.traceJSON) }
        return Solution(text: chosen.map { texts[$0] } ?? "", answer: chosen.flatMap { answers[$0] },
                        candidates: texts.indices.map { .init(text: texts[$0], answer: answers[$0], votes: vote.votes[$0],
                                                              voteWeight: vote.weights[$0]) },
                        details: details)
    }

    private func collect(_ decoder: QuietDecoder, prompt: Sequence, teacher: String, maxTokens: Int) throws -> Solution {
        let tokens = Array(try decoder.request.tokenize(teacher).prefix(maxTokens))
        var features: [[String: Any]] = []
        let generation = try decoder.generate([prompt], maxTokens: tokens.count, sampling: .greedy, teacher: [tokens]) { _, feature in
            features.append(feature.json)
        }[0]
        var details = generation.stats.summary
        details["settings"] = decoder.settings.summary
        details["features"] = features
        details["teacher_tokens"] = tokens.count
        return Solution(text: generation.generated.text, answer: nil, details: details)
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(QuietStar.self) }
