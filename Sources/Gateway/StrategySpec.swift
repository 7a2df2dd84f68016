import Foundation
import JSONValue

/// A strategy spec, NAME[:KEY=VALUE,...][@BUDGET]: the harness's syntax (strategyd-bench
/// `--strategy`, clients/bench specs.py), which the gateway takes as an OpenAI `model`.
/// Both parsers are held to the same cases (Tests/cases/specs.json).
///
/// Values read as integers, numbers, true/false, else strings; a "quoted" value is a JSON
/// string; a {...} or [...] value is passed on as the JSON text it is. Commas inside
/// braces, brackets or quotes do not split. BUDGET is max_tokens=N,max_flops=F,timeout_s=T.
public struct StrategySpec: Equatable, Sendable {
    public var strategy: String
    public var params: [String: JSON]
    public var budget: [String: JSON]

    public static let budgetKeys = ["max_tokens", "max_flops", "timeout_s"]

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public init(parsing raw: String, defaultBudget: String = "") throws {
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        let pieces = Self.splitTopLevel(text, at: "@")
        guard pieces.count <= 2 else { throw ParseError(message: "spec \(Self.quoted(text)): more than one @BUDGET") }
        let body = pieces[0]
        let budgetText = pieces.count == 2 ? pieces[1] : defaultBudget
        let name: String
        let paramsText: String
        if let colon = body.firstIndex(of: ":") {
            name = String(body[..<colon]).trimmingCharacters(in: .whitespacesAndNewlines)
            paramsText = String(body[body.index(after: colon)...])
        } else {
            name = body.trimmingCharacters(in: .whitespacesAndNewlines)
            paramsText = ""
        }
        guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) else {
            throw ParseError(message: "spec \(Self.quoted(text)): \(Self.quoted(name)) is not a strategy name")
        }
        strategy = name
        let trimmedParams = paramsText.trimmingCharacters(in: .whitespacesAndNewlines)
        params = trimmedParams.isEmpty ? [:] : try Self.assignments(paramsText, what: "spec \(Self.quoted(text))")
        budget = try Self.parseBudget(budgetText)
    }

    static func parseBudget(_ text: String) throws -> [String: JSON] {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return [:] }
        let what = "budget \(quoted(text))"
        let budget = try assignments(text, what: what)
        for (key, value) in budget {
            guard budgetKeys.contains(key) else {
                throw ParseError(message: "\(what): \(key) is not one of \(budgetKeys.joined(separator: ", "))")
            }
            let fits: Bool
            switch value {
            case .int: fits = true
            case .double: fits = key != "max_tokens"
            default: fits = false
            }
            guard fits else {
                throw ParseError(message: "\(what): \(key) must be \(key == "max_tokens" ? "an integer" : "a number")")
            }
        }
        return budget
    }

    static func assignments(_ text: String, what: String) throws -> [String: JSON] {
        var values: [String: JSON] = [:]
        for item in splitTopLevel(text, at: ",") {
            guard let equals = item.firstIndex(of: "=") else {
                throw ParseError(message: "\(what): \(quoted(item.trimmingCharacters(in: .whitespacesAndNewlines))) is not KEY=VALUE")
            }
            let key = String(item[..<equals]).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !key.isEmpty else {
                throw ParseError(message: "\(what): \(quoted(item.trimmingCharacters(in: .whitespacesAndNewlines))) is not KEY=VALUE")
            }
            guard values[key] == nil else { throw ParseError(message: "\(what): \(key) given twice") }
            let raw = String(item[item.index(after: equals)...]).trimmingCharacters(in: .whitespacesAndNewlines)
            do {
                values[key] = try value(raw)
            } catch let error as ParseError {
                throw ParseError(message: "\(what): \(key): \(error.message)")
            }
        }
        return values
    }

    /// One value: integer, number, true/false, a "JSON string", {JSON} or [JSON] kept as
    /// text, or else the string as written.
    static func value(_ raw: String) throws -> JSON {
        if raw.hasPrefix("\"") {
            guard case .string(let string)? = try? JSON.parse(raw) else { throw ParseError(message: "\(raw) is not a JSON string") }
            return .string(string)
        }
        if raw.hasPrefix("{") || raw.hasPrefix("[") {
            // The plugin parses it; a typo is better caught here.
            guard (try? JSON.parse(raw)) != nil else { throw ParseError(message: "\(raw) is not JSON") }
            return .string(raw)
        }
        if raw == "true" || raw == "false" { return .bool(raw == "true") }
        if raw.wholeMatch(of: /[+-]?[0-9]+/) != nil {
            guard let integer = Int64(raw.hasPrefix("+") ? String(raw.dropFirst()) : raw) else {
                throw ParseError(message: "\(raw) is out of the 64-bit integer range")
            }
            return .int(integer)
        }
        if raw.wholeMatch(of: /[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?/) != nil {
            guard let number = Double(raw), number.isFinite else { throw ParseError(message: "\(raw) is not a finite number") }
            return .double(number)
        }
        return .string(raw)
    }

    /// `text` split at `separator`, except inside double quotes, braces and brackets.
    static func splitTopLevel(_ text: String, at separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var depth = 0
        var quoted = false
        var escaped = false
        for character in text {
            if quoted {
                if escaped {
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    quoted = false
                }
            } else if character == "\"" {
                quoted = true
            } else if character == "{" || character == "[" {
                depth += 1
            } else if character == "}" || character == "]" {
                depth -= 1
            } else if character == separator && depth == 0 {
                parts.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        parts.append(current)
        return parts
    }

    /// Python's repr of a string, as the harness's messages show it.
    static func quoted(_ text: String) -> String { "'\(text)'" }
}
