import JSONValue
import NIOCore
import NIOPosix
import RPC

/// What the daemon sends back for one call: notifications (a solve's progress), then its
/// result or its error.
public enum DaemonMessage: Sendable {
    case notification(JSON)
    case result(JSON)
    case error(RPCError)
}

/// JSON-RPC calls to strategyd over its Unix socket, on the gateway's event loops. One
/// connection per call: the daemon answers a connection's requests in order and cancels a
/// solve whose connection closes, so an HTTP request that ends (answered, timed out, or its
/// client gone) ends its solve too.
public struct DaemonLink: Sendable {
    public let socketPath: String
    let group: any EventLoopGroup

    public enum Failure: Error, CustomStringConvertible {
        case unreachable(path: String, reason: String)
        case connectionLost
        case timedOut(seconds: Double)
        case protocolViolation(String)

        public var description: String {
            switch self {
            case .unreachable(let path, let reason): return "strategyd is not reachable at \(path) (\(reason))"
            case .connectionLost: return "the connection to strategyd was lost before it answered"
            case .timedOut(let seconds): return "strategyd did not answer within \(seconds) s"
            case .protocolViolation(let detail): return "strategyd sent something unexpected: \(detail)"
            }
        }
    }

    /// No line from the daemon is longer than its largest --max-reply-bytes.
    static let maxLineBytes = 1 << 30

    public init(socketPath: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.socketPath = socketPath
        self.group = group
    }

    /// Sends one request and streams what comes back; the stream ends after the result or
    /// error, and throws a `Failure` if the daemon cannot be reached, goes away, or has not
    /// answered by `deadline`. Ending the iteration early closes the connection.
    public func messages(_ method: String, _ params: JSON? = nil,
                         deadline: ContinuousClock.Instant? = nil) -> AsyncThrowingStream<DaemonMessage, any Error> {
        // The daemon bounds what one call sends (its budgets and --max-reply-bytes), so an
        // unbounded buffer holds at most one solve's progress and reply.
        let (stream, continuation) = AsyncThrowingStream<DaemonMessage, any Error>.makeStream()
        // Whichever ends first (the call, the deadline, the reader) ends the others.
        let call = Task {
            do {
                try await run(method, params) { continuation.yield($0) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        let timer = deadline.map { deadline in
            Task {
                let seconds = Double((deadline - .now).components.seconds)
                guard (try? await Task.sleep(until: deadline, clock: .continuous)) != nil else { return }
                continuation.finish(throwing: Failure.timedOut(seconds: seconds))
            }
        }
        continuation.onTermination = { _ in
            call.cancel()
            timer?.cancel()
        }
        return stream
    }

    /// One call's result or error, skipping notifications.
    public func call(_ method: String, _ params: JSON? = nil,
                     deadline: ContinuousClock.Instant? = nil) async throws -> Result<JSON, RPCError> {
        for try await message in messages(method, params, deadline: deadline) {
            switch message {
            case .notification: continue
            case .result(let result): return .success(result)
            case .error(let error): return .failure(error)
            }
        }
        throw Failure.connectionLost
    }

    private func run(_ method: String, _ params: JSON?, _ deliver: @Sendable (DaemonMessage) -> Void) async throws {
        let channel: NIOAsyncChannel<Frame, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: group).connect(unixDomainSocketPath: socketPath) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maxBytes: Self.maxLineBytes)))
                    return try NIOAsyncChannel<Frame, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        } catch {
            throw Failure.unreachable(path: socketPath, reason: Self.reason(error))
        }
        var request: [String: JSON] = ["jsonrpc": "2.0", "id": 1, "method": .string(method)]
        if let params { request["params"] = params }
        try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: JSON.object(request).serialized() + "\n"))
            for try await frame in inbound {
                try Task.checkCancellation()
                guard case .line(let bytes) = frame else {
                    throw Failure.protocolViolation("a line longer than \(Self.maxLineBytes) bytes")
                }
                let message: JSON
                do {
                    message = try bytes.withUnsafeBytes { try JSON.parse($0) }
                } catch {
                    throw Failure.protocolViolation("\(error)")
                }
                if message["id"] == nil, message["method"] != nil {
                    deliver(.notification(message["params"] ?? .null))
                    continue
                }
                // One request per connection: its answer, or an error about the line itself
                // (which the daemon sends with id null).
                if let error = message["error"], message["id"] == .int(1) || message["id"] == .null {
                    deliver(.error(RPCError(Int(error["code"]?.intValue ?? 0), error["message"]?.stringValue ?? "",
                                            data: error["data"])))
                    return
                }
                if message["id"] == .int(1) {
                    deliver(.result(message["result"] ?? .null))
                    return
                }
            }
            throw Failure.connectionLost
        }
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? IOError { return error.description }
        return "\(error)"
    }
}
