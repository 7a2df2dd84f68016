import Foundation
import PluginABI

/// How the host's vote tallies an answer (sd_vote_mode).
public enum VoteMode: Int32, Sendable {
    case plain = 0, weighted = 1
}

/// The host's vote over candidates (sd_host.vote): the chosen candidate and each
/// candidate's answer's tally.
public struct VoteOutcome: Sendable, Equatable {
    /// nil when there were no candidates.
    public var chosen: Int?
    /// Per candidate: how many candidates give its answer (0 without an answer).
    public var votes: [Int]
    /// Per candidate: the sum of the weights of the candidates giving its answer.
    public var weights: [Double]

    public init(chosen: Int?, votes: [Int], weights: [Double]) {
        self.chosen = chosen
        self.votes = votes
        self.weights = weights
    }
}

/// A vote, as the host offers it: pure code (strategy internals, their tests) takes one of
/// these instead of a request.
public typealias Voter = (_ answers: [String?], _ weights: [Double]?, _ mode: VoteMode) throws -> VoteOutcome

extension Request {
    /// The one vote rule of strategyd (see sd_host.vote for ties and the chosen candidate).
    public func vote(answers: [String?], weights: [Double]? = nil, mode: VoteMode) throws -> VoteOutcome {
        let n = answers.count
        var tallies = [sd_vote_tally](repeating: sd_vote_tally(), count: n)
        var chosen: Int32 = -1
        let owned = answers.map { $0.flatMap { strdup($0) } }
        defer { owned.forEach { Foundation.free($0) } }
        let status = owned.map { $0.map { UnsafePointer($0) } }.withUnsafeBufferPointer { pointers in
            if let weights {
                precondition(weights.count == n, "one weight per answer")
                return host.pointee.vote(raw, pointers.baseAddress, weights, Int32(n), mode.rawValue, &tallies, &chosen)
            }
            return host.pointee.vote(raw, pointers.baseAddress, nil, Int32(n), mode.rawValue, &tallies, &chosen)
        }
        if status != Int32(SD_OK.rawValue) { throw HostError(status: status, call: "vote") }
        return VoteOutcome(chosen: chosen >= 0 ? Int(chosen) : nil, votes: tallies.map { Int($0.votes) },
                           weights: tallies.map(\.weight))
    }

    public var voter: Voter { { answers, weights, mode in try vote(answers: answers, weights: weights, mode: mode) } }
}

/// When an adaptive sampler may stop drawing (sd_host.stop_rule).
public enum StopRule: Int32, Sendable {
    /// Adaptive-Consistency: P(leader likelier than runner-up) >= the threshold.
    case beta = 0
    /// Early-stopping self-consistency: the last `window` answers agree.
    case esc = 1
}

extension Request {
    /// The host's stop rule over the answers drawn so far, in draw order.
    public func stopRule(_ rule: StopRule, parameter: Double, answers: [String?]) throws -> (stop: Bool, measure: Double) {
        guard hostHas(\.stop_rule) else { throw HostError(status: Int32(SD_ERR_INVALID_ARGUMENT.rawValue), call: "stop_rule (host too old)") }
        let cStrings = answers.map { $0.flatMap { strdup($0) } }
        defer { cStrings.forEach { Foundation.free($0) } }
        var stop = false
        var measure = 0.0
        let status = cStrings.map { $0.map { UnsafePointer($0) } }.withUnsafeBufferPointer { pointers in
            host.pointee.stop_rule(raw, rule.rawValue, parameter, pointers.baseAddress, Int32(answers.count), &stop, &measure)
        }
        if status != Int32(SD_OK.rawValue) { throw HostError(status: status, call: "stop_rule") }
        return (stop, measure)
    }
}
