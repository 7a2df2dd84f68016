import Foundation
import PluginABI

/// What search strategies (best-of-n, beam search, REBASE) share: scoring that stops with
/// the request, forks that say why they ran out of room, and scorer params given as JSON.
extension Request {
    /// A score, or nil once the request must stop (the scorer's tokens count against the budget).
    public func scoreUnlessStopped(with scorer: String, params: [String: Any], problem: String,
                                   solution: String) throws -> Double? {
        guard !shouldStop else { return nil }
        do {
            return try score(with: scorer, params: params, problem: problem, solution: solution)
        } catch let error as HostError where error.isStop {
            return nil
        } catch let error as HostError where error.status == Int32(SD_ERR_UNKNOWN_SCORER.rawValue) {
            throw PluginFailure("unknown scorer '\(scorer)': load it, or name another in the param `scorer`", status: error.status)
        }
    }

    /// Forks, saying what needed the sequences when the request may not hold that many.
    public func fork(_ parent: Sequence, count: Int, needing need: String) throws -> [Sequence] {
        do {
            return try fork(parent, count: count)
        } catch let error as HostError where error.status == Int32(SD_ERR_LIMIT.rawValue) {
            throw PluginFailure("\(need): more than the daemon's --max-width allows", status: error.status)
        }
    }
}
