// Requests, responses and the handler API are written in JSON values: re-exported so
// that users of RPC need not import the value module too.
@_exported import JSONValue
import CoreMetrics

/// JSON-RPC 2.0 messages: parsing requests, building responses and notifications.
/// The error codes are listed in docs/api.md.
public struct RPCError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var data: JSON?

    public init(_ code: Int, _ message: String, data: JSON? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { "\(message) (\(code))" + (data.map { ": \($0.serialized())" } ?? "") }

    public var json: JSON {
        var object: [String: JSON] = ["code": JSON(code), "message": .string(message)]
        if let data { object["data"] = data }
        return .object(object)
    }

    // The specification's codes.
    public static func parseError(_ detail: String) -> RPCError { RPCError(-32700, "Parse error", data: ["detail": .string(detail)]) }
    public static func invalidRequest(_ detail: String) -> RPCError { RPCError(-32600, "Invalid Request", data: ["detail": .string(detail)]) }
    public static func methodNotFound(_ method: String) -> RPCError { RPCError(-32601, "Method not found", data: ["method": .string(method)]) }
    public static func invalidParams(_ param: String, expected: String) -> RPCError {
        RPCError(-32602, "Invalid params: '\(param)' must be \(expected)", data: ["param": .string(param), "expected": .string(expected)])
    }
    public static func internalError(_ detail: String) -> RPCError { RPCError(-32603, "Internal error", data: ["detail": .string(detail)]) }

    // strategyd's own codes.
    public static let unknownPluginCode = -32000
    public static let pluginFailedCode = -32001
    public static let pluginLoadFailedCode = -32002
    public static let cancelledCode = -32003
    public static let busyCode = -32004
    public static let notPermittedCode = -32005
    public static let engineErrorCode = -32006
    public static let shuttingDownCode = -32007
    /// A cap of the daemon's (status.limits) refuses the request; data names the limit.
    public static let limitExceededCode = -32008

    /// A request refused by a cap, in the daemon's metrics (strategyd_refusals_total{limit}).
    public static func countRefusal(_ limit: String) {
        Counter(label: "strategyd_refusals_total", dimensions: [("limit", limit)]).increment()
    }

    public static func limitExceeded(_ limit: String, _ message: String, max: Int, found: Int? = nil) -> RPCError {
        countRefusal(limit)
        var data: [String: JSON] = ["limit": .string(limit), "max": JSON(max)]
        if let found { data["found"] = JSON(found) }
        return RPCError(limitExceededCode, "Limit exceeded: " + message, data: .object(data))
    }

    public static func replyTooLarge(_ bytes: Int, limit: Int) -> RPCError {
        limitExceeded("max_reply_bytes", "the reply would take \(bytes) bytes, at most \(limit) are sent", max: limit, found: bytes)
    }
}

/// A request element that cannot be served, with the id to answer it under.
public struct Rejection: Error, Sendable {
    public var error: RPCError
    public var id: JSON
}

public struct Request: Sendable {
    /// nil for a notification (no response is sent).
    public var id: JSON?
    public var method: String
    /// An object, an array, or nil when absent.
    public var params: JSON?

    public var isNotification: Bool { id == nil }

    public init(id: JSON?, method: String, params: JSON?) {
        self.id = id
        self.method = method
        self.params = params
    }

    /// Validates one element of a request line. On failure, returns the error and the id
    /// to answer with (null when the id itself could not be read).
    public static func validate(_ value: JSON) -> Result<Request, Rejection> {
        guard case .object(let members) = value else {
            return .failure(Rejection(error: RPCError.invalidRequest("a request is a JSON object"), id: .null))
        }
        var id: JSON?
        if let raw = members["id"] {
            switch raw {
            case .string, .int, .double, .null: id = raw
            default: return .failure(Rejection(error: RPCError.invalidRequest("id must be a string, a number or null"), id: .null))
            }
        }
        let answerID = id ?? .null
        guard members["jsonrpc"] == .string("2.0") else {
            return .failure(Rejection(error: RPCError.invalidRequest("jsonrpc must be \"2.0\""), id: answerID))
        }
        guard case .string(let method)? = members["method"] else {
            return .failure(Rejection(error: RPCError.invalidRequest("method must be a string"), id: answerID))
        }
        if let params = members["params"] {
            switch params {
            case .object, .array: break
            default: return .failure(Rejection(error: RPCError.invalidRequest("params must be an object or an array"), id: answerID))
            }
        }
        return .success(Request(id: id, method: method, params: members["params"]))
    }
}

public enum Message {
    public static func response(id: JSON, result: JSON) -> JSON {
        ["jsonrpc": "2.0", "id": id, "result": result]
    }

    public static func response(id: JSON, error: RPCError) -> JSON {
        ["jsonrpc": "2.0", "id": id, "error": error.json]
    }

    public static func notification(method: String, params: JSON) -> JSON {
        ["jsonrpc": "2.0", "method": .string(method), "params": params]
    }
}
