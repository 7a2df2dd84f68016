import ArgumentParser
import Foundation
import Gateway
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import RPC
import ServiceLifecycle
import Systemd
#if canImport(Glibc)
import Glibc
#endif

/// strategyd-gateway: the OpenAI-compatible HTTP face of a running strategyd
/// (docs/gateway.md). A thin forwarder: every request becomes calls on the daemon's socket.
@main
struct StrategydGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "strategyd-gateway",
        abstract: "Serve strategyd over an OpenAI-compatible HTTP API (chat completions, models, metrics, health).",
        discussion: "Docs: docs/gateway.md. Without --api-key-file it listens only on loopback or a Unix socket.")

    struct Bounds<Value: Comparable & Sendable>: Sendable {
        let defaultValue: Value
        let range: ClosedRange<Value>
    }

    static let defaultListen = "127.0.0.1:8090"
    static let bodyBytes = Bounds(defaultValue: 1 << 20, range: 1024...(64 << 20))
    // The daemon's default and largest solve timeouts (--default-timeout, --max-timeout).
    static let requestTimeout = Bounds(defaultValue: 600.0, range: 1.0...3600.0)
    static let connections = Bounds(defaultValue: 256, range: 1...65536)
    /// What a request in flight gets after SIGTERM, within the unit's TimeoutStopSec (30 s).
    static let shutdownGraceSeconds: Int64 = 10

    @Option(help: "HOST:PORT ([ADDRESS]:PORT for IPv6), or a Unix socket path (starting with / or .).")
    var listen = defaultListen

    @Option(help: "strategyd's socket. Default: $STRATEGYD_SOCKET, else $XDG_RUNTIME_DIR/strategyd/strategyd.sock, else /run/strategyd/strategyd.sock.")
    var socket: String?

    @Option(help: "A file whose first line is the key clients must send as 'Authorization: Bearer KEY' (every route but /health). Required to listen beyond loopback.")
    var apiKeyFile: String?

    @Option(help: "Largest request body in bytes (\(bodyBytes.range)).")
    var maxBodyBytes = bodyBytes.defaultValue

    @Option(help: "Seconds a chat completion may take, its solve's timeout_s when it names none (\(requestTimeout.range)); keep it at most strategyd's --max-timeout.")
    var requestTimeout = requestTimeout.defaultValue

    @Option(help: "Open HTTP connections; more wait to be accepted (\(connections.range)).")
    var maxConnections = connections.defaultValue

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
        func check<T: Comparable>(_ value: T, _ bounds: Bounds<T>, _ flag: String) throws {
            guard bounds.range.contains(value) else { throw ValidationError("--\(flag) must be in \(bounds.range), got \(value)") }
        }
        try check(maxBodyBytes, Self.bodyBytes, "max-body-bytes")
        try check(requestTimeout, Self.requestTimeout, "request-timeout")
        try check(maxConnections, Self.connections, "max-connections")
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: no level \(logLevel)") }
        let address = try Listen(listen)
        if apiKeyFile == nil, !address.isLocal {
            throw ValidationError("--listen \(listen) is not a loopback address: give --api-key-file, so that only clients with the key are served")
        }
    }

    func run() async throws {
        let logger = {
            var logger = Logger(label: "strategyd-gateway")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            return logger
        }()
        let apiKey = try apiKeyFile.map(Self.readKey)
        let address = try Listen(listen)
        let socketPath = SocketPath.resolve(socket)
        let gateway = Gateway(daemon: DaemonLink(socketPath: socketPath),
                              options: GatewayOptions(apiKey: apiKey, maxBodyBytes: maxBodyBytes, requestTimeoutSeconds: requestTimeout))
        // A Unix socket the gateway creates is for its user and group only.
        umask(0o007)
        let app = Application(
            router: gateway.router(),
            configuration: ApplicationConfiguration(address: address.bindAddress, serverName: "strategyd-gateway",
                                                    availableConnectionsDelegate: MaximumAvailableConnections(maxConnections)),
            onServerRunning: { channel in
                let local = channel.localAddress.map { "\($0)" } ?? listen
                logger.info("serving", metadata: ["listen": "\(local)", "daemon": "\(socketPath)"])
                SystemdNotifier.notify("READY=1\nSTATUS=serving \(local) for \(socketPath)")
            },
            logger: logger)
        // SIGTERM or SIGINT: stop accepting, give requests in flight `shutdownGraceSeconds` to
        // finish, then cancel them (their solves end with their connections).
        var group = ServiceGroupConfiguration(services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint],
                                              logger: logger)
        group.maximumGracefulShutdownDuration = .seconds(Self.shutdownGraceSeconds)
        group.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: group).run()
        SystemdNotifier.notify("STOPPING=1")
    }

    /// The key: the file's first line. A file others may read is refused: the key would not be secret.
    static func readKey(_ path: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ValidationError("--api-key-file \(path): \(String(cString: strerror(errno)))") }
        guard info.st_mode & 0o004 == 0 else {
            throw ValidationError("--api-key-file \(path) is readable by every user; chmod o-r it")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("--api-key-file \(path) cannot be read as UTF-8 text")
        }
        let key = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard key.utf8.count >= 16 else { throw ValidationError("--api-key-file \(path): the key must have at least 16 characters") }
        return key
    }
}

/// --listen: HOST:PORT, [IPv6]:PORT, or a Unix socket path.
struct Listen {
    let bindAddress: BindAddress
    let isLocal: Bool

    init(_ text: String) throws {
        if text.hasPrefix("/") || text.hasPrefix(".") {
            bindAddress = .unixDomainSocket(path: text)
            isLocal = true
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen \(text): expected HOST:PORT, [ADDRESS]:PORT or a socket path")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ValidationError("--listen \(text): no host") }
        bindAddress = .hostname(host, port: port)
        isLocal = Self.isLoopback(host)
    }

    /// `localhost`, or an IP literal in 127.0.0.0/8 or ::1: a name that merely starts with
    /// "127." could resolve anywhere.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
        }
        return false
    }
}
