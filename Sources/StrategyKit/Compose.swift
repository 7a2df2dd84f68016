import Foundation
import PluginABI

/// A request's budget, as the client set it (the daemon's defaults filled in).
public struct RequestBudget: Sendable {
    public var maxTokens: Int
    /// nil: no FLOPs cap.
    public var maxFlops: Double?
    public var secondsLeft: Double
}

extension Request {
    public func budget() throws -> RequestBudget {
        guard hostHas(\.budget) else { throw HostError(status: Int32(SD_ERR_INVALID_ARGUMENT.rawValue), call: "budget (host too old)") }
        var tokens: Int64 = 0
        var flops = 0.0
        var seconds = 0.0
        let status = host.pointee.budget(raw, &tokens, &flops, &seconds)
        if status != Int32(SD_OK.rawValue) { throw HostError(status: status, call: "budget") }
        return RequestBudget(maxTokens: Int(tokens), maxFlops: flops > 0 ? flops : nil, secondsLeft: seconds)
    }

    /// Runs another strategy plugin as part of this request (sd_host.solve_with): its
    /// compute and budget are this request's; its result object comes back here.
    public func solve(with strategy: String, params: [String: Any]) throws -> [String: Any] {
        guard hostHas(\.solve_with) else { throw HostError(status: Int32(SD_ERR_INVALID_ARGUMENT.rawValue), call: "solve_with (host too old)") }
        var out: UnsafeMutablePointer<CChar>?
        let status = host.pointee.solve_with(raw, strategy, jsonText(params), &out)
        defer { Foundation.free(out) }
        if status != Int32(SD_OK.rawValue) { throw HostError(status: status, call: "solve_with \(strategy)") }
        guard let out, let object = try? JSONSerialization.jsonObject(with: Data(String(cString: out).utf8)) as? [String: Any] else {
            throw HostError(status: Int32(SD_ERR_PLUGIN.rawValue), call: "solve_with \(strategy)")
        }
        return object
    }
}

extension Solution {
    /// Another strategy's result object (Request.solve(with:)) as this strategy's answer,
    /// its details under `details` beside the caller's own.
    public init(result: [String: Any], details: [String: Any]) {
        let candidates = (result["candidates"] as? [[String: Any]] ?? []).map { candidate in
            Candidate(text: candidate["text"] as? String ?? "", answer: candidate["answer"] as? String,
                      score: (candidate["score"] as? NSNumber)?.doubleValue, votes: (candidate["votes"] as? NSNumber)?.intValue,
                      voteWeight: (candidate["vote_weight"] as? NSNumber)?.doubleValue)
        }
        var merged = details
        merged["strategy_details"] = result["details"] ?? [String: Any]()
        self.init(text: result["text"] as? String ?? "", answer: result["answer"] as? String, candidates: candidates, details: merged)
    }
}
