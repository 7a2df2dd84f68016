import Foundation
import StrategyKit

/// A weighted mean of other scorers, each run with its default params through the host,
/// so their tokens are charged as scorer tokens like any scorer's.
struct Combine: Scorer {
    static let name = "combine"
    static let version = "1.1.0"
    static let description = "Weighted mean of named scorers' scores"
    static let params: [Param] = [
        .string("scorers", "arith:0.5,self-eval:0.5",
                "the scorers and their weights as name:weight,... (weight > 0, 1 when left out); each runs with its defaults"),
    ]

    init() {}

    /// If any part reads the policy's log-probabilities, so does the combination.
    func readsLogprobs(_ request: Request, params: Params) -> Bool {
        guard let parts = try? Combine.parse(params.string("scorers")) else { return false }
        return parts.contains { request.scorerReadsLogprobs($0.name) }
    }

    func score(_ request: Request, problem: String, solution: String, params: Params) throws -> Double {
        let parts = try Combine.parse(params.string("scorers"))
        var weighted = 0.0
        for part in parts {
            do {
                weighted += try part.weight * request.score(with: part.name, problem: problem, solution: solution)
            } catch let error as Request.HostError where error.status == Int32(SD_ERR_UNKNOWN_SCORER.rawValue) {
                throw PluginFailure("combine scorer: unknown scorer '\(part.name)' (no scorer plugin of that name is loaded)",
                                    status: error.status)
            }
        }
        return weighted / parts.reduce(0) { $0 + $1.weight }
    }

    /// "arith:0.5, self-eval:0.5" as names and weights, checked.
    static func parse(_ list: String) throws -> [(name: String, weight: Double)] {
        let entries = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !entries.isEmpty else { throw PluginFailure("combine scorer: scorers is empty; expected name:weight,...") }
        return try entries.map { entry in
            let fields = entry.split(separator: ":", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            let name = fields[0]
            guard fields.count <= 2, !name.isEmpty,
                  name.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }) else {
                throw PluginFailure("combine scorer: '\(entry)' is not name:weight with a name of [a-z0-9-]+")
            }
            guard name != Combine.name else { throw PluginFailure("combine scorer: combine cannot include itself") }
            guard fields.count == 2 else { return (name, 1) }
            guard let weight = Double(fields[1]), weight.isFinite, weight > 0 else {
                throw PluginFailure("combine scorer: the weight of '\(name)' must be a number > 0, got '\(fields[1])'")
            }
            return (name, weight)
        }
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(Combine.self) }
