import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking JSON-RPC client over a Unix socket, for strategyctl and the tests:
/// one request at a time, notifications handed to a callback as they arrive.
public final class RPCClient {
    public enum Failure: Error, CustomStringConvertible {
        case notRunning(path: String, reason: String)
        case connectionLost
        case protocolViolation(String)

        public var description: String {
            switch self {
            case .notRunning(let path, let reason):
                return "strategyd is not running at \(path) (\(reason)); start it with `strategyd --model NAME` or set STRATEGYD_SOCKET"
            case .connectionLost: return "the connection to strategyd was lost"
            case .protocolViolation(let detail): return "strategyd sent something unexpected: \(detail)"
            }
        }
    }

    private let fd: Int32
    private var buffer: [UInt8] = []
    private var nextID: Int64 = 1

    public init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            close(fd)
            throw Failure.notRunning(path: path, reason: "path too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure.notRunning(path: path, reason: reason)
        }
    }

    deinit { close(fd) }

    /// Sends raw bytes (tests use this for malformed input).
    public func sendRaw(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw Failure.connectionLost }
            offset += written
        }
    }

    /// Reads the next message (one line). Throws connectionLost on EOF.
    public func readMessage() throws -> JSON {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                do {
                    return try line.withUnsafeBytes { try JSON.parse($0) }
                } catch {
                    throw Failure.protocolViolation("\(error)")
                }
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw Failure.connectionLost }
            buffer += chunk[..<count]
        }
    }

    /// Calls a method and waits for its response, passing notifications to `onNotification`.
    /// Returns the result, or the error object as an RPCError.
    public func call(_ method: String, _ params: JSON? = nil,
                     onNotification: (JSON) -> Void = { _ in }) throws -> Result<JSON, RPCError> {
        let id = nextID
        nextID += 1
        var request: [String: JSON] = ["jsonrpc": "2.0", "id": .int(id), "method": .string(method)]
        if let params { request["params"] = params }
        try sendRaw(Array((JSON.object(request).serialized() + "\n").utf8))
        while true {
            let message = try readMessage()
            if message["id"] == nil, message["method"] != nil {
                onNotification(message)
                continue
            }
            guard message["id"] == .int(id) else { continue }
            if let error = message["error"] {
                return .failure(RPCError(Int(error["code"]?.intValue ?? 0), error["message"]?.stringValue ?? "",
                                         data: error["data"]))
            }
            return .success(message["result"] ?? .null)
        }
    }
}
