import Foundation

/// The socket path rule shared by strategyd and its clients (docs/api.md, "The socket"):
/// an explicit path, else STRATEGYD_SOCKET, else $XDG_RUNTIME_DIR/strategyd/strategyd.sock,
/// else /run/strategyd/strategyd.sock.
public enum SocketPath {
    public static func resolve(_ explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let fromEnvironment = environment["STRATEGYD_SOCKET"], !fromEnvironment.isEmpty { return fromEnvironment }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/strategyd/strategyd.sock" }
        return "/run/strategyd/strategyd.sock"
    }
}
