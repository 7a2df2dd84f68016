import CJansson
import Foundation

/// A JSON value. Text is parsed and written by jansson; Swift code works on this enum.
/// A module of its own so that the plugin host and the RPC layer share it without the
/// host depending on the protocol.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    public struct ParseError: Error, CustomStringConvertible {
        public let message: String
        public let line: Int
        public let column: Int
        public var description: String { "\(message) at line \(line), column \(column)" }
    }

    /// Parses one JSON text (any value, not only objects and arrays).
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSON {
        var error = json_error_t()
        guard let root = json_loadb(bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count,
                                    Int(JSON_DECODE_ANY | JSON_REJECT_DUPLICATES), &error) else {
            let message = withUnsafeBytes(of: error.text) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            throw ParseError(message: message, line: Int(error.line), column: Int(error.column))
        }
        defer { json_decref(root) }
        return JSON(jansson: root)
    }

    public static func parse(_ text: String) throws -> JSON {
        var text = text
        return try text.withUTF8 { try parse(UnsafeRawBufferPointer($0)) }
    }

    init(jansson value: UnsafeMutablePointer<json_t>) {
        switch value.pointee.type {
        case JSON_OBJECT:
            var object: [String: JSON] = [:]
            var iterator = json_object_iter(value)
            while let current = iterator {
                let key = String(cString: json_object_iter_key(current))
                object[key] = JSON(jansson: json_object_iter_value(current))
                iterator = json_object_iter_next(value, current)
            }
            self = .object(object)
        case JSON_ARRAY:
            self = .array((0..<json_array_size(value)).map { JSON(jansson: json_array_get(value, $0)) })
        case JSON_STRING:
            let bytes = UnsafeRawBufferPointer(start: json_string_value(value), count: json_string_length(value))
            self = .string(String(decoding: bytes, as: UTF8.self))
        case JSON_INTEGER: self = .int(Int64(json_integer_value(value)))
        case JSON_REAL: self = .double(json_real_value(value))
        case JSON_TRUE: self = .bool(true)
        case JSON_FALSE: self = .bool(false)
        default: self = .null
        }
    }

    /// A new jansson value (reference owned by the caller).
    func jansson() -> UnsafeMutablePointer<json_t> {
        switch self {
        case .null: return json_null()
        case .bool(let value): return value ? json_true() : json_false()
        case .int(let value): return json_integer(json_int_t(value))
        case .double(let value): return value.isFinite ? json_real(value) : json_null()
        case .string(let value):
            var value = value
            return value.withUTF8 { json_stringn_nocheck($0.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, $0.count) }
        case .array(let values):
            let array = json_array()!
            for value in values { json_array_append_new(array, value.jansson()) }
            return array
        case .object(let members):
            let object = json_object()!
            for (key, value) in members { json_object_set_new_nocheck(object, key, value.jansson()) }
            return object
        }
    }

    /// Compact JSON text on one line, keys sorted (so output is reproducible).
    public func serialized() -> String {
        let value = jansson()
        defer { json_decref(value) }
        guard let text = json_dumps(value, Int(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)) else { return "null" }
        defer { free(text) }
        return String(decoding: UnsafeRawBufferPointer(start: text, count: strlen(text)), as: UTF8.self)
    }
}

// MARK: convenient access

extension JSON {
    public subscript(key: String) -> JSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let value) = self { return value } else { return nil } }
    public var boolValue: Bool? { if case .bool(let value) = self { return value } else { return nil } }
    public var intValue: Int64? {
        switch self {
        case .int(let value): return value
        case .double(let value) where value.rounded() == value && abs(value) < 9e15: return Int64(value)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return nil
        }
    }
    public var objectValue: [String: JSON]? { if case .object(let value) = self { return value } else { return nil } }
    public var arrayValue: [JSON]? { if case .array(let value) = self { return value } else { return nil } }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSON {
    public init(_ value: Int) { self = .int(Int64(value)) }
    public init(_ value: Double) { self = .double(value) }
    public init(_ value: String?) { self = value.map { .string($0) } ?? .null }
}

extension JSON {
    /// The path ("params.prompt", "problem", "list[2]") and length in bytes of the first
    /// string, key or value, longer than `limit` bytes, if any (keys in sorted order). The
    /// path is spelled only once found: a deep value costs no copies of it on the way.
    public func firstString(longerThan limit: Int) -> (path: String, bytes: Int)? {
        guard let (steps, bytes) = firstLongString(limit) else { return nil }
        var path = ""
        for step in steps.reversed() {
            path += step.hasPrefix("[") || path.isEmpty ? step : "." + step
        }
        return (path.isEmpty ? "params" : path, bytes)
    }

    /// The steps to the string, innermost first.
    private func firstLongString(_ limit: Int) -> (steps: [String], bytes: Int)? {
        switch self {
        case .string(let text):
            return text.utf8.count > limit ? ([], text.utf8.count) : nil
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                if var found = element.firstLongString(limit) {
                    found.steps.append("[\(index)]")
                    return found
                }
            }
        case .object(let members):
            for key in members.keys.sorted() {
                if key.utf8.count > limit { return (["<a key>"], key.utf8.count) }
                if var found = members[key]!.firstLongString(limit) {
                    found.steps.append(key)
                    return found
                }
            }
        case .null, .bool, .int, .double:
            break
        }
        return nil
    }
}
