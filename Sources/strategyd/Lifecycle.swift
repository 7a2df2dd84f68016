import Foundation
import Logging
import Systemd
#if canImport(Glibc)
import Glibc
#endif

/// A long-running part of the daemon, after swift-service-lifecycle's Service: `run()`
/// blocks until `shutdown(grace:)` asks it to finish.
protocol Service: AnyObject, Sendable {
    var name: String { get }
    func run()
    /// Begin a graceful stop; `run()` returns once it is done.
    func shutdown(graceSeconds: Double)
}

/// Runs services on their own threads and owns the process's signals: SIGTERM and SIGINT
/// shut every service down gracefully (in reverse start order), SIGHUP calls `onReload`.
final class ServiceGroup: @unchecked Sendable {
    private let services: [Service]
    private let logger: Logger
    private let graceSeconds: Double
    private let onReload: @Sendable () -> Void
    private let done = DispatchGroup()
    private let shutdownOnce = NSLock()
    private var shuttingDown = false

    init(services: [Service], graceSeconds: Double, logger: Logger, onReload: @escaping @Sendable () -> Void) {
        self.services = services
        self.graceSeconds = graceSeconds
        self.logger = logger
        self.onReload = onReload
    }

    /// Blocks until every service's run() has returned. `ServiceGroup.blockSignals()` must
    /// have run first, on the main thread, before any other thread was started.
    func run() {
        startSignalThread()
        for service in services {
            done.enter()
            let thread = Thread { [done] in
                service.run()
                done.leave()
            }
            thread.name = "strategyd-\(service.name)"
            thread.start()
        }
        done.wait()
    }

    func shutdown(reason: String) {
        let first = shutdownOnce.withLock { () -> Bool in
            defer { shuttingDown = true }
            return !shuttingDown
        }
        guard first else { return }
        logger.info("shutting down", metadata: ["reason": "\(reason)", "grace_s": "\(graceSeconds)"])
        SystemdNotifier.notify("STOPPING=1\nSTATUS=stopping (\(reason))")
        for service in services.reversed() { service.shutdown(graceSeconds: graceSeconds) }
    }

    private static let handledSignals: [(Int32, String)] = [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT"), (SIGHUP, "SIGHUP")]

    private static var handledSet: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for (number, _) in handledSignals { sigaddset(&set, number) }
        return set
    }

    /// Blocks SIGTERM, SIGINT and SIGHUP in this thread and every thread it later starts
    /// (llama.cpp's, Dispatch's), so they stay pending until the signal thread takes them:
    /// a signal sent while the model loads, or just after READY, is never lost. (A
    /// DispatchSource registers asynchronously; a SIGTERM in that window would be dropped.)
    static func blockSignals() {
        var set = handledSet
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    private func startSignalThread() {
        let thread = Thread { [self] in
            var set = Self.handledSet
            while true {
                var number: Int32 = 0
                guard sigwait(&set, &number) == 0 else { continue }
                if number == SIGHUP {
                    onReload()
                } else {
                    let name = Self.handledSignals.first { $0.0 == number }?.1 ?? "signal \(number)"
                    // Shutdown drains solves for up to the grace period; keep taking signals meanwhile.
                    Thread { self.shutdown(reason: name) }.start()
                }
            }
        }
        thread.name = "strategyd-signals"
        thread.start()
    }
}
