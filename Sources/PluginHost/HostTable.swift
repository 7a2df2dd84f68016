import Answers
import Engine
import Foundation
import PluginABI
import JSONValue

/// The sd_host table handed to every plugin: C entry points over the engine, each
/// checking its arguments and the request's ownership of the sequences it names.
public enum HostTable {
    /// One table for the process; it never changes.
    nonisolated(unsafe) public static let pointer: UnsafePointer<sd_host> = {
        let table = UnsafeMutablePointer<sd_host>.allocate(capacity: 1)
        table.initialize(to: make())
        return UnsafePointer(table)
    }()

    /// Model facts as JSON, for model_info(); the daemon sets them before any plugin runs
    /// and again when a shared resource changes them.
    public static func setModelInfo(_ json: String) {
        // A plugin may hold the previous text for the life of the daemon (model_info says
        // so): it is never freed. It changes only when a resource is turned on, a handful
        // of times at most.
        let text = strdup(json)
        modelInfoLock.withLock { modelInfoText = text }
    }

    private static let modelInfoLock = NSLock()
    nonisolated(unsafe) private static var modelInfoText: UnsafeMutablePointer<CChar>?
    static var modelInfo: UnsafePointer<CChar>? { modelInfoLock.withLock { modelInfoText.map { UnsafePointer($0) } } }

    /// The resources plugins' settings may turn on; the daemon sets it before loading plugins.
    nonisolated(unsafe) public static var resources: SharedResources?

    private static let ok = Int32(SD_OK.rawValue)
    static let invalid = Int32(SD_ERR_INVALID_ARGUMENT.rawValue)
    private static let limit = Int32(SD_ERR_LIMIT.rawValue)
    private static let stopped = Int32(SD_ERR_STOPPED.rawValue)
    static let engineFailure = Int32(SD_ERR_ENGINE.rawValue)
    private static let tooSmall = Int32(SD_ERR_BUFFER_TOO_SMALL.rawValue)
    /// Scorers may score with other scorers (combine); a plugin that asks itself ends here
    /// with an error instead of the daemon's stack.
    static let maxScorerNesting = 8
    /// sd_host.vote's documented bound on n.
    static let maxVoteCandidates: Int32 = 65536

    static func status(of error: Error, in request: SolveRequest) -> Int32 {
        guard let error = error as? EngineError else { return engineFailure }
        request.noteEngineError(error)
        switch error {
        case .kvCacheFull:
            // The cells every solve shares ran out: stop like a spent budget, so the plugin
            // answers with what it has (if it cannot, the solve fails with the engine error).
            request.noteCacheFull()
            return stopped
        case .tooManySequences, .contextOverflow: return limit
        case .unknownSequence, .invalidToken, .emptySequence, .hiddenStatesDisabled: return invalid
        default: return engineFailure
        }
    }

    /// generate() and generate_with_signals(): the status and the generations, out[] filled;
    /// nil for arguments that are not valid.
    private static func runGeneration(_ raw: OpaquePointer?, _ seqs: UnsafePointer<sd_seq>?, _ count: Int32,
                                 _ params: UnsafePointer<sd_generate_params>?, confidence: ConfidenceOptions?,
                                 _ out: UnsafeMutablePointer<sd_generation>?) -> (status: Int32, generations: [Generation])? {
        guard let request = SolveRequest.from(raw), let seqs, let params, let out, count >= 1 else { return nil }
        let ids = Array(UnsafeBufferPointer(start: seqs, count: Int(count)))
        let p = params.pointee
        guard ids.allSatisfy(request.owns), Set(ids).count == ids.count,
              p.max_tokens >= 1, p.max_tokens <= Int32(request.limits.maxTokensPerCall),
              p.min_tokens >= 0, p.n_stop >= 0, p.n_stop <= 16, p.n_stop == 0 || p.stop != nil,
              let kind = tokenKind(p.kind),
              let sampling = sampling(p.sampling, seed: request.seed) else { return nil }
        let stops = (0..<Int(p.n_stop)).compactMap { string(p.stop[$0]) }
        let options = GenerationOptions(maxTokens: Int(p.max_tokens), minTokens: Int(p.min_tokens), stop: stops,
                                        sampling: sampling, logprobs: p.logprobs || confidence != nil,
                                        kind: request.kind(kind), confidence: confidence)
        let generations: [Generation]
        do {
            generations = try request.engine.generate(ids, options: options) { _ in !request.shouldStop() }
        } catch {
            // out[] is unset, so this is never a stop (which promises what was generated).
            let status = HostTable.status(of: error, in: request)
            return (status == stopped ? limit : status, [])
        }
        var interrupted = false
        for (index, generation) in generations.enumerated() {
            let finish: sd_finish
            switch generation.finish {
            case .endOfGeneration: finish = SD_FINISH_EOG
            case .stop: finish = SD_FINISH_STOP
            case .maxTokens: finish = SD_FINISH_MAX_TOKENS
            case .lowConfidence: finish = SD_FINISH_LOW_CONFIDENCE
            case .interrupted: finish = SD_FINISH_STOPPED; interrupted = true
            case .cacheFull:
                // Like a spent budget: the strategy stops and answers with what it has.
                finish = SD_FINISH_STOPPED; interrupted = true
                request.noteCacheFull()
            }
            out[index] = sd_generation(
                text: strdup(generation.text), n_tokens: Int32(generation.tokens.count), finish: Int32(finish.rawValue),
                logprob_sum: generation.logprobs.reduce(0) { $0 + Double($1) },
                logprob_min: generation.logprobs.isEmpty ? 0 : Double(generation.logprobs.min()!))
        }
        return (interrupted ? stopped : ok, generations)
    }

    /// sd_signal_params, checked; nil when they are not valid.
    private static func confidenceOptions(_ params: UnsafePointer<sd_signal_params>?) -> ConfidenceOptions? {
        guard let params, params.pointee.size >= UInt32(MemoryLayout<sd_signal_params>.size) else { return nil }
        let p = params.pointee
        guard ConfidenceOptions.topKRange.contains(Int(p.top_k)), p.window >= 1, p.window <= 65536,
              p.stop_below.isFinite, p.stop_below >= 0 else { return nil }
        return ConfidenceOptions(topK: Int(p.top_k), window: Int(p.window), stopBelow: p.stop_below > 0 ? p.stop_below : nil)
    }

    /// One sequence's signals as the plugin receives them (its arrays freed by token_signals_free).
    private static func tokenSignals(tokens: [Int32], logprobs: [Float], _ record: TokenConfidence) -> sd_token_signals {
        let n = tokens.count
        return sd_token_signals(
            n: Int32(n), tokens: copy(tokens), logprob: copy(logprobs.count == n ? logprobs : [Float](repeating: .nan, count: n)),
            confidence: copy(record.confidence), entropy: copy(record.entropy), margin: copy(record.margin),
            certainty: copy(record.certainty))
    }

    /// A malloc'ed copy for the plugin (freed by token_signals_free).
    private static func copy<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let pointer = UnsafeMutablePointer<T>(OpaquePointer(malloc(max(1, values.count) * MemoryLayout<T>.stride)!))
        values.withUnsafeBufferPointer { buffer in
            if let base = buffer.baseAddress { pointer.initialize(from: base, count: buffer.count) }
        }
        return pointer
    }

    static func tokenKind(_ raw: Int32) -> TokenKind? { TokenKind(rawValue: Int(raw)) }

    /// A zeroed sd_sampling is greedy: top_p 0 means off, like 1.
    static func sampling(_ raw: sd_sampling, seed: UInt32) -> SamplingParams? {
        guard raw.temperature >= 0, raw.temperature <= 5, raw.top_k >= 0, raw.top_p >= 0, raw.top_p <= 1,
              raw.min_p >= 0, raw.min_p < 1 else { return nil }
        return SamplingParams(temperature: raw.temperature, topK: Int(raw.top_k), topP: raw.top_p == 0 ? 1 : raw.top_p,
                              minP: raw.min_p, seed: seed &+ raw.seed)
    }

    /// Creates a sequence for the request, within its sequence limit.
    static func newSequence(_ request: SolveRequest, tokens: [Int32], kind: TokenKind,
                            out: UnsafeMutablePointer<sd_seq>?) -> Int32 {
        guard let out else { return invalid }
        guard request.sequenceCount < request.limits.maxSequences else { return limit }
        do {
            // A scorer's prompt often repeats what a live sequence of the strategy holds.
            let id = try request.engine.createSequence(tokens, account: request.account, kind: request.kind(kind),
                                                       reusing: request.ownedSequences)
            request.adopt([id])
            out.pointee = id
            return ok
        } catch {
            return status(of: error, in: request)
        }
    }

    static func string(_ pointer: UnsafePointer<CChar>?) -> String? { pointer.map { String(cString: $0) } }

    static func copy(_ bytes: [UInt8], into out: UnsafeMutablePointer<CChar>?, capacity: Int32) -> Int32 {
        guard let out, capacity > bytes.count else { return tooSmall }
        bytes.withUnsafeBytes { raw in
            UnsafeMutableRawPointer(out).copyMemory(from: raw.baseAddress!, byteCount: bytes.count)
        }
        out[bytes.count] = 0
        return Int32(bytes.count)
    }

    private static func make() -> sd_host {
        var host = sd_host()
        host.abi_version = UInt32(SD_PLUGIN_ABI_VERSION)
        host.size = UInt32(MemoryLayout<sd_host>.size)

        host.model_info = { _ in HostTable.modelInfo }

        host.seq_from_chat = { raw, system, user, assistantPrefix, out in
            guard let request = SolveRequest.from(raw), let user = HostTable.string(user) else { return HostTable.invalid }
            var messages: [ChatMessage] = []
            if let system = HostTable.string(system) { messages.append(ChatMessage(role: "system", content: system)) }
            messages.append(ChatMessage(role: "user", content: user))
            let model = request.engine.model
            let prompt: PromptText
            do {
                prompt = try model.chatPrompt(messages)
            } catch {
                return HostTable.status(of: error, in: request)
            }
            var text = prompt
            text.append(HostTable.string(assistantPrefix) ?? "")
            return HostTable.newSequence(request, tokens: request.engine.tokenize(text, reusing: request.ownedSequences),
                                         kind: .prompt, out: out)
        }

        host.seq_from_text = { raw, text, kind, out in
            guard let request = SolveRequest.from(raw), let text = HostTable.string(text),
                  let kind = HostTable.tokenKind(kind) else { return HostTable.invalid }
            return HostTable.newSequence(request, tokens: request.engine.tokenize(PromptText(text), reusing: request.ownedSequences),
                                         kind: kind, out: out)
        }

        host.seq_fork = { raw, parent, count, children in
            guard let request = SolveRequest.from(raw), let children, count >= 1, count <= 256,
                  request.owns(parent) else { return HostTable.invalid }
            guard request.sequenceCount + Int(count) <= request.limits.maxSequences else { return HostTable.limit }
            do {
                let ids = try request.engine.fork(parent, count: Int(count))
                request.adopt(ids)
                for (index, id) in ids.enumerated() { children[index] = id }
                return HostTable.ok
            } catch {
                return HostTable.status(of: error, in: request)
            }
        }

        host.seq_append_text = { raw, seq, text, kind in
            guard let request = SolveRequest.from(raw), let text = HostTable.string(text),
                  let kind = HostTable.tokenKind(kind), request.owns(seq) else { return HostTable.invalid }
            do {
                try request.engine.append(seq, text: text, kind: request.kind(kind))
                return HostTable.ok
            } catch {
                return HostTable.status(of: error, in: request)
            }
        }

        host.seq_append_tokens = { raw, seq, tokens, count, kind in
            guard let request = SolveRequest.from(raw), let tokens, count >= 0,
                  let kind = HostTable.tokenKind(kind), request.owns(seq) else { return HostTable.invalid }
            do {
                try request.engine.append(seq, tokens: Array(UnsafeBufferPointer(start: tokens, count: Int(count))),
                                          kind: request.kind(kind))
                return HostTable.ok
            } catch {
                return HostTable.status(of: error, in: request)
            }
        }

        host.seq_append_scored = { raw, seq, tokens, count, kind, out in
            guard let request = SolveRequest.from(raw), let tokens, let out, count >= 1,
                  count <= Int32(request.engine.options.contextSize),
                  let kind = HostTable.tokenKind(kind), request.owns(seq) else { return HostTable.invalid }
            do {
                // A scorer often teacher-forces a step a live sequence of the strategy sampled.
                let scores = try request.engine.appendScored(seq, tokens: Array(UnsafeBufferPointer(start: tokens, count: Int(count))),
                                                             kind: request.kind(kind), reusing: request.ownedSequences)
                out.update(from: scores, count: scores.count)
                return HostTable.ok
            } catch {
                return HostTable.status(of: error, in: request)
            }
        }

        host.seq_append_signals = { raw, seq, tokens, count, kind, params, out, signals in
            guard let request = SolveRequest.from(raw), let tokens, let out, let signals, count >= 1,
                  count <= Int32(request.engine.options.contextSize),
                  let kind = HostTable.tokenKind(kind), request.owns(seq),
                  let options = HostTable.confidenceOptions(params) else { return HostTable.invalid }
            do {
                let list = Array(UnsafeBufferPointer(start: tokens, count: Int(count)))
                // A certainty scorer reads what the strategy's sampling of the same tokens recorded.
                let (scores, recorded) = try request.engine.appendScored(seq, tokens: list, kind: request.kind(kind),
                                                                         reusing: request.ownedSequences,
                                                                         signals: ConfidenceOptions(topK: options.topK, window: options.window))
                out.update(from: scores, count: scores.count)
                signals.pointee = HostTable.tokenSignals(tokens: list, logprobs: scores, recorded ?? TokenConfidence())
                return HostTable.ok
            } catch {
                return HostTable.status(of: error, in: request)
            }
        }

        host.seq_free = { raw, seq in
            guard let request = SolveRequest.from(raw), request.release(seq) else { return }
            request.engine.remove(seq)
        }

        host.seq_evaluate = { raw, seqs, count in
            guard let request = SolveRequest.from(raw), let seqs, count >= 0 else { return HostTable.invalid }
            let ids = Array(UnsafeBufferPointer(start: seqs, count: Int(count)))
            guard ids.allSatisfy(request.owns), Set(ids).count == ids.count else { return HostTable.invalid }
            do {
                try request.engine.evaluate(ids)
                return HostTable.ok
            } catch {
                return HostTable.status(of: error, in: request)
            }
        }

        host.generate = { raw, seqs, count, params, out in
            HostTable.runGeneration(raw, seqs, count, params, confidence: nil, out)?.status ?? HostTable.invalid
        }

        host.generate_with_signals = { raw, seqs, count, generateParams, params, out, signals in
            guard let signals, let options = HostTable.confidenceOptions(params),
                  let (status, generations) = HostTable.runGeneration(raw, seqs, count, generateParams, confidence: options, out) else {
                return HostTable.invalid
            }
            for (index, generation) in generations.enumerated() {
                signals[index] = HostTable.tokenSignals(tokens: generation.tokens, logprobs: generation.logprobs,
                                                        generation.confidence ?? TokenConfidence())
            }
            return status
        }

        host.token_signals_free = { _, signals, count in
            guard let signals else { return }
            for index in 0..<Int(max(count, 0)) {
                free(signals[index].tokens)
                free(signals[index].logprob)
                free(signals[index].confidence)
                free(signals[index].entropy)
                free(signals[index].margin)
                free(signals[index].certainty)
                signals[index] = sd_token_signals()
            }
        }

        host.generations_free = { _, generations, count in
            guard let generations else { return }
            for index in 0..<Int(max(count, 0)) {
                free(generations[index].text)
                generations[index].text = nil
            }
        }

        host.logits = { raw, seq, out, count in
            guard let request = SolveRequest.from(raw), let out, request.owns(seq),
                  Int(count) == request.engine.model.facts.vocabularySize else { return HostTable.invalid }
            do {
                try request.engine.withLogits(seq) { logits in
                    out.update(from: logits.baseAddress!, count: logits.count)
                }
                return HostTable.ok
            } catch {
                return HostTable.status(of: error, in: request)
            }
        }

        host.hidden_state = { raw, seq, out, count in
            guard let request = SolveRequest.from(raw), let out, request.owns(seq),
                  Int(count) == request.engine.model.facts.embeddingWidth else { return HostTable.invalid }
            do {
                let hidden = try request.engine.hiddenState(seq)
                out.update(from: hidden, count: hidden.count)
                return HostTable.ok
            } catch {
                return HostTable.status(of: error, in: request)
            }
        }

        host.sample = { raw, logits, count, sampling, token in
            guard let request = SolveRequest.from(raw), let logits, let sampling, let token,
                  Int(count) == request.engine.model.facts.vocabularySize,
                  let params = HostTable.sampling(sampling.pointee, seed: request.seed) else { return HostTable.invalid }
            token.pointee = Engine.sample(UnsafeBufferPointer(start: logits, count: Int(count)), params: params)
            return HostTable.ok
        }

        host.tokenize = { raw, text, out, capacity in
            guard let request = SolveRequest.from(raw), let text = HostTable.string(text) else { return HostTable.invalid }
            let tokens = request.engine.model.tokenize(text)
            guard let out, capacity >= tokens.count else { return HostTable.tooSmall }
            out.update(from: tokens, count: tokens.count)
            return Int32(tokens.count)
        }

        host.detokenize = { raw, tokens, count, out, capacity in
            guard let request = SolveRequest.from(raw), let tokens, count >= 0 else { return HostTable.invalid }
            let list = Array(UnsafeBufferPointer(start: tokens, count: Int(count)))
            let vocabularySize = request.engine.model.facts.vocabularySize
            guard list.allSatisfy({ $0 >= 0 && Int($0) < vocabularySize }) else { return HostTable.invalid }
            return HostTable.copy(Array(request.engine.model.detokenize(list).utf8), into: out, capacity: capacity)
        }

        host.is_end_of_generation = { raw, token in
            guard let request = SolveRequest.from(raw), token >= 0,
                  Int(token) < request.engine.model.facts.vocabularySize else { return false }
            return request.engine.model.isEndOfGeneration(token)
        }

        host.extract_answer = { _, text, out, capacity in
            guard let text = HostTable.string(text) else { return HostTable.invalid }
            guard let answer = AnswerExtractor.extract(text) else {
                if let out, capacity > 0 { out[0] = 0 }
                return 0
            }
            return HostTable.copy(Array(answer.description.utf8), into: out, capacity: capacity)
        }

        host.score = { raw, scorerName, paramsJSON, problem, solution, out in
            guard let request = SolveRequest.from(raw), let name = HostTable.string(scorerName),
                  let problem = HostTable.string(problem), let solution = HostTable.string(solution), let out
            else { return HostTable.invalid }
            guard let scorer = request.registry.get(name), scorer.kind == .scorer else {
                request.setFailure("unknown scorer '\(name)'")
                return Int32(SD_ERR_UNKNOWN_SCORER.rawValue)
            }
            let given = HostTable.string(paramsJSON).flatMap { try? JSON.parse($0) }
            guard case .success(let params) = scorer.schema.complete(given) else { return HostTable.invalid }
            guard request.scorerDepth < HostTable.maxScorerNesting else {
                request.setFailure("scorer '\(name)': scorers nested more than \(HostTable.maxScorerNesting) deep (one scoring with itself?)")
                return HostTable.invalid
            }
            request.scorerDepth += 1
            defer { request.scorerDepth -= 1 }
            var score = 0.0
            let status = scorer.using {
                scorer.plugin.pointee.score!(scorer.state, HostTable.pointer, raw, problem, solution, params.serialized(), &score)
            }
            guard status == HostTable.ok else { return status }
            guard score.isFinite else { return HostTable.invalid }
            out.pointee = min(max(score, 0), 1)
            return HostTable.ok
        }

        host.scorer_reads_logprobs = { raw, scorerName, paramsJSON in
            guard let request = SolveRequest.from(raw), let name = HostTable.string(scorerName),
                  let scorer = request.registry.get(name), scorer.kind == .scorer, let reads = scorer.readsLogprobs
            else { return false }
            let given = HostTable.string(paramsJSON).flatMap { try? JSON.parse($0) }
            guard case .success(let params) = scorer.schema.complete(given),
                  request.scorerDepth < HostTable.maxScorerNesting else { return false }
            // Asking may recurse (combine asks its parts) like scoring does.
            request.scorerDepth += 1
            defer { request.scorerDepth -= 1 }
            return scorer.using { reads(scorer.state, HostTable.pointer, raw, params.serialized()) }
        }

        host.next_token_logprobs = { raw, model, text, candidates, count, out in
            guard let request = SolveRequest.from(raw), let text = HostTable.string(text), let candidates, let out,
                  count >= 1, count <= 64 else { return HostTable.invalid }
            let engine: Engine
            switch model {
            case Int32(SD_MODEL_POLICY.rawValue): engine = request.engine
            case Int32(SD_MODEL_REWARD.rawValue):
                guard let reward = request.rewardEngine else { return HostTable.invalid }
                engine = reward
            default: return HostTable.invalid
            }
            var firstTokens: [Int32] = []
            for index in 0..<Int(count) {
                guard let candidate = HostTable.string(candidates[index]),
                      let token = engine.model.tokenize(candidate).first else { return HostTable.invalid }
                firstTokens.append(token)
            }
            do {
                let id = try engine.createSequence(engine.model.tokenize(text, addSpecial: true), account: request.account, kind: .scorer)
                defer { engine.remove(id) }
                try engine.withLogits(id) { logits in
                    let lse = LogProbabilities.logSumExp(logits)
                    for (index, token) in firstTokens.enumerated() { out[index] = Double(logits[Int(token)] - lse) }
                }
                return HostTable.ok
            } catch {
                return HostTable.status(of: error, in: request)
            }
        }

        host.should_stop = { raw in SolveRequest.from(raw)?.shouldStop() ?? true }

        host.progress = { raw, json in
            guard let request = SolveRequest.from(raw), let text = HostTable.string(json),
                  let event = try? JSON.parse(text) else { return }
            request.sendProgress(event)
        }

        host.usage = { raw, out in
            guard let request = SolveRequest.from(raw), let out else { return }
            let usage = request.usage
            out.pointee = sd_usage(prompt_tokens: Int64(usage.promptTokens), generated_tokens: Int64(usage.generatedTokens),
                                   thought_tokens: Int64(usage.thoughtTokens), scorer_tokens: Int64(usage.scorerTokens),
                                   evaluated_tokens: Int64(usage.evaluatedTokens), flops: usage.flops,
                                   scorer_flops: usage.scorerFlops, wall_seconds: request.wallSeconds)
        }

        host.set_result = { raw, json in
            guard let request = SolveRequest.from(raw), let text = HostTable.string(json),
                  let value = try? JSON.parse(text), value.objectValue != nil else { return HostTable.invalid }
            request.setResult(value)
            return HostTable.ok
        }

        host.fail = { raw, message in
            SolveRequest.from(raw)?.setFailure(HostTable.string(message) ?? "unspecified failure")
            return Int32(SD_ERR_PLUGIN.rawValue)
        }

        host.log = { _, level, message in
            guard let message = HostTable.string(message) else { return }
            PluginLog.emit(level: Int(level), message)
        }

        host.vote = { raw, answers, weights, count, mode, tallies, chosen in
            guard SolveRequest.from(raw) != nil, let chosen, count >= 0, count <= HostTable.maxVoteCandidates,
                  let mode = Vote.Mode(rawValue: mode), count == 0 || answers != nil else { return HostTable.invalid }
            let n = Int(count)
            let given = (0..<n).map { index in HostTable.string(answers![index]) }
            var weightList: [Double]?
            if let weights {
                weightList = (0..<n).map { weights[$0] }
                guard weightList!.allSatisfy(\.isFinite) else { return HostTable.invalid }
            }
            let outcome = Vote.count(answers: given, weights: weightList, mode: mode)
            if let tallies {
                for (index, tally) in outcome.tallies.enumerated() {
                    tallies[index] = sd_vote_tally(votes: Int32(tally.votes), weight: tally.weight)
                }
            }
            chosen.pointee = Int32(outcome.chosen)
            return HostTable.ok
        }

        host.stop_rule = { raw, rule, parameter, answers, count, stop, measure in
            guard SolveRequest.from(raw) != nil, let stop, let rule = StopRule(rawValue: rule), parameter.isFinite,
                  count >= 0, count <= HostTable.maxVoteCandidates, count == 0 || answers != nil else { return HostTable.invalid }
            switch rule {
            case .beta: guard parameter > 0.5, parameter < 1 else { return HostTable.invalid }
            case .esc: guard parameter >= 1, parameter <= 65536, parameter.rounded() == parameter else { return HostTable.invalid }
            }
            let given = (0..<Int(count)).map { HostTable.string(answers![$0]) }
            let decision = rule.decide(given, parameter: parameter)
            stop.pointee = decision.stop
            measure?.pointee = decision.measure
            return HostTable.ok
        }

        host.budget = { raw, maxTokens, maxFlops, secondsLeft in
            guard let request = SolveRequest.from(raw) else { return HostTable.invalid }
            maxTokens?.pointee = Int64(request.budget.maxTokens)
            maxFlops?.pointee = request.budget.maxFlops ?? 0
            secondsLeft?.pointee = max(0, request.budget.deadline.timeIntervalSinceNow)
            return HostTable.ok
        }

        host.solve_with = { raw, strategyName, paramsJSON, resultJSON in
            guard let request = SolveRequest.from(raw), let name = HostTable.string(strategyName), let resultJSON else {
                return HostTable.invalid
            }
            guard let strategy = request.registry.get(name), strategy.kind == .strategy else {
                request.setFailure("unknown strategy '\(name)'")
                return HostTable.invalid
            }
            let given = HostTable.string(paramsJSON).flatMap { try? JSON.parse($0) }
            guard case .success(let params) = strategy.schema.complete(given) else {
                request.setFailure("strategy '\(name)': invalid params")
                return HostTable.invalid
            }
            guard request.strategyDepth < HostTable.maxScorerNesting else {
                request.setFailure("strategy '\(name)': strategies nested more than \(HostTable.maxScorerNesting) deep")
                return HostTable.invalid
            }
            request.strategyDepth += 1
            defer { request.strategyDepth -= 1 }
            let outer = request.takeResult()
            let status = strategy.using {
                strategy.plugin.pointee.solve!(strategy.state, HostTable.pointer, raw, request.problem, params.serialized())
            }
            let inner = request.takeResult()
            if let outer { request.setResult(outer) }
            guard status == HostTable.ok else { return status }
            guard let inner else {
                request.setFailure("strategy '\(name)' returned no result")
                return Int32(SD_ERR_PLUGIN.rawValue)
            }
            resultJSON.pointee = strdup(inner.serialized())
            return HostTable.ok
        }

        host.enable_hidden_states = { _ in
            guard SharedResources.isConfiguring, let resources = HostTable.resources else { return HostTable.invalid }
            resources.enableHiddenStates()
            return HostTable.ok
        }

        host.load_reward_model = { _, model in
            guard SharedResources.isConfiguring, let resources = HostTable.resources,
                  let model = HostTable.string(model), !model.isEmpty else { return HostTable.invalid }
            do {
                try resources.loadRewardModel(model)
                return HostTable.ok
            } catch let error as SharedResources.RewardModelError {
                PluginLog.emit(level: 3, "\(error)")
                if case .another = error { return HostTable.invalid }
                return HostTable.engineFailure
            } catch {
                return HostTable.engineFailure
            }
        }
        return host
    }
}

/// Where plugin log lines go; the daemon installs its logger.
public enum PluginLog {
    nonisolated(unsafe) public static var sink: (@Sendable (Int, String) -> Void)?

    static func emit(level: Int, _ message: String) { sink?(level, message) }
}
