import Foundation
@_exported import PluginABI

/// Write a strategyd plugin in plain Swift. A strategy:
///
///     struct Greedy: Strategy {
///         static let name = "greedy"; static let version = "1.0.0"
///         static let description = "..."; static let params: [Param] = [...]
///         init() {}
///         func solve(_ request: Request, problem: String, params: Params) throws -> Solution { ... }
///     }
///     @_cdecl("strategyd_plugin_entry")
///     public func entry() -> UnsafePointer<sd_plugin> { export(Greedy.self) }
///
/// Build it as a dynamic library linked with `-z nodelete` (Package.swift does this for
/// everything under Plugins/): a Swift image must never be unmapped.
public protocol PluginMetadata {
    static var name: String { get }
    static var version: String { get }
    static var description: String { get }
    static var params: [Param] { get }
    init()
}

public protocol Strategy: PluginMetadata, Sendable {
    func solve(_ request: Request, problem: String, params: Params) throws -> Solution
}

public protocol Scorer: PluginMetadata, Sendable {
    /// The score in [0, 1] of a (possibly partial) solution.
    func score(_ request: Request, problem: String, solution: String, params: Params) throws -> Double
    /// Whether `score` with these params reads the log-probabilities the policy gave the
    /// solution's tokens (sd_plugin.reads_logprobs). Strategies then sample with logprobs.
    func readsLogprobs(_ request: Request, params: Params) -> Bool
}

extension Scorer {
    /// Most scorers read only the solution's text.
    public func readsLogprobs(_ request: Request, params: Params) -> Bool { false }
}

/// A declared parameter: the daemon validates requests against these and fills defaults.
public struct Param: Sendable {
    public enum Kind: String, Sendable { case integer, number, boolean, string }
    public var name: String
    public var kind: Kind
    public var defaultValue: any Sendable
    public var minimum: Double?
    public var maximum: Double?
    public var allowed: [String]?
    public var help: String

    public static func integer(_ name: String, _ value: Int, _ range: ClosedRange<Int>, _ help: String) -> Param {
        Param(name: name, kind: .integer, defaultValue: value, minimum: Double(range.lowerBound),
              maximum: Double(range.upperBound), help: help)
    }
    public static func number(_ name: String, _ value: Double, _ range: ClosedRange<Double>, _ help: String) -> Param {
        Param(name: name, kind: .number, defaultValue: value, minimum: range.lowerBound, maximum: range.upperBound, help: help)
    }
    public static func boolean(_ name: String, _ value: Bool, _ help: String) -> Param {
        Param(name: name, kind: .boolean, defaultValue: value, help: help)
    }
    public static func choice(_ name: String, _ value: String, _ allowed: [String], _ help: String) -> Param {
        Param(name: name, kind: .string, defaultValue: value, allowed: allowed, help: help)
    }
    public static func string(_ name: String, _ value: String, _ help: String) -> Param {
        Param(name: name, kind: .string, defaultValue: value, help: help)
    }

    var schemaEntry: [String: Any] {
        var entry: [String: Any] = ["type": kind.rawValue, "default": defaultValue, "description": help]
        if let minimum { entry["minimum"] = minimum }
        if let maximum { entry["maximum"] = maximum }
        if let allowed { entry["enum"] = allowed }
        return entry
    }
}

/// The complete params of a request (the daemon has filled defaults and checked types).
public struct Params: @unchecked Sendable {
    public let values: [String: Any]

    init(json: String) {
        values = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
    }

    public func int(_ key: String) -> Int { (values[key] as? NSNumber)?.intValue ?? 0 }
    public func double(_ key: String) -> Double { (values[key] as? NSNumber)?.doubleValue ?? 0 }
    public func bool(_ key: String) -> Bool { (values[key] as? NSNumber)?.boolValue ?? false }
    public func string(_ key: String) -> String { values[key] as? String ?? "" }
}

/// What a strategy returns.
public struct Solution {
    public struct Candidate {
        public var text: String
        public var answer: String?
        public var score: Double?
        /// The candidate's answer's tally in the strategy's vote (VoteOutcome).
        public var votes: Int?
        public var voteWeight: Double?
        public init(text: String, answer: String?, score: Double? = nil, votes: Int? = nil, voteWeight: Double? = nil) {
            self.text = text
            self.answer = answer
            self.score = score
            self.votes = votes
            self.voteWeight = voteWeight
        }
    }

    public var text: String
    public var answer: String?
    public var candidates: [Candidate]
    /// Strategy-specific facts (JSON-serializable values).
    public var details: [String: Any]

    public init(text: String, answer: String?, candidates: [Candidate] = [], details: [String: Any] = [:]) {
        self.text = text
        self.answer = answer
        self.candidates = candidates
        self.details = details
    }

    var json: String {
        var object: [String: Any] = ["text": text, "answer": answer ?? NSNull(), "details": details]
        object["candidates"] = candidates.map { candidate -> [String: Any] in
            var entry: [String: Any] = ["text": candidate.text, "answer": candidate.answer ?? NSNull()]
            if let score = candidate.score { entry["score"] = score }
            if let votes = candidate.votes { entry["votes"] = votes }
            if let voteWeight = candidate.voteWeight { entry["vote_weight"] = voteWeight }
            return entry
        }
        return jsonText(object)
    }
}

/// A plugin failure with a message for the client.
public struct PluginFailure: Error, CustomStringConvertible {
    public let description: String
    public let status: Int32
    public init(_ description: String, status: Int32 = Int32(SD_ERR_PLUGIN.rawValue)) {
        self.description = description
        self.status = status
    }
}

func jsonText(_ object: Any) -> String {
    guard JSONSerialization.isValidJSONObject(object),
          let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}
