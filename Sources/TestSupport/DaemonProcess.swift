import Foundation
import RPC
#if canImport(Glibc)
import Glibc
#endif

/// A real strategyd started for a test: its own socket and plugin folder in a temporary
/// directory, the test model, stopped (SIGTERM, then SIGKILL) at the end.
public final class DaemonProcess {
    public let folder: URL
    public let socketPath: String
    public let pluginDirectory: URL
    public let process = Process()
    private let logURL: URL

    /// The plugins built into the products folder that are copied in by default.
    public static let builtPlugins = ["greedy", "self-consistency"]

    public init(plugins: [String] = DaemonProcess.builtPlugins, extraArguments: [String] = [],
                environment: [String: String] = [:], prepare: (URL) throws -> Void = { _ in }) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("strategyd-test-\(UUID().uuidString.prefix(8))")
        pluginDirectory = folder.appendingPathComponent("plugins")
        try FileManager.default.createDirectory(at: pluginDirectory, withIntermediateDirectories: true)
        socketPath = folder.appendingPathComponent("s.sock").path
        logURL = folder.appendingPathComponent("daemon.log")
        for plugin in plugins {
            try FileManager.default.copyItem(at: TestAssets.productsFolder.appendingPathComponent("lib\(plugin).so"),
                                             to: pluginDirectory.appendingPathComponent("lib\(plugin).so"))
        }
        try prepare(pluginDirectory)
        let binary = TestAssets.productsFolder.appendingPathComponent("strategyd")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw TestAssets.Missing(path: binary.path) }
        process.executableURL = binary
        process.arguments = ["--model", try TestAssets.model(), "--socket", socketPath, "--plugin-dir", pluginDirectory.path,
                             // One decoding thread: test daemons share 2 cores with each other and the tests.
                             "--context-size", "8192", "--threads", "1", "--log-level", "debug"] + extraArguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "NOTIFY_SOCKET")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try waitUntilAnswering()
    }

    deinit { stop() }

    public var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    private func waitUntilAnswering(timeout: TimeInterval = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard process.isRunning else { throw Failure(message: "strategyd exited early:\n\(log)") }
            if let client = try? RPCClient(path: socketPath), case .success? = try? client.call("ping") { return }
            usleep(50_000)
        }
        throw Failure(message: "strategyd did not answer within \(timeout) s:\n\(log)")
    }

    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public init(message: String) { self.message = message }
        public var description: String { message }
    }

    public func client() throws -> RPCClient { try RPCClient(path: socketPath) }

    /// Calls a method on a new connection and returns its result, failing on an error.
    public func call(_ method: String, _ params: JSON? = nil) throws -> JSON {
        switch try client().call(method, params) {
        case .success(let value): return value
        case .failure(let error): throw error
        }
    }

    /// SIGTERM, and the exit status once it has exited (SIGKILL after `timeout`).
    @discardableResult
    public func stop(timeout: TimeInterval = 30) -> Int32? {
        guard process.isRunning else { return process.processIdentifier == 0 ? nil : process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit(); return nil }
        return process.terminationStatus
    }

    public func removeFolder() { try? FileManager.default.removeItem(at: folder) }
}


/// One daemon for a whole test class: started on first use (again if it died), stopped
/// and its folder removed by `stop()` from the class's `tearDown()`.
public final class SharedDaemon: @unchecked Sendable {
    private let start: () throws -> DaemonProcess
    private var current: DaemonProcess?

    public init(_ start: @escaping () throws -> DaemonProcess) { self.start = start }

    public func get() throws -> DaemonProcess {
        if let current, current.process.isRunning { return current }
        stop()
        let daemon = try start()
        current = daemon
        return daemon
    }

    public func stop() {
        current?.stop()
        current?.removeFolder()
        current = nil
    }
}
