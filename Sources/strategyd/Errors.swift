import PluginHost
import RPC

// The plugin host reports in its own terms; what a client sees of each failure (code,
// message, data) is decided here, once, and listed in docs/api.md.
extension RPCError {
    init(_ mismatch: ParamsSchema.Mismatch) {
        self = .invalidParams(mismatch.param, expected: mismatch.expected)
    }

    init(_ refusal: PluginLoadError) {
        self.init(RPCError.pluginLoadFailedCode, "Plugin load failed: \(refusal.description)", data: refusal.data)
    }

    /// A solve that ended without a result.
    init(_ outcome: SolveOutcome) {
        switch outcome {
        case .success:
            preconditionFailure("a solve with a result is not an error")
        case .cancelled:
            self.init(RPCError.cancelledCode, "Cancelled")
        case .engineError(let reason):
            self.init(RPCError.engineErrorCode, "Engine error: \(reason)", data: ["reason": .string(reason)])
        case .pluginFailed(let plugin, let message, let status):
            self.init(RPCError.pluginFailedCode, "Plugin failed: \(message)",
                      data: ["plugin": .string(plugin), "status": JSON(Int(status))])
        }
    }
}
