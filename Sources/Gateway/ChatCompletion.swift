import Foundation
import JSONValue

/// A `POST /v1/chat/completions` body read as one strategyd solve (docs/gateway.md,
/// "Chat completions"): `model` is a strategy spec, the one user message is the problem,
/// and the OpenAI fields that mean the same thing map onto the solve.
public struct ChatRequest: Sendable {
    /// `model` as sent: the response names it back.
    public var model: String
    public var spec: StrategySpec
    public var problem: String
    public var n: Int
    public var stream: Bool
    public var includeUsage: Bool
    /// The daemon's `solve` params.
    public var solve: [String: JSON]
    /// Where each solve param came from in the request, for errors that name it.
    var origins: [String: String]

    /// Choices a request may ask for (`n`).
    public static let maxChoices = 64

    /// Fields read without effect: a strategy sets its own sampling and decides where a
    /// solution ends (docs/gateway.md lists them).
    public static let ignoredFields: Set<String> = [
        "temperature", "top_p", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "user",
        "metadata", "store", "service_tier", "parallel_tool_calls", "top_logprobs", "prompt_cache_key",
        "safety_identifier", "reasoning_effort", "verbosity",
    ]

    /// - Parameter timeoutSeconds: the solve's time budget when the request names none, and
    ///   the most it may name.
    public init(body: JSON, timeoutSeconds: Double) throws(APIError) {
        guard case .object(let fields) = body else { throw APIError.invalid(nil, "the body must be a JSON object") }

        guard let modelValue = fields["model"] else { throw APIError.missing("model") }
        guard let model = modelValue.stringValue else { throw APIError.invalid("model", "'model' must be a string: a strategy spec such as greedy or self-consistency:k=8") }
        self.model = model
        do {
            spec = try StrategySpec(parsing: model)
        } catch {
            throw APIError.invalid("model", "'model' is a strategy spec, NAME[:KEY=VALUE,...][@BUDGET]: \(error)")
        }

        problem = try Self.problem(fields["messages"])

        n = 1
        if let value = fields["n"], value != .null {
            guard let count = value.intValue, count >= 1, count <= Self.maxChoices else {
                throw APIError.invalid("n", "'n' must be an integer in [1, \(Self.maxChoices)]: the top n of the strategy's candidates")
            }
            n = Int(count)
        }
        stream = false
        if let value = fields["stream"], value != .null {
            guard let flag = value.boolValue else { throw APIError.invalid("stream", "'stream' must be a boolean") }
            stream = flag
        }
        includeUsage = false
        if let value = fields["stream_options"], value != .null {
            guard case .object(let options) = value else { throw APIError.invalid("stream_options", "'stream_options' must be an object") }
            if let include = options["include_usage"], include != .null {
                guard let flag = include.boolValue else {
                    throw APIError.invalid("stream_options.include_usage", "'stream_options.include_usage' must be a boolean")
                }
                includeUsage = flag
            }
        }
        try Self.refuseUnhonoured(fields)

        // strategyd's own fields: params and budget beside those the spec gives.
        var params = spec.params
        var budget = spec.budget
        var origins: [String: String] = [:]
        for key in params.keys { origins["params.\(key)"] = "model" }
        for key in budget.keys { origins["budget.\(key)"] = "model" }
        if let value = fields["strategyd"], value != .null {
            guard case .object(let extensionFields) = value else {
                throw APIError.invalid("strategyd", "'strategyd' must be an object: {\"params\": {...}, \"budget\": {...}}")
            }
            for key in extensionFields.keys.sorted() where key != "params" && key != "budget" {
                throw APIError.invalid("strategyd.\(key)", "'strategyd' takes params and budget, not '\(key)'")
            }
            try Self.merge(extensionFields["params"], into: &params, section: "params", origins: &origins)
            try Self.merge(extensionFields["budget"], into: &budget, section: "budget", origins: &origins)
        }

        // OpenAI's token limits bound the solve's evaluated tokens (all kinds).
        let maxTokens = try Self.positiveInteger(fields, "max_tokens")
        let maxCompletionTokens = try Self.positiveInteger(fields, "max_completion_tokens")
        if let maxTokens, let maxCompletionTokens, maxTokens != maxCompletionTokens {
            throw APIError.invalid("max_tokens", "'max_tokens' and 'max_completion_tokens' differ; send one")
        }
        if let limit = maxCompletionTokens ?? maxTokens {
            let field = maxCompletionTokens != nil ? "max_completion_tokens" : "max_tokens"
            if budget["max_tokens"] != nil {
                throw APIError.invalid(field, "'\(field)' and the budget's max_tokens (\(origins["budget.max_tokens"] ?? "model")) both set the token budget; send one")
            }
            budget["max_tokens"] = .int(limit)
            origins["budget.max_tokens"] = field
        }
        if let given = budget["timeout_s"] {
            guard let seconds = given.doubleValue, seconds.isFinite, seconds > 0, seconds <= timeoutSeconds else {
                throw APIError.invalid(origins["budget.timeout_s"] ?? "strategyd.budget.timeout_s",
                                       "the budget's timeout_s must be a number of seconds in (0, \(timeoutSeconds)], the gateway's request timeout")
            }
        } else {
            budget["timeout_s"] = .double(timeoutSeconds)
        }

        var solve: [String: JSON] = ["problem": .string(problem), "strategy": .string(spec.strategy), "stream": .bool(stream)]
        if !params.isEmpty { solve["params"] = .object(params) }
        solve["budget"] = .object(budget)
        if let value = fields["seed"], value != .null {
            guard let seed = value.intValue, seed >= 0, seed <= Int64(UInt32.max) else {
                throw APIError.invalid("seed", "'seed' must be an integer in [0, 4294967295]")
            }
            solve["seed"] = .int(seed)
            origins["seed"] = "seed"
        }
        self.solve = solve
        self.origins = origins
    }

    /// The request field a daemon param name (`params.n`, `budget.max_tokens`) came from.
    public func field(forDaemonParam name: String) -> String {
        if let origin = origins[name] { return origin }
        if name == "problem" { return "messages" }
        if name == "strategy" { return "model" }
        return name
    }

    /// The solve's timeout: what the HTTP request waits for, before grace.
    public var timeoutSeconds: Double { solve["budget"]?["timeout_s"]?.doubleValue ?? 0 }

    /// strategyd.params or strategyd.budget beside what the spec gave; a key in both is refused.
    static func merge(_ value: JSON?, into target: inout [String: JSON], section: String,
                      origins: inout [String: String]) throws(APIError) {
        guard let value, value != .null else { return }
        guard case .object(let members) = value else {
            throw APIError.invalid("strategyd.\(section)", "'strategyd.\(section)' must be an object")
        }
        for (key, member) in members {
            guard target[key] == nil else {
                throw APIError.invalid("strategyd.\(section).\(key)", "'\(key)' is given both by the model spec and by strategyd.\(section)")
            }
            target[key] = member
            origins["\(section).\(key)"] = "strategyd.\(section).\(key)"
        }
    }

    /// The one user message's text. A strategy brings its own system prompt and solves one
    /// problem, so system messages and earlier turns cannot be honoured and are refused.
    static func problem(_ value: JSON?) throws(APIError) -> String {
        guard let value else { throw APIError.missing("messages") }
        guard case .array(let messages) = value, !messages.isEmpty else {
            throw APIError.invalid("messages", "'messages' must be a non-empty array")
        }
        guard messages.count == 1 else {
            throw APIError.invalid("messages", "strategyd solves one problem per request: send it as the only message, with role user (a strategy brings its own system prompt; earlier turns cannot be honoured)")
        }
        guard case .object(let message) = messages[0] else { throw APIError.invalid("messages[0]", "a message must be an object") }
        guard message["role"]?.stringValue == "user" else {
            throw APIError.invalid("messages[0].role", "the message must have role user: it is the problem (a strategy brings its own system prompt)")
        }
        let text: String
        switch message["content"] {
        case .string(let content)?:
            text = content
        case .array(let parts)?:
            var pieces: [String] = []
            for (index, part) in parts.enumerated() {
                guard part["type"]?.stringValue == "text", let piece = part["text"]?.stringValue else {
                    throw APIError.invalid("messages[0].content[\(index)]", "only text content parts are taken")
                }
                pieces.append(piece)
            }
            text = pieces.joined(separator: "\n")
        case nil:
            throw APIError.missing("messages[0].content")
        default:
            throw APIError.invalid("messages[0].content", "the content must be a string or an array of text parts")
        }
        guard !text.isEmpty else { throw APIError.invalid("messages[0].content", "the problem is empty") }
        return text
    }

    /// Fields whose meaning a strategy cannot honour are refused rather than dropped.
    static func refuseUnhonoured(_ fields: [String: JSON]) throws(APIError) {
        for key in ["tools", "functions"] {
            if let value = fields[key], value != .null, value != .array([]) {
                throw APIError.invalid(key, "strategies do not call tools")
            }
        }
        for key in ["tool_choice", "function_call"] {
            if let value = fields[key], value != .null, value != .string("none"), value != .string("auto") {
                throw APIError.invalid(key, "strategies do not call tools")
            }
        }
        if let value = fields["logprobs"], value == .bool(true) {
            throw APIError.invalid("logprobs", "log-probabilities of a strategy's answer are not returned (the extension's metrics and candidates' scores are)")
        }
        if let value = fields["response_format"], value != .null {
            guard value["type"]?.stringValue == "text" else {
                throw APIError.invalid("response_format", "only {\"type\": \"text\"}: a strategy's answer is a worked solution")
            }
        }
        for key in ["audio", "modalities", "prediction", "web_search_options"] {
            if let value = fields[key], value != .null, value != .array([.string("text")]) {
                throw APIError.invalid(key, "'\(key)' is not supported: strategies answer in text")
            }
        }
    }

    static func positiveInteger(_ fields: [String: JSON], _ key: String) throws(APIError) -> Int64? {
        guard let value = fields[key], value != .null else { return nil }
        guard let number = value.intValue, number >= 1 else {
            throw APIError.invalid(key, "'\(key)' must be a positive integer")
        }
        return number
    }
}

/// A solve's result as a chat completion: the chosen solution is choice 0, the strategy's
/// other candidates follow (most votes first) up to `n`; `usage` counts as OpenAI does and
/// the `strategyd` extension carries the whole accounting.
public struct ChatCompletion: Sendable {
    public let id: String
    public let created: Int
    public let model: String

    public init(model: String) {
        id = "chatcmpl-" + (0..<24).map { _ in String("0123456789abcdefghijklmnopqrstuvwxyz".randomElement()!) }.joined()
        created = Int(Date().timeIntervalSince1970)
        self.model = model
    }

    public struct Choice: Sendable, Equatable {
        public var text: String
        /// The candidate's answer, score and tally, where the strategy gave them.
        public var details: JSON
    }

    public static func choices(of result: JSON, n: Int) -> [Choice] {
        let text = result["text"]?.stringValue ?? ""
        let candidates = result["candidates"]?.arrayValue ?? []
        func details(_ candidate: JSON?) -> JSON {
            var object: [String: JSON] = ["answer": candidate?["answer"] ?? result["answer"] ?? .null]
            for key in ["score", "votes", "vote_weight"] { if let value = candidate?[key] { object[key] = value } }
            return .object(object)
        }
        let chosenIndex = candidates.firstIndex { $0["text"]?.stringValue == text }
        var choices = [Choice(text: text, details: details(chosenIndex.map { candidates[$0] }))]
        let others = candidates.indices.filter { $0 != chosenIndex }.sorted { a, b in
            let (x, y) = (candidates[a], candidates[b])
            let keys = [("votes", 0.0), ("vote_weight", 0.0), ("score", -Double.infinity)]
            for (key, absent) in keys {
                let (u, v) = (x[key]?.doubleValue ?? absent, y[key]?.doubleValue ?? absent)
                if u != v { return u > v }
            }
            return a < b
        }
        for index in others.prefix(max(0, n - 1)) {
            choices.append(Choice(text: candidates[index]["text"]?.stringValue ?? "", details: details(candidates[index])))
        }
        return choices
    }

    public static func finishReason(_ result: JSON) -> String {
        result["budget_exhausted"] == .bool(true) ? "length" : "stop"
    }

    /// prompt, completion (generated and thought) and total tokens, as OpenAI counts them;
    /// thought tokens are also the reasoning tokens, tokens the prompt cache lent the cached ones.
    public static func usage(_ result: JSON) -> JSON {
        let metrics = result["metrics"]
        func count(_ key: String) -> Int64 { metrics?[key]?.intValue ?? 0 }
        let prompt = count("prompt_tokens")
        let completion = count("generated_tokens") + count("thought_tokens")
        return [
            "prompt_tokens": .int(prompt), "completion_tokens": .int(completion), "total_tokens": .int(prompt + completion),
            "prompt_tokens_details": ["cached_tokens": .int(count("cached_tokens"))],
            "completion_tokens_details": ["reasoning_tokens": .int(count("thought_tokens"))],
        ]
    }

    /// The solve's own account: answer, strategy, metrics (FLOPs, scorer tokens, wall time),
    /// why it stopped, and the strategy's details.
    public static func strategydExtension(_ result: JSON) -> JSON {
        var object: [String: JSON] = [:]
        for key in ["answer", "strategy", "metrics", "budget_exhausted", "stopped_by", "details"] {
            object[key] = result[key] ?? .null
        }
        return .object(object)
    }

    public func completion(_ result: JSON, n: Int) -> JSON {
        let finish = Self.finishReason(result)
        let choices = Self.choices(of: result, n: n).enumerated().map { index, choice -> JSON in
            ["index": JSON(index), "message": ["role": "assistant", "content": .string(choice.text), "refusal": .null],
             "logprobs": .null, "finish_reason": .string(finish), "strategyd": choice.details]
        }
        return [
            "id": .string(id), "object": "chat.completion", "created": JSON(created), "model": .string(model),
            "choices": .array(choices), "usage": Self.usage(result), "strategyd": Self.strategydExtension(result),
        ]
    }

    /// One `chat.completion.chunk` of a stream.
    public func chunk(_ choices: [JSON], extra: [String: JSON] = [:]) -> JSON {
        var object: [String: JSON] = [
            "id": .string(id), "object": "chat.completion.chunk", "created": JSON(created), "model": .string(model),
            "choices": .array(choices),
        ]
        object.merge(extra) { $1 }
        return .object(object)
    }

    public static func delta(_ index: Int, _ delta: JSON, finish: String? = nil, extra: [String: JSON] = [:]) -> JSON {
        var object: [String: JSON] = ["index": JSON(index), "delta": delta, "logprobs": .null, "finish_reason": JSON(finish)]
        object.merge(extra) { $1 }
        return .object(object)
    }
}
