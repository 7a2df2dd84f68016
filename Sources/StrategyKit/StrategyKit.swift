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
    /// What the daemon's administrator may set for this plugin (sd_plugin.settings_schema);
    /// read them with `request.settings`.
    static var settings: [Param] { get }
    /// Called once with the settings, before any request; throwing refuses the load.
    static func configure(_ settings: Params, host: HostResources) throws
    init()
}

extension PluginMetadata {
    /// Most plugins take no settings.
    public static var settings: [Param] { [] }
    /// Nothing to ask the daemon for.
    public static func configure(_ settings: Params, host: HostResources) throws {}
}

/// The resources a plugin's settings may ask the daemon for, from `configure` only
/// (sd_host.enable_hidden_states, load_reward_model): every solve shares them.
public struct HostResources {
    let host: UnsafePointer<sd_host>

    /// Every evaluated sequence keeps its last hidden state from now on.
    public func enableHiddenStates() throws {
        let status = host.pointee.enable_hidden_states(nil)
        if status != Int32(SD_OK.rawValue) { throw PluginFailure("enable_hidden_states failed with status \(status)", status: status) }
    }

    /// Makes a catalog model or GGUF file the daemon's reward model.
    public func loadRewardModel(_ model: String) throws {
        let status = host.pointee.load_reward_model(nil, model)
        if status != Int32(SD_OK.rawValue) {
            throw PluginFailure("the reward model \(model) could not be loaded (status \(status); the daemon's log says why)",
                                status: status)
        }
    }
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
    /// `path` is for settings only: the daemon makes it absolute from the plugin directory.
    public enum Kind: String, Sendable { case integer, number, boolean, string, object, path }
    public var name: String
    public var kind: Kind
    public var defaultValue: any Sendable
    public var minimum: Double?
    public var maximum: Double?
    public var allowed: [String]?
    public var help: String
    /// Other names the daemon accepts for this param (the name another strategy gives the
    /// same idea); the plugin always reads `name`.
    public var aliases: [String] = []

    /// The same param, also accepted under `names`.
    public func aliased(_ names: String...) -> Param {
        var param = self
        param.aliases += names
        return param
    }

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
    /// A folder or file the administrator names in the plugin's settings.
    public static func path(_ name: String, _ value: String, _ help: String) -> Param {
        Param(name: name, kind: .path, defaultValue: value, help: help)
    }
    /// A JSON object (a scorer's params, say); the daemon also accepts it written as a string.
    public static func object(_ name: String, _ help: String) -> Param {
        Param(name: name, kind: .object, defaultValue: [String: String](), help: help)
    }

    var schemaEntry: [String: Any] {
        var entry: [String: Any] = ["type": kind.rawValue, "default": defaultValue, "description": help]
        if let minimum { entry["minimum"] = minimum }
        if let maximum { entry["maximum"] = maximum }
        if let allowed { entry["enum"] = allowed }
        if !aliases.isEmpty { entry["aliases"] = aliases }
        return entry
    }
}

/// The complete params of a request (the daemon has filled defaults and checked types).
///
/// Reads are checked against the plugin's declared params: reading a key the plugin did not
/// declare, or as another type, is a programming error (a trap in debug builds, which the
/// tests run; the declared default in release).
public struct Params: @unchecked Sendable {
    public let values: [String: Any]
    let declared: [String: Param]

    init(json: String, declared: [Param]) {
        values = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
        self.declared = Dictionary(declared.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The value of a declared param read as one of `kinds`.
    private func value(_ key: String, as kinds: Param.Kind...) -> Any? {
        guard let param = declared[key] else {
            assertionFailure("params: '\(key)' is not declared (declared: \(declared.keys.sorted().joined(separator: ", ")))")
            return nil
        }
        guard kinds.contains(param.kind) else {
            assertionFailure("params: '\(key)' is declared as \(param.kind.rawValue), read as \(kinds.map(\.rawValue))")
            return param.defaultValue
        }
        return values[key] ?? param.defaultValue
    }

    public func int(_ key: String) -> Int { (value(key, as: .integer) as? NSNumber)?.intValue ?? 0 }
    public func double(_ key: String) -> Double {
        (value(key, as: .number, .integer) as? NSNumber)?.doubleValue ?? (value(key, as: .number, .integer) as? Double ?? 0)
    }
    public func bool(_ key: String) -> Bool { (value(key, as: .boolean) as? NSNumber)?.boolValue ?? (value(key, as: .boolean) as? Bool ?? false) }
    public func string(_ key: String) -> String { value(key, as: .string, .path) as? String ?? "" }
    public func object(_ key: String) -> [String: Any] { value(key, as: .object) as? [String: Any] ?? [:] }
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
