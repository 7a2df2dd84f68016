import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Who is at the other end of a connection (SO_PEERCRED).
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
}

/// struct ucred of <sys/socket.h> (hidden behind _GNU_SOURCE from Swift): the layout
/// SO_PEERCRED fills on Linux.
private struct LinuxPeerCredentials {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Handles the requests of every connection. `handle` is called on the connection's
/// reader thread, in order; it must call `reply` exactly once for a request with an id
/// (not for notifications), from any thread, now or later — so a slow method does not
/// hold up the requests pipelined behind it.
public protocol RPCHandler: AnyObject, Sendable {
    func handle(_ request: Request, on connection: Connection, reply: @escaping @Sendable (Result<JSON, RPCError>) -> Void)
    func connectionClosed(_ connection: Connection)
}

/// One client connection. Writes are serialized; a write to a closed connection is dropped.
public final class Connection: @unchecked Sendable {
    public let id: Int
    public let peer: PeerCredentials
    private let fd: Int32
    private let writeLock = NSLock()
    private var closed = false

    init(id: Int, fd: Int32, peer: PeerCredentials) {
        self.id = id
        self.fd = fd
        self.peer = peer
    }

    /// Sends one message as a line. Returns false if the connection is gone.
    @discardableResult
    public func send(_ message: JSON) -> Bool {
        var line = Array(message.serialized().utf8)
        line.append(UInt8(ascii: "\n"))
        writeLock.lock(); defer { writeLock.unlock() }
        guard !closed else { return false }
        var offset = 0
        while offset < line.count {
            let written = line[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EINTR { continue }
                // EPIPE, ECONNRESET, or the send timeout of a client that stopped reading.
                shutdownLocked()
                return false
            }
            offset += written
        }
        return true
    }

    func shutdown() {
        writeLock.lock(); defer { writeLock.unlock() }
        shutdownLocked()
    }

    private func shutdownLocked() {
        guard !closed else { return }
        closed = true
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    func closeDescriptor() { close(fd) }
}

public struct ServerOptions: Sendable {
    /// A request line longer than this gets -32600 and is skipped. 1 KiB ... 64 MiB.
    public var maxRequestBytes = 1 << 20
    /// Mode of the socket file when the server creates it.
    public var socketMode: mode_t = 0o660
    /// A client that does not read its responses for this long is disconnected.
    public var sendTimeoutSeconds = 30

    public init() {}
}

/// A JSON-RPC 2.0 server on a Unix stream socket, one thread per connection.
public final class UnixSocketServer: @unchecked Sendable {
    public enum SetupError: Error, CustomStringConvertible {
        case socket(String)
        public var description: String { switch self { case .socket(let message): return message } }
    }

    public let path: String
    private let options: ServerOptions
    private let handler: RPCHandler
    private let listener: Int32
    private let ownsSocketFile: Bool
    private let wakePipe: (read: Int32, write: Int32)
    private let lock = NSLock()
    private var connections: [Int: Connection] = [:]
    private var nextConnectionID = 1
    private var stopping = false

    /// Listens on `path`, or adopts an already listening descriptor (systemd socket
    /// activation), in which case the socket file belongs to systemd.
    public init(path: String, inheritedDescriptor: Int32? = nil, options: ServerOptions, handler: RPCHandler) throws {
        self.path = path
        self.options = options
        self.handler = handler
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SetupError.socket("pipe: \(String(cString: strerror(errno)))") }
        wakePipe = (fds[0], fds[1])
        if let inherited = inheritedDescriptor {
            listener = inherited
            ownsSocketFile = false
            return
        }
        listener = try UnixSocketServer.listen(path: path, mode: options.socketMode)
        ownsSocketFile = true
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
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
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
        chmod(path, mode)
        guard Glibc.listen(fd, 128) == 0 else {
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

    /// Accepts connections until `stopAccepting()`. Blocks.
    public func run() {
        while true {
            var polls = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                         pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&polls, 2, -1)
            if ready < 0 && errno == EINTR { continue }
            if lock.withLock({ stopping }) || polls[1].revents != 0 { return }
            guard polls[0].revents & Int16(POLLIN) != 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            startConnection(client)
        }
    }

    /// Stops accepting and removes the socket file (if this server created it).
    /// Connections stay open until `closeConnections()`.
    public func stopAccepting() {
        let first: Bool = lock.withLock {
            defer { stopping = true }
            return !stopping
        }
        guard first else { return }
        var byte: UInt8 = 1
        _ = write(wakePipe.write, &byte, 1)
        if ownsSocketFile { unlink(path) }
    }

    public func closeConnections() {
        for connection in lock.withLock({ Array(connections.values) }) { connection.shutdown() }
    }

    private func startConnection(_ fd: Int32) {
        var credentials = LinuxPeerCredentials()
        var length = socklen_t(MemoryLayout<LinuxPeerCredentials>.size)
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length)
        var timeout = timeval(tv_sec: options.sendTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connection: Connection = lock.withLock {
            defer { nextConnectionID += 1 }
            let connection = Connection(id: nextConnectionID, fd: fd,
                                        peer: PeerCredentials(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid))
            connections[connection.id] = connection
            return connection
        }
        let thread = Thread { [self] in
            serve(connection, fd: fd)
            lock.withLock { _ = connections.removeValue(forKey: connection.id) }
            connection.shutdown()
            handler.connectionClosed(connection)
            connection.closeDescriptor()
        }
        thread.name = "strategyd-connection-\(connection.id)"
        thread.start()
    }

    /// Reads lines until the peer closes; each complete line is one request or batch.
    private func serve(_ connection: Connection, fd: Int32) {
        var pending: [UInt8] = []
        var discarding = false
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return }
            var start = 0
            for index in 0..<count where chunk[index] == UInt8(ascii: "\n") {
                if discarding {
                    discarding = false
                } else if pending.count + (index - start) > options.maxRequestBytes {
                    rejectOversized(on: connection)
                } else {
                    pending.append(contentsOf: chunk[start..<index])
                    process(pending, on: connection)
                }
                pending.removeAll(keepingCapacity: true)
                start = index + 1
            }
            guard !discarding else { continue }
            pending.append(contentsOf: chunk[start..<count])
            if pending.count > options.maxRequestBytes {
                rejectOversized(on: connection)
                pending.removeAll(keepingCapacity: false)
                discarding = true
            }
        }
    }

    private func rejectOversized(on connection: Connection) {
        connection.send(Message.response(id: .null, error: RPCError.invalidRequest(
            "request line exceeds \(options.maxRequestBytes) bytes; it is discarded up to its newline")))
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
        if let complete, !complete.isEmpty { connection.send(.array(complete)) }
    }
}
