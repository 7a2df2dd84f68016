import CLlama
import Foundation

/// Where a model's layers live: on this host's CPU (the default), or on the devices of
/// llama.cpp RPC servers (`ggml-rpc-server`, one per host), the layers split over them.
/// The token embeddings stay on this host, as llama.cpp keeps them on its CPU.
public struct ModelPlacement: Sendable, Equatable {
    /// RPC servers as HOST:PORT, in the order the layers go to them.
    public var rpcServers: [String]
    /// Each server device's share of the layers (proportions, as llama.cpp's
    /// --tensor-split); empty: in proportion to each device's free memory.
    public var split: [Float]

    public init(rpcServers: [String] = [], split: [Float] = []) {
        self.rpcServers = rpcServers
        self.split = split
    }

    public static let local = ModelPlacement()
    public var isLocal: Bool { rpcServers.isEmpty }

    /// What is wrong with a split, or nil: each share a finite number, not negative, and
    /// not all of them zero.
    public static func splitProblem(_ split: [Float]) -> String? {
        if let bad = split.first(where: { !$0.isFinite || $0 < 0 }) {
            return "'\(String(format: "%g", Double(bad)))' is not a share (a number, not negative)"
        }
        if !split.isEmpty, !split.contains(where: { $0 > 0 }) { return "every share is zero" }
        return nil
    }

    /// HOST:PORT with a port in 1...65535 and an IPv4 address or host name: ggml-rpc cuts an
    /// endpoint at its first ":" and connects over IPv4 only.
    public static func endpoint(_ text: String) -> (host: String, port: UInt16)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = UInt16(parts[1]), port > 0 else { return nil }
        let host = String(parts[0])
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }) else { return nil }
        return (host, port)
    }
}

/// A device holding part of the model, as models.info names it.
public struct DeviceFacts: Sendable, Codable, Equatable {
    public var name: String
    /// The device's own description; for an RPC device, its server's HOST:PORT.
    public var description: String
    /// "cpu" for this host's CPU, "rpc" for a device of an RPC server.
    public var kind: String
    public var memoryTotalBytes: UInt64
    public var memoryFreeBytes: UInt64
    /// This device's share of the layers (the split llama.cpp was given), nil for the CPU.
    public var layerShare: Double?
}

/// llama.cpp's RPC backend, reached through the backend registry as llama.cpp's own tools
/// reach it (common/arg.cpp): the registry hands out `ggml_backend_rpc_add_server`.
enum RemoteDevices {
    /// The devices of each server, in order. ggml-rpc aborts the process when it cannot
    /// connect, so each server is first tried here, over TCP as ggml-rpc will reach it, and
    /// refused with a message. (A server of another protocol version still aborts the
    /// process in ggml-rpc's handshake, with ggml's own message.)
    static func devices(of servers: [String]) throws -> [ggml_backend_dev_t] {
        guard let registry = ggml_backend_reg_by_name("RPC"),
              let address = ggml_backend_reg_get_proc_address(registry, "ggml_backend_rpc_add_server") else {
            throw EngineError.placement(reason: "this llama.cpp build has no RPC backend (scripts/setup builds it with GGML_RPC)")
        }
        typealias AddServer = @convention(c) (UnsafePointer<CChar>?) -> ggml_backend_reg_t?
        let addServer = unsafeBitCast(address, to: AddServer.self)
        var devices: [ggml_backend_dev_t] = []
        for server in servers {
            guard let (host, port) = ModelPlacement.endpoint(server) else {
                throw EngineError.placement(reason: "'\(server)' is not HOST:PORT")
            }
            try probe(host: host, port: port, server: server)
            guard let serverRegistry = server.withCString({ addServer($0) }) else {
                throw EngineError.placement(reason: "the RPC server at \(server) offers no device")
            }
            for index in 0..<ggml_backend_reg_dev_count(serverRegistry) {
                devices.append(ggml_backend_reg_dev_get(serverRegistry, index))
            }
        }
        return devices
    }

    /// A TCP connection to the server's first IPv4 address (the one ggml-rpc takes), opened
    /// and closed, within five seconds.
    private static func probe(host: String, port: UInt16, server: String) throws {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let address = list else {
            throw EngineError.placement(reason: "\(server): cannot resolve \(host): \(String(cString: gai_strerror(resolved)))")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(address.pointee.ai_family, address.pointee.ai_socktype, address.pointee.ai_protocol)
        guard fd >= 0 else { throw EngineError.placement(reason: "\(server): no socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard Glibc.connect(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 else {
            // A connect that outlasts SO_SNDTIMEO fails with EINPROGRESS.
            let reason = errno == EINPROGRESS ? "no answer within 5 s" : String(cString: strerror(errno))
            throw EngineError.placement(reason: "no ggml-rpc-server answers at \(server): \(reason)")
        }
    }

    static func facts(_ device: ggml_backend_dev_t, share: Double?) -> DeviceFacts {
        var free = 0, total = 0
        ggml_backend_dev_memory(device, &free, &total)
        let isRPC = ggml_backend_dev_backend_reg(device) == ggml_backend_reg_by_name("RPC")
        return DeviceFacts(name: String(cString: ggml_backend_dev_name(device)),
                           description: String(cString: ggml_backend_dev_description(device)),
                           kind: isRPC ? "rpc" : "cpu",
                           memoryTotalBytes: UInt64(total), memoryFreeBytes: UInt64(free), layerShare: share)
    }
}
