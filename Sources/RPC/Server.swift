import Foundation
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Who is at the other end of a connection (SO_PEERCRED).
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

extension PeerCredentials {
    /// Whether a peer may administer the daemon (load code into it): root or the daemon's
    /// own user. A peer whose credentials could not be read (nil) may not.
    public static func mayAdminister(_ peer: PeerCredentials?, daemonUser: uid_t = getuid()) -> Bool {
        guard let peer else { return false }
        return peer.uid == 0 || peer.uid == daemonUser
    }
}

/// struct ucred of <sys/socket.h> (hidden behind _GNU_SOURCE from Swift): the layout
/// SO_PEERCRED fills on Linux.
private struct LinuxPeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Handles the requests of every connection. `handle` is called in order for each
/// connection's requests, on a thread of that connection's (never an event loop); it must
/// call `reply` exactly once for a request with an id (not for notifications), from any
/// thread, now or later — so a slow method does not hold up the requests pipelined
/// behind it.
public protocol RPCHandler: AnyObject, Sendable {
    func handle(_ request: Request, on connection: Connection, reply: @escaping @Sendable (Result<JSON, RPCError>) -> Void)
    func connectionClosed(_ connection: Connection)
}

/// One client connection. Sends are thread-safe; a send to a closed connection is dropped.
public final class Connection: @unchecked Sendable {
    public let id: Int
    /// nil when the kernel could not say who connected: such a peer is nobody, never admin.
    public let peer: PeerCredentials?
    private let channel: Channel
    private let maxReplyBytes: Int
    /// Requests are handled here, one after another, off the event loop.
    fileprivate let queue: DispatchQueue

    fileprivate init(id: Int, channel: Channel, peer: PeerCredentials?, maxReplyBytes: Int) {
        self.id = id
        self.channel = channel
        self.peer = peer
        self.maxReplyBytes = maxReplyBytes
        queue = DispatchQueue(label: "strategyd-connection-\(id)")
    }

    /// Sends one message as a line. A response longer than the reply limit goes out as
    /// that limit's error for the same id, a notification that long not at all. Returns
    /// false if the connection is gone.
    @discardableResult
    public func send(_ message: JSON) -> Bool {
        let line = message.serialized()
        if line.utf8.count > maxReplyBytes {
            guard let id = message.objectValue?["id"] else { return channel.isActive }
            return sendLine(Message.response(id: id, error: .replyTooLarge(line.utf8.count, limit: maxReplyBytes)).serialized())
        }
        return sendLine(line)
    }

    /// Sends serialized JSON as one line.
    fileprivate func sendLine(_ line: String) -> Bool {
        guard channel.isActive else { return false }
        channel.writeAndFlush(Connection.frame(line, allocator: channel.allocator), promise: nil)
        return true
    }

    /// Serialized JSON as the protocol's line.
    fileprivate static func frame(_ line: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: line.utf8.count + 1)
        buffer.writeString(line)
        buffer.writeInteger(UInt8(ascii: "\n"))
        return buffer
    }

    /// The replies of a batch, each under the reply limit's share still free (answered
    /// with that limit's error where it does not fit), as one line.
    fileprivate func sendBatch(_ responses: [JSON]) {
        var budget = maxReplyBytes
        let lines = responses.map { response -> String in
            let line = response.serialized()
            if line.utf8.count + 1 <= budget {
                budget -= line.utf8.count + 1
                return line
            }
            let refusal = Message.response(id: response.objectValue?["id"] ?? .null,
                                           error: .replyTooLarge(line.utf8.count, limit: max(budget, 0))).serialized()
            budget -= refusal.utf8.count + 1
            return refusal
        }
        _ = sendLine("[" + lines.joined(separator: ",") + "]")
    }

    /// Closes once what was sent before has been written (or the peer is gone).
    func closeAfterWrites() -> EventLoopFuture<Void> {
        let channel = channel
        channel.writeAndFlush(channel.allocator.buffer(capacity: 0)).whenComplete { _ in channel.close(promise: nil) }
        return channel.closeFuture
    }
}

public struct ServerOptions: Sendable {
    /// A request line longer than this gets -32600 and is skipped.
    public var maxRequestBytes = 1 << 20
    /// Elements of one batch; a longer batch is refused whole.
    public var maxBatchElements = 64
    /// Bytes of one reply line (a batch's replies together).
    public var maxReplyBytes = 16 << 20
    /// Connections open at once; one more gets an error line and is closed.
    public var maxConnections = 256
    /// Mode of the socket file when the server creates it.
    public var socketMode: mode_t = 0o660
    /// A client that leaves this long unread what the daemon has to send is disconnected.
    public var sendTimeoutSeconds = 30

    public init() {}
}

/// A JSON-RPC 2.0 server on a Unix stream socket. SwiftNIO's event loop reads and writes
/// every connection (an idle connection costs no thread); each connection's requests are
/// handled in order on a serial queue of its own, and the connection is read no further
/// while `maxQueuedLines` of its requests wait there.
public final class UnixSocketServer: @unchecked Sendable {
    public enum SetupError: Error, CustomStringConvertible {
        case socket(String)
        public var description: String { switch self { case .socket(let message): return message } }
    }

    public let path: String
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let connections: ConnectionSet
    private let serverChannel: Channel
    private let ownsSocketFile: Bool
    private let stopOnce = NSLock()
    private var stopping = false

    /// Listens on `path`, or adopts an already listening descriptor (systemd socket
    /// activation), in which case the socket file belongs to systemd.
    public init(path: String, inheritedDescriptor: Int32? = nil, options: ServerOptions, handler: RPCHandler) throws {
        self.path = path
        let descriptor: Int32
        if let inherited = inheritedDescriptor {
            descriptor = inherited
            ownsSocketFile = false
        } else {
            descriptor = try UnixSocketServer.listen(path: path, mode: options.socketMode)
            ownsSocketFile = true
        }
        let connections = ConnectionSet(options: options, handler: handler)
        self.connections = connections
        do {
            serverChannel = try ServerBootstrap(group: group)
                .childChannelOption(.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(low: 256 << 10, high: 1 << 20))
                .childChannelInitializer { channel in connections.accept(channel) }
                .withBoundSocket(descriptor)
                .wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw SetupError.socket("listen: \(error)")
        }
    }

    private static func listen(path: String, mode: mode_t) throws -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            throw SetupError.socket("socket path too long (\(path.utf8.count) bytes, at most \(capacity - 1)): \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SetupError.socket("socket: \(String(cString: strerror(errno)))") }
        // A socket file left by a daemon that died is stale if nobody answers on it.
        if access(path, F_OK) == 0 {
            if UnixSocketServer.isAnswering(path) {
                close(fd)
                throw SetupError.socket("another daemon is already listening on \(path)")
            }
            unlink(path)
        }
        // Create the file with the final mode: no moment where it is more open.
        let oldMask = umask(~mode & 0o777)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(oldMask)
        guard bound == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw SetupError.socket("bind \(path): \(message)")
        }
        guard chmod(path, mode) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw SetupError.socket("chmod \(path): \(message)")
        }
        // The kernel's own cap on pending connections, so a burst of clients queues.
        guard Glibc.listen(fd, SOMAXCONN) == 0 else {
            close(fd)
            throw SetupError.socket("listen: \(String(cString: strerror(errno)))")
        }
        return fd
    }

    private static func isAnswering(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0
    }

    /// Serves connections until `stopAccepting()`. Blocks.
    public func run() {
        try? serverChannel.closeFuture.wait()
    }

    /// Stops accepting and removes the socket file (if this server created it).
    /// Connections stay open until `closeConnections()`.
    public func stopAccepting() {
        let first: Bool = stopOnce.withLock {
            defer { stopping = true }
            return !stopping
        }
        guard first else { return }
        try? serverChannel.close().wait()
        if ownsSocketFile { unlink(path) }
    }

    public func closeConnections() {
        connections.closeAll()
    }

    /// Connections open now.
    public var openConnections: Int { connections.count }

    deinit {
        try? group.syncShutdownGracefully()
    }
}

/// The open connections, their cap, and the request path of each.
private final class ConnectionSet: @unchecked Sendable {
    let options: ServerOptions
    let handler: RPCHandler
    private let lock = NSLock()
    private var open: [Int: Connection] = [:]
    /// Accepted and not yet closed, with or without a Connection yet.
    private var accepted = 0
    private var nextID = 1

    init(options: ServerOptions, handler: RPCHandler) {
        self.options = options
        self.handler = handler
    }

    /// A new connection (on its event loop): refused with an error line beyond the cap;
    /// otherwise its peer is read and its pipeline built.
    func accept(_ channel: Channel) -> EventLoopFuture<Void> {
        let id: Int? = lock.withLock {
            guard accepted < options.maxConnections else { return nil }
            accepted += 1
            defer { nextID += 1 }
            return nextID
        }
        guard let id else {
            let error = RPCError.limitExceeded("max_connections", "\(options.maxConnections) connections are open",
                                               max: options.maxConnections)
            let line = Connection.frame(Message.response(id: .null, error: error).serialized(), allocator: channel.allocator)
            channel.writeAndFlush(line).whenComplete { _ in channel.close(promise: nil) }
            return channel.eventLoop.makeSucceededVoidFuture()
        }
        channel.closeFuture.whenComplete { [self] _ in
            lock.withLock {
                accepted -= 1
                open[id] = nil
            }
        }
        // SO_PEERCRED, failing closed: a peer the kernel cannot name gets no credentials.
        let credentials: EventLoopFuture<LinuxPeerCredentials> = (channel as? SocketOptionProvider).map {
            $0.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        } ?? channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        return credentials
            .map { Optional(PeerCredentials(pid: $0.pid, uid: $0.uid, gid: $0.gid)) }
            .recover { _ in nil }
            .flatMapThrowing { [self] peer in
                let connection = Connection(id: id, channel: channel, peer: peer, maxReplyBytes: options.maxReplyBytes)
                try channel.pipeline.syncOperations.addHandlers([
                    ByteToMessageHandler(LineFrameDecoder(maxBytes: options.maxRequestBytes)),
                    RequestReader(connection: connection, connections: self, sendTimeout: .seconds(Int64(options.sendTimeoutSeconds))),
                ])
                lock.withLock { open[id] = connection }
            }
    }

    var count: Int { lock.withLock { accepted } }

    func closed(_ connection: Connection) {
        handler.connectionClosed(connection)
    }

    /// Closes every connection once what it was sent is written, waiting at most the
    /// send timeout for clients that do not read.
    func closeAll() {
        let closing = lock.withLock { Array(open.values) }.map { $0.closeAfterWrites() }
        let deadline = Date().addingTimeInterval(TimeInterval(options.sendTimeoutSeconds))
        for future in closing {
            let done = DispatchSemaphore(value: 0)
            future.whenComplete { _ in done.signal() }
            _ = done.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow))
        }
    }

    // MARK: requests (on the connection's queue)

    func process(_ frame: Frame, on connection: Connection) {
        switch frame {
        case .oversized:
            connection.send(Message.response(id: .null, error: RPCError.invalidRequest(
                "request line exceeds \(options.maxRequestBytes) bytes; it is discarded up to its newline")))
        case .line(let line):
            process(line, on: connection)
        }
    }

    private func process(_ line: [UInt8], on connection: Connection) {
        guard line.contains(where: { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0d) }) else { return }
        let parsed: JSON
        do {
            parsed = try line.withUnsafeBytes { try JSON.parse($0) }
        } catch {
            connection.send(Message.response(id: .null, error: .parseError("\(error)")))
            return
        }
        if case .array(let elements) = parsed {
            guard !elements.isEmpty else {
                connection.send(Message.response(id: .null, error: .invalidRequest("empty batch")))
                return
            }
            guard elements.count <= options.maxBatchElements else {
                connection.send(Message.response(id: .null, error: .limitExceeded(
                    "max_batch_elements", "a batch of \(elements.count) elements", max: options.maxBatchElements,
                    found: elements.count)))
                return
            }
            let batch = BatchCollector(expected: elements.count, connection: connection)
            for element in elements { dispatch(element, on: connection, batch: batch) }
        } else {
            dispatch(parsed, on: connection, batch: nil)
        }
    }

    private func dispatch(_ element: JSON, on connection: Connection, batch: BatchCollector?) {
        let deliver: @Sendable (JSON?) -> Void = { message in
            if let batch { batch.add(message) } else if let message { connection.send(message) }
        }
        switch Request.validate(element) {
        case .failure(let failure):
            deliver(Message.response(id: failure.id, error: failure.error))
        case .success(let request):
            guard let id = request.id else {
                deliver(nil)
                handler.handle(request, on: connection) { _ in }
                return
            }
            handler.handle(request, on: connection) { result in
                switch result {
                case .success(let value): deliver(Message.response(id: id, result: value))
                case .failure(let error): deliver(Message.response(id: id, error: error))
                }
            }
        }
    }
}

/// A request line, or the news that one was too long (and is being skipped).
public enum Frame: Sendable {
    case line([UInt8])
    case oversized
}

/// Splits the byte stream at newlines; a line longer than `maxBytes` is reported once and
/// skipped up to its newline without being held.
public struct LineFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame
    let maxBytes: Int
    private var discarding = false

    public init(maxBytes: Int) { self.maxBytes = maxBytes }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        if let newline = view.firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - view.startIndex
            if discarding {
                discarding = false
            } else if length > maxBytes {
                context.fireChannelRead(wrapInboundOut(.oversized))
            } else {
                context.fireChannelRead(wrapInboundOut(.line(Array(view[view.startIndex..<newline]))))
            }
            buffer.moveReaderIndex(forwardBy: length + 1)
            return .continue
        }
        if discarding || buffer.readableBytes > maxBytes {
            if !discarding { context.fireChannelRead(wrapInboundOut(.oversized)) }
            discarding = true
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        }
        return .needMoreData
    }

    /// A last line without its newline is not a request.
    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        return .needMoreData
    }
}

/// Hands each frame to the connection's queue, reads no further while too many wait
/// there or replies wait unsent, and closes a connection that leaves the daemon's replies
/// unread too long.
private final class RequestReader: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Request lines read ahead of the one being handled.
    static let maxQueuedLines = 16

    private let connection: Connection
    private let connections: ConnectionSet
    private let sendTimeout: TimeAmount
    // Event-loop state.
    private var queued = 0
    private var readHeld = false
    private var unwritableClose: Scheduled<Void>?

    init(connection: Connection, connections: ConnectionSet, sendTimeout: TimeAmount) {
        self.connection = connection
        self.connections = connections
        self.sendTimeout = sendTimeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        queued += 1
        let loop = context.eventLoop
        let context = NIOLoopBound(context, eventLoop: loop)
        connection.queue.async { [self, connections, connection] in
            connections.process(frame, on: connection)
            loop.execute { [self] in
                queued -= 1
                if readHeld && queued < Self.maxQueuedLines && context.value.channel.isWritable {
                    readHeld = false
                    context.value.read()
                }
            }
        }
    }

    /// No further reading while 16 requests wait, or while replies wait unsent: a client
    /// that does not read what it asked for is not read either.
    func read(context: ChannelHandlerContext) {
        if queued >= Self.maxQueuedLines || !context.channel.isWritable {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            unwritableClose?.cancel()
            unwritableClose = nil
            if readHeld && queued < Self.maxQueuedLines {
                readHeld = false
                context.read()
            }
        } else if unwritableClose == nil {
            let channel = context.channel
            unwritableClose = context.eventLoop.scheduleTask(in: sendTimeout) { channel.close(promise: nil) }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        unwritableClose?.cancel()
        // After the requests already read: they may still answer (to nobody) first.
        connection.queue.async { [connections, connection] in connections.closed(connection) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Gathers the responses of one batch and sends them together once all are in.
private final class BatchCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var remaining: Int
    private var responses: [JSON] = []
    private let connection: Connection

    init(expected: Int, connection: Connection) {
        remaining = expected
        self.connection = connection
    }

    /// nil stands for a notification: it counts, but adds no response.
    func add(_ response: JSON?) {
        let complete: [JSON]? = lock.withLock {
            if let response { responses.append(response) }
            remaining -= 1
            return remaining == 0 ? responses : nil
        }
        if let complete, !complete.isEmpty { connection.sendBatch(complete) }
    }
}
