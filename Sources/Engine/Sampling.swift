import CLlama
import Foundation

/// How the next token is chosen. Temperature 0 is greedy (argmax, no randomness).
public struct SamplingParams: Sendable, Equatable {
    /// 0 = greedy; otherwise 0 < temperature <= 5.
    public var temperature: Float = 0
    /// 0 = off; otherwise keep the k most likely tokens.
    public var topK: Int = 0
    /// 1 = off; otherwise 0 < topP <= 1.
    public var topP: Float = 1
    /// 0 = off; otherwise 0 <= minP < 1.
    public var minP: Float = 0
    public var seed: UInt32 = 0

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0, seed: UInt32 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.seed = seed
    }

    public static let greedy = SamplingParams()
}

/// A llama.cpp sampler chain applied to logits the engine has stored. Each sequence
/// gets its own, so that its random stream does not depend on the others.
final class Sampler {
    private let chain: UnsafeMutablePointer<llama_sampler>?
    private var candidates: [llama_token_data] = []

    init(_ params: SamplingParams) {
        guard params.temperature > 0 else { chain = nil; return }
        var chainParams = llama_sampler_chain_default_params()
        chainParams.no_perf = true
        let chain = llama_sampler_chain_init(chainParams)!
        if params.topK > 0 { llama_sampler_chain_add(chain, llama_sampler_init_top_k(Int32(params.topK))) }
        if params.topP < 1 { llama_sampler_chain_add(chain, llama_sampler_init_top_p(params.topP, 1)) }
        if params.minP > 0 { llama_sampler_chain_add(chain, llama_sampler_init_min_p(params.minP, 1)) }
        llama_sampler_chain_add(chain, llama_sampler_init_temp(params.temperature))
        llama_sampler_chain_add(chain, llama_sampler_init_dist(params.seed))
        self.chain = chain
    }

    deinit { if let chain { llama_sampler_free(chain) } }

    func sample(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        guard let chain else { return Sampler.argmax(logits) }
        if candidates.count != logits.count {
            candidates = (0..<logits.count).map { llama_token_data(id: Int32($0), logit: 0, p: 0) }
        }
        for index in 0..<logits.count {
            candidates[index].id = Int32(index)
            candidates[index].logit = logits[index]
            candidates[index].p = 0
        }
        return candidates.withUnsafeMutableBufferPointer { buffer in
            var array = llama_token_data_array(data: buffer.baseAddress, size: buffer.count, selected: -1, sorted: false)
            llama_sampler_apply(chain, &array)
            let token = array.data[Int(array.selected)].id
            llama_sampler_accept(chain, token)
            return token
        }
    }

    static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        var best = 0
        var bestValue = -Float.infinity
        for index in 0..<logits.count where logits[index] > bestValue {
            bestValue = logits[index]
            best = index
        }
        return Int32(best)
    }
}

/// Log-softmax helpers over raw logits (temperature 1: the model's own distribution).
public enum LogProbabilities {
    public static func logSumExp(_ logits: UnsafeBufferPointer<Float>) -> Float {
        var maximum = -Float.infinity
        for value in logits where value > maximum { maximum = value }
        var sum: Float = 0
        for value in logits { sum += expf(value - maximum) }
        return maximum + logf(sum)
    }

    /// Over the logits (temperature 1): minus the mean log-probability of the
    /// top k tokens, the entropy in nats, p(first) - p(second), KL(uniform || p), and the
    /// log-sum-exp that makes a logit a log-probability.
    public static func signals(_ logits: UnsafeBufferPointer<Float>, topK: Int)
        -> (confidence: Float, entropy: Float, margin: Float, certainty: Float, logSumExp: Float) {
        let k = max(1, min(topK, logits.count))
        var top = [Float](repeating: -.infinity, count: k)  // descending
        var maximum = -Float.infinity
        for value in logits {
            if value > maximum { maximum = value }
            guard value > top[k - 1] else { continue }
            var slot = k - 1
            while slot > 0 && top[slot - 1] < value {
                top[slot] = top[slot - 1]
                slot -= 1
            }
            top[slot] = value
        }
        var sum: Float = 0
        var weighted: Float = 0
        var logitSum: Double = 0
        for value in logits {
            logitSum += Double(value)
            let e = expf(value - maximum)
            sum += e
            if e > 0 { weighted += e * (value - maximum) }
        }
        let lse = maximum + logf(sum)
        // H = lse - E[logit] = log(sum) - E[logit - maximum].
        let entropy = max(0, logf(sum) - weighted / sum)
        let confidence = -top.reduce(0) { $0 + ($1 - lse) } / Float(k)
        let second = k > 1 ? top[1] : (logits.count > 1 ? secondLargest(logits) : -.infinity)
        let margin = expf(top[0] - lse) - expf(second - lse)
        // KL(U || p) = -log V - mean over the vocabulary of log p (Kang et al. 2025's self-certainty).
        let count = Double(logits.count)
        let certainty = Float(-log(count) - (logitSum / count - Double(lse)))
        return (confidence, entropy, margin, certainty, lse)
    }

    private static func secondLargest(_ logits: UnsafeBufferPointer<Float>) -> Float {
        var first = -Float.infinity
        var second = -Float.infinity
        for value in logits {
            if value > first { (first, second) = (value, first) } else if value > second { second = value }
        }
        return second
    }
}
