import JSONValue
import RPC

/// An error in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the
/// HTTP status it is sent under (docs/gateway.md, "Errors").
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(status: Int, _ message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(status) \(code ?? type): \(message)" }

    public var json: JSON {
        ["error": ["message": .string(message), "type": .string(type), "param": JSON(param), "code": JSON(code)]]
    }

    public static func invalid(_ param: String?, _ message: String, code: String = "invalid_value") -> APIError {
        APIError(status: 400, message, type: "invalid_request_error", param: param, code: code)
    }

    public static func missing(_ param: String) -> APIError {
        invalid(param, "'\(param)' is required", code: "missing_required_parameter")
    }

    public static func tooLarge(_ message: String, param: String? = nil) -> APIError {
        APIError(status: 413, message, type: "invalid_request_error", param: param, code: "request_too_large")
    }

    public static let unauthorized = APIError(
        status: 401, "a valid API key is required: send it as 'Authorization: Bearer KEY'",
        type: "invalid_request_error", code: "invalid_api_key")

    public static func unavailable(_ message: String) -> APIError {
        APIError(status: 503, message, type: "server_error", code: "daemon_unavailable")
    }

    /// The daemon's JSON-RPC error as the HTTP error a client of the OpenAI API expects.
    /// `param` turns the daemon's name for a param into the request field it came from.
    public static func from(_ error: RPCError, param: (String) -> String? = { $0 }) -> APIError {
        let detail = error.data?["detail"]?.stringValue.map { ": " + $0 } ?? ""
        switch error.code {
        case RPCError.unknownPluginCode:
            let available = error.data?["available"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ", ") ?? ""
            let name = error.data?["plugin"]?.stringValue ?? "?"
            return APIError(status: 404, "no strategy '\(name)' is loaded (loaded: \(available)); GET /v1/models lists them",
                            type: "invalid_request_error", param: "model", code: "model_not_found")
        case -32602:
            let name = error.data?["param"]?.stringValue ?? ""
            return invalid(param(name), error.message)
        case RPCError.busyCode:
            return APIError(status: 429, "strategyd is busy: \(error.message); retry later",
                            type: "rate_limit_error", code: "busy")
        case RPCError.limitExceededCode:
            switch error.data?["limit"]?.stringValue {
            case "max_solves_per_user", "max_connections":
                return APIError(status: 429, error.message, type: "rate_limit_error", code: "rate_limit_exceeded")
            case "max_string_bytes":
                return tooLarge(error.message, param: "messages")
            default:
                return invalid(nil, error.message, code: "limit_exceeded")
            }
        case RPCError.shuttingDownCode:
            return unavailable("strategyd is shutting down")
        case -32600 where error.data?["detail"]?.stringValue?.contains("bytes") == true:
            return tooLarge("the request is longer than strategyd takes\(detail)")
        default:
            return APIError(status: 500, "strategyd: \(error.message)\(detail)", type: "server_error",
                            code: error.code == RPCError.engineErrorCode ? "engine_error" : "strategy_failed")
        }
    }
}
