import Foundation
import HTTPTypes
import Hummingbird
import JSONValue
import NIOCore
import RPC

/// The gateway's limits and key (strategyd-gateway's flags).
public struct GatewayOptions: Sendable {
    public var apiKey: String?
    public var maxBodyBytes: Int
    public var requestTimeoutSeconds: Double

    /// How long after a solve's time budget the gateway still waits for its answer: the
    /// daemon checks budgets between steps, so a solve can overrun by one step.
    public static let graceSeconds = 30.0

    public init(apiKey: String? = nil, maxBodyBytes: Int, requestTimeoutSeconds: Double) {
        self.apiKey = apiKey
        self.maxBodyBytes = maxBodyBytes
        self.requestTimeoutSeconds = requestTimeoutSeconds
    }
}

/// The OpenAI-shaped HTTP face of strategyd (docs/gateway.md): every route is a call on
/// the daemon's socket; the gateway keeps no state of its own.
public struct Gateway: Sendable {
    public let daemon: DaemonLink
    public let options: GatewayOptions

    public init(daemon: DaemonLink, options: GatewayOptions) {
        self.daemon = daemon
        self.options = options
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: OpenAIErrors())
        router.add(middleware: BearerKey(key: options.apiKey))
        router.get("health") { _, _ in try await health() }
        router.get("metrics") { _, _ in try await metrics() }
        router.get("v1/models") { _, _ in try await models() }
        router.get("v1/models/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            return try await model(id)
        }
        router.post("v1/chat/completions") { request, _ in
            // A client that goes away cancels the handler, and so closes the daemon connection,
            // which cancels the solve (a stream notices at its next write instead). Watching
            // the connection ends it after the response: say so, or a client sends its next
            // request on a connection about to close.
            var response: Response
            do {
                response = try await completion(request)
            } catch let error as APIError {
                response = error.response()
            }
            response.headers[.connection] = "close"
            return response
        }
        return router
    }

    /// One chat completion, its handler cancelled if the client leaves.
    func completion(_ request: Request) async throws -> Response {
        let options = self.options
        return try await request.body.consumeWithCancellationOnInboundClose { body in
            let bytes: ByteBuffer
            do {
                bytes = try await body.collect(upTo: options.maxBodyBytes)
            } catch {
                throw APIError.tooLarge("the body is longer than the gateway takes (--max-body-bytes \(options.maxBodyBytes))")
            }
            let json: JSON
            do {
                json = try bytes.withUnsafeReadableBytes { try JSON.parse($0) }
            } catch {
                throw APIError.invalid(nil, "the body is not JSON: \(error)", code: "invalid_json")
            }
            return try await complete(ChatRequest(body: json, timeoutSeconds: options.requestTimeoutSeconds))
        }
    }

    // MARK: routes

    func health() async throws -> Response {
        let status = try await result(of: "status")
        let summary: JSON = [
            "status": "ok",
            "daemon": [
                "version": status["version"] ?? .null, "uptime_s": status["uptime_s"] ?? .null,
                "model": status["model"]?["name"] ?? .null, "solves_in_flight": status["solves_in_flight"] ?? .null,
                "solves_queued": status["solves_queued"] ?? .null,
            ],
        ]
        return summary.response()
    }

    func metrics() async throws -> Response {
        guard let text = try await result(of: "metrics").stringValue else {
            throw APIError(status: 502, "strategyd's metrics are not text", type: "server_error")
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    func models() async throws -> Response {
        let entries = try await modelEntries()
        return (["object": "list", "data": .array(entries)] as JSON).response()
    }

    func model(_ id: String) async throws -> Response {
        guard let entry = try await modelEntries().first(where: { $0["id"]?.stringValue == id }) else {
            throw APIError(status: 404, "no strategy '\(id)' is loaded; GET /v1/models lists them",
                           type: "invalid_request_error", param: "model", code: "model_not_found")
        }
        return entry.response()
    }

    /// The loaded strategies as OpenAI models, each with the resident model in its metadata.
    func modelEntries() async throws -> [JSON] {
        async let plugins = result(of: "plugins.list")
        async let info = result(of: "models.info")
        let (list, resident) = try await (plugins, info)
        let model: JSON = [
            "name": resident["name"] ?? .null, "sha256": resident["sha256"] ?? .null,
            "architecture": resident["architecture"] ?? .null, "parameters": resident["parameters"] ?? .null,
            "context_size": resident["context_size"] ?? .null,
        ]
        let loadedAt = ISO8601DateFormatter()
        loadedAt.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return (list.arrayValue ?? []).filter { $0["kind"]?.stringValue == "strategy" }.map { plugin in
            let created = plugin["loaded_at"]?.stringValue.flatMap { loadedAt.date(from: $0) }?.timeIntervalSince1970 ?? 0
            return [
                "id": plugin["name"] ?? .null, "object": "model", "created": JSON(Int(created)), "owned_by": "strategyd",
                "strategyd": [
                    "version": plugin["version"] ?? .null, "generation": plugin["generation"] ?? .null,
                    "description": plugin["description"] ?? .null, "params_schema": plugin["params_schema"] ?? .null,
                    "model": model,
                ],
            ]
        }
    }

    /// A short call (status, metrics, listings) whose error becomes the HTTP error; a daemon
    /// that does not answer it within `shortCallSeconds` is reported, not waited on.
    func result(of method: String, _ params: JSON? = nil) async throws -> JSON {
        do {
            switch try await daemon.call(method, params, deadline: .now + .seconds(Self.shortCallSeconds)) {
            case .success(let result): return result
            case .failure(let error): throw APIError.from(error)
            }
        } catch let failure as DaemonLink.Failure {
            throw APIError.from(failure)
        }
    }

    static let shortCallSeconds = 30

    // MARK: chat completions

    func complete(_ chat: ChatRequest) async throws -> Response {
        let completion = ChatCompletion(model: chat.model)
        let timeout = chat.timeoutSeconds + GatewayOptions.graceSeconds
        let stream = daemon.messages("solve", .object(chat.solve), deadline: .now + .seconds(timeout))
        let messages = MessageCursor(stream.makeAsyncIterator())
        // The first message decides the status: a solve refused before it starts (unknown
        // strategy, bad params, busy) is an HTTP error even when streaming.
        let first = try await messages.next()
        if case .error(let error) = first { throw APIError.from(error, param: chat.field(forDaemonParam:)) }
        guard chat.stream else {
            var message = first
            while true {
                switch message {
                case .result(let result): return completion.completion(result, n: chat.n).response()
                case .error(let error): throw APIError.from(error, param: chat.field(forDaemonParam:))
                case .notification: message = try await messages.next()
                }
            }
        }
        let body = ResponseBody { writer in
            var message = first
            try await writer.write(Self.event(completion.chunk([ChatCompletion.delta(0, ["role": "assistant", "content": ""])],
                                                                extra: chat.includeUsage ? ["usage": .null] : [:])))
            do {
                while true {
                    switch message {
                    case .notification(var progress):
                        // SSE comments: clients of the OpenAI API skip them; progress readers parse them.
                        if case .object(var members) = progress {
                            members["id"] = nil
                            progress = .object(members)
                        }
                        try await writer.write(ByteBuffer(string: ": progress " + progress.serialized() + "\n\n"))
                        message = try await messages.next()
                        continue
                    case .result(let result):
                        try await writer.write(contentsOf: Self.finalEvents(result, chat: chat, completion: completion))
                    case .error(let error):
                        try await writer.write(Self.event(APIError.from(error, param: chat.field(forDaemonParam:)).json))
                    }
                    break
                }
            } catch let error as APIError {
                try await writer.write(Self.event(error.json))
            } catch let failure as DaemonLink.Failure {
                try await writer.write(Self.event(APIError.from(failure).json))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// The answer as content deltas (one per choice), the finish reasons with the
    /// strategyd extension, usage when asked for, then [DONE].
    static func finalEvents(_ result: JSON, chat: ChatRequest, completion: ChatCompletion) -> [ByteBuffer] {
        let usageNull: [String: JSON] = chat.includeUsage ? ["usage": .null] : [:]
        let choices = ChatCompletion.choices(of: result, n: chat.n)
        var events = choices.enumerated().map { index, choice in
            var delta: [String: JSON] = ["content": .string(choice.text)]
            if index > 0 { delta["role"] = "assistant" }
            return event(completion.chunk([ChatCompletion.delta(index, .object(delta))], extra: usageNull))
        }
        let finish = ChatCompletion.finishReason(result)
        let finishes = choices.enumerated().map { index, choice in
            ChatCompletion.delta(index, [:], finish: finish, extra: ["strategyd": choice.details])
        }
        var extra = usageNull
        extra["strategyd"] = ChatCompletion.strategydExtension(result)
        events.append(event(completion.chunk(finishes, extra: extra)))
        if chat.includeUsage {
            events.append(event(completion.chunk([], extra: ["usage": ChatCompletion.usage(result)])))
        }
        events.append(ByteBuffer(string: "data: [DONE]\n\n"))
        return events
    }

    static func event(_ json: JSON) -> ByteBuffer { ByteBuffer(string: "data: " + json.serialized() + "\n\n") }
}

/// The daemon's messages for one request, read by the handler and then by the response
/// body's writer: one reader at a time, in turn, never at once.
final class MessageCursor: @unchecked Sendable {
    private var iterator: AsyncThrowingStream<DaemonMessage, any Error>.AsyncIterator

    init(_ iterator: AsyncThrowingStream<DaemonMessage, any Error>.AsyncIterator) { self.iterator = iterator }

    func next() async throws -> DaemonMessage {
        do {
            guard let message = try await iterator.next() else { throw APIError.from(DaemonLink.Failure.connectionLost) }
            return message
        } catch let failure as DaemonLink.Failure {
            throw APIError.from(failure)
        }
    }
}

extension APIError {
    static func from(_ failure: DaemonLink.Failure) -> APIError {
        switch failure {
        case .unreachable, .connectionLost: return .unavailable(failure.description)
        case .timedOut:
            return APIError(status: 504, failure.description + " (the solve's timeout_s and \(GatewayOptions.graceSeconds) s of grace)",
                            type: "server_error", code: "timeout")
        case .protocolViolation: return APIError(status: 502, failure.description, type: "server_error", code: "bad_gateway")
        }
    }

    func response() -> Response { json.response(status: status) }
}

extension JSON {
    func response(status: Int = 200) -> Response {
        Response(status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: serialized())))
    }
}

/// Every error leaves in OpenAI's shape: the gateway's own, and the router's (404 for an
/// unknown path).
struct OpenAIErrors<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response()
        } catch let error as any HTTPResponseError {
            let code = error.status.code
            let message = code == 404 ? "no route \(request.method) \(request.uri.path)" : error.status.reasonPhrase
            return APIError(status: code, message, type: code >= 500 ? "server_error" : "invalid_request_error",
                            code: code == 404 ? "not_found" : nil).response()
        } catch {
            return APIError(status: 500, "\(error)", type: "server_error").response()
        }
    }
}

/// Bearer-key auth on every route but /health, compared in constant time.
struct BearerKey<Context: RequestContext>: RouterMiddleware {
    let key: [UInt8]?

    init(key: String?) { self.key = key.map { Array($0.utf8) } }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let key, request.uri.path != "/health" else { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              Self.equal(Array(header.utf8.dropFirst(7)), key) else {
            throw APIError.unauthorized
        }
        return try await next(request, context)
    }

    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<b.count { difference |= (index < a.count ? a[index] : 0) ^ b[index] }
        return difference == 0
    }
}
