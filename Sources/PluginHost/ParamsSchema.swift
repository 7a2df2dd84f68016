import Foundation
import JSONValue

/// A plugin's params schema (see sd_plugin.params_schema): each param's type, default,
/// range and allowed values. The daemon checks requests against it, so plugins receive
/// a complete, well-typed params object, under each param's own name whichever alias
/// the request used.
public struct ParamsSchema: Sendable {
    public struct Param: Sendable {
        /// `path` is for a plugin's settings only: clients never name paths.
        public enum Kind: String, Sendable { case integer, number, boolean, string, object, path }
        public var kind: Kind
        public var defaultValue: JSON
        public var minimum: Double?
        public var maximum: Double?
        public var allowed: [JSON]?
    }

    public let params: [String: Param]
    /// Other accepted names -> the param's own name.
    public let aliases: [String: String]
    /// The schema as the plugin declared it, for plugins.list.
    public let json: JSON

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// `allowPaths`: whether params of type path are allowed (a plugin's settings), or
    /// refused as a bad schema (request params).
    public init(parsing text: String, allowPaths: Bool = false) throws {
        let parsed: JSON
        do { parsed = try JSON.parse(text) } catch { throw Invalid(description: "params_schema is not JSON: \(error)") }
        guard let members = parsed.objectValue else { throw Invalid(description: "params_schema must be a JSON object") }
        var params: [String: Param] = [:]
        for (name, spec) in members {
            guard let kindName = spec["type"]?.stringValue, let kind = Param.Kind(rawValue: kindName) else {
                throw Invalid(description: "param '\(name)': type must be integer, number, boolean, string or object")
            }
            guard kind != .path || allowPaths else {
                throw Invalid(description: "param '\(name)': type path is for settings: a request never names a path")
            }
            guard let defaultValue = spec["default"] else { throw Invalid(description: "param '\(name)' has no default") }
            let param = Param(kind: kind, defaultValue: defaultValue, minimum: spec["minimum"]?.doubleValue,
                              maximum: spec["maximum"]?.doubleValue, allowed: spec["enum"]?.arrayValue)
            if case .failure(let problem) = ParamsSchema.check(defaultValue, against: param) {
                throw Invalid(description: "param '\(name)': its default \(defaultValue.serialized()) is not \(problem.text)")
            }
            params[name] = param
        }
        var aliases: [String: String] = [:]
        for (name, spec) in members {
            guard let names = spec["aliases"] else { continue }
            guard let list = names.arrayValue?.compactMap(\.stringValue), list.count == names.arrayValue?.count else {
                throw Invalid(description: "param '\(name)': aliases must be an array of strings")
            }
            for alias in list {
                guard params[alias] == nil, aliases[alias] == nil else {
                    throw Invalid(description: "param '\(name)': alias '\(alias)' is already a param or an alias")
                }
                aliases[alias] = name
            }
        }
        self.params = params
        self.aliases = aliases
        json = parsed
    }

    /// A params object that does not fit the schema: the offending key (`params.width`)
    /// and what it must be.
    public struct Mismatch: Error, Sendable, Equatable {
        public let param: String
        public let expected: String
    }

    /// The request's params with defaults filled in, or the first offending key. Relative
    /// paths are taken from `base`.
    public func complete(_ given: JSON?, base: URL? = nil) -> Result<JSON, Mismatch> {
        var result: [String: JSON] = params.mapValues(\.defaultValue)
        func resolvePaths() -> [String: JSON] {
            var resolved = result
            for (key, value) in result where params[key]?.kind == .path {
                guard let base, let path = value.stringValue, !path.hasPrefix("/") else { continue }
                resolved[key] = .string(base.appendingPathComponent(path).standardizedFileURL.path)
            }
            return resolved
        }
        guard let given, given != .null else { return .success(.object(resolvePaths())) }
        guard let members = given.objectValue else {
            return .failure(Mismatch(param: "params", expected: "an object"))
        }
        var named: [String: String] = [:]
        for (given, value) in members.sorted(by: { $0.key < $1.key }) {
            let key = aliases[given] ?? given
            if let other = named[key] {
                return .failure(Mismatch(param: "params.\(given)", expected: "absent: '\(other)' already gives the same param, '\(key)'"))
            }
            named[key] = given
            guard let param = params[key] else {
                let known = params.keys.sorted().joined(separator: ", ")
                return .failure(Mismatch(param: "params.\(key)", expected: "one of the plugin's params (\(known.isEmpty ? "none" : known))"))
            }
            switch ParamsSchema.check(value, against: param) {
            case .success(let normalized): result[key] = normalized
            case .failure(let expected): return .failure(Mismatch(param: "params.\(given)", expected: expected.text))
            }
        }
        return .success(.object(resolvePaths()))
    }

    /// The value, normalized (an integral number for an integer param), or what was expected.
    struct Expected: Error {
        let text: String
    }

    static func check(_ value: JSON, against param: Param) -> Result<JSON, Expected> {
        var normalized = value
        var described = (param.kind == .integer ? "an " : "a ") + param.kind.rawValue
        switch param.kind {
        case .integer:
            guard let integer = value.intValue else { return .failure(Expected(text: described + rangeText(param))) }
            normalized = .int(integer)
        case .number:
            guard value.doubleValue != nil else { return .failure(Expected(text: described + rangeText(param))) }
        case .boolean:
            guard value.boolValue != nil else { return .failure(Expected(text: described)) }
        case .string:
            guard value.stringValue != nil else { return .failure(Expected(text: described)) }
        case .path:
            guard let path = value.stringValue, !path.isEmpty, !path.utf8.contains(0) else {
                return .failure(Expected(text: "a path (a non-empty string)"))
            }
        case .object:
            described = "a JSON object"
            switch value {
            case .object: break
            // An object written as a string is read too, so clients that send it as text keep working.
            case .string(let text):
                guard let object = try? JSON.parse(text), object.objectValue != nil else {
                    return .failure(Expected(text: described + " (or one written as a string)"))
                }
                normalized = object
            default: return .failure(Expected(text: described))
            }
        }
        if let number = normalized.doubleValue {
            if let minimum = param.minimum, number < minimum { return .failure(Expected(text: described + rangeText(param))) }
            if let maximum = param.maximum, number > maximum { return .failure(Expected(text: described + rangeText(param))) }
        }
        if let allowed = param.allowed, !allowed.contains(normalized) {
            described += " among " + allowed.map { $0.serialized() }.joined(separator: ", ")
            return .failure(Expected(text: described))
        }
        return .success(normalized)
    }

    private static func rangeText(_ param: Param) -> String {
        switch (param.minimum, param.maximum) {
        case let (low?, high?): return " in [\(format(low)), \(format(high))]"
        case let (low?, nil): return " >= \(format(low))"
        case let (nil, high?): return " <= \(format(high))"
        default: return ""
        }
    }

    private static func format(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
