import Foundation

/// Quiet-STaR's mixture (Zelikman et al. 2024, "Quiet-STaR: Language Models Can Teach
/// Themselves to Think Before Speaking", arXiv 2403.09629): the next token is drawn from
/// lm_head((1 - w) h_base + w h_thought). The output head of our models is linear without
/// bias, so that is exactly (1 - w) logits_base + w logits_thought: mixing logits is
/// Quiet-STaR's mixture, not an approximation.
/// With several thoughts, the n mixed hidden states are averaged, which is again linear:
/// logits = mean_j [(1 - w_j) logits_base + w_j logits_thought_j].
///
/// The learned head is trained on log-probabilities of the true token only (full logit
/// vectors of a 150k vocabulary per position are too big to collect), so it mixes in
/// probability space: p = mean_j [(1 - w_j) p_base + w_j p_thought_j], the equivalent used
/// where the hidden-state mixture cannot be trained (docs/strategies.md, mixing heads).
public enum ThoughtMixture {
    public enum Space: String, Sendable {
        case logits, probabilities
    }

    public static func logSoftmax(_ logits: [Float]) -> [Float] {
        let normalizer = logSumExp(logits)
        return logits.map { $0 - normalizer }
    }

    /// log softmax(logits)[token], without building the whole vector.
    public static func logProbability(of token: Int, in logits: [Float]) -> Float {
        logits[token] - logSumExp(logits)
    }

    static func logSumExp(_ logits: [Float]) -> Float {
        let top = logits.max() ?? 0
        var sum: Double = 0
        for value in logits { sum += Double(Foundation.exp(value - top)) }
        return top + Float(Foundation.log(sum))
    }

    /// Shannon entropy in nats of softmax(logits).
    public static func entropy(_ logits: [Float]) -> Double {
        var entropy: Double = 0
        for logProbability in logSoftmax(logits) where logProbability > -80 {
            let logP = Double(logProbability)
            entropy -= Foundation.exp(logP) * logP
        }
        return entropy
    }

    /// The mixed next-token logits. In probability space the result is log p (a valid
    /// logit vector: sampling from it draws from p). `weights[j]` is thought j's w in [0, 1].
    public static func mix(base: [Float], thoughts: [[Float]], weights: [Double], space: Space) -> [Float] {
        precondition(thoughts.count == weights.count && !thoughts.isEmpty, "one weight per thought")
        precondition(thoughts.allSatisfy { $0.count == base.count }, "logit vectors of one vocabulary")
        let count = Float(thoughts.count)
        switch space {
        case .logits:
            var mixed = [Float](repeating: 0, count: base.count)
            for (thought, weight) in zip(thoughts, weights) {
                let w = Float(weight)
                for index in mixed.indices { mixed[index] += ((1 - w) * base[index] + w * thought[index]) / count }
            }
            return mixed
        case .probabilities:
            let baseLog = logSoftmax(base)
            var probabilities = [Float](repeating: 0, count: base.count)
            for (thought, weight) in zip(thoughts, weights) {
                let thoughtLog = logSoftmax(thought)
                let w = Float(weight)
                for index in probabilities.indices {
                    probabilities[index] += ((1 - w) * Foundation.exp(baseLog[index]) + w * Foundation.exp(thoughtLog[index])) / count
                }
            }
            // log 0 is -inf; the smallest normal float keeps the vector finite.
            return probabilities.map { Foundation.log(max($0, Float.leastNormalMagnitude)) }
        }
    }
}

/// What decides w, the weight of a thought in the mixture.
public enum MixingHead: Sendable {
    /// The same w everywhere.
    case constant(weight: Double)
    /// w = weight * clamp((H - low) / (high - low), 0, 1), H the base next-token entropy
    /// in nats: a model that is sure of its next token keeps it; where it hesitates, the
    /// thought gets up to `weight`.
    case entropyGated(weight: Double, low: Double, high: Double)
    /// Quiet-STaR's mixing head: an MLP over [h_base ; h_thought], trained here.
    case learned(LearnedMixingHead)

    public var needsHiddenStates: Bool {
        if case .learned = self { return true }
        return false
    }

    public var space: ThoughtMixture.Space {
        if case .learned = self { return .probabilities }
        return .logits
    }

    public func weight(entropy: Double, base: [Float]?, thought: [Float]?) -> Double {
        switch self {
        case .constant(let weight):
            return weight
        case .entropyGated(let weight, let low, let high):
            let gate = high > low ? (entropy - low) / (high - low) : (entropy >= low ? 1 : 0)
            return weight * min(1, max(0, gate))
        case .learned(let head):
            guard let base, let thought else { return 0 }
            return head.weight(base: base, thought: thought)
        }
    }

    public var summary: [String: Any] {
        switch self {
        case .constant(let weight): return ["kind": "constant", "weight": weight]
        case .entropyGated(let weight, let low, let high):
            return ["kind": "entropy", "weight": weight, "entropy_low": low, "entropy_high": high]
        case .learned(let head): return ["kind": "learned", "file": head.path, "trained_for": head.model["name"] ?? NSNull()]
        }
    }
}

/// A trained mixing head: dense layers, ReLU between them, a sigmoid at the end giving w.
/// Its file (JSON, written by `strategyd-train-head` in the Python package):
///
///     {"format": "strategyd-mixing-head", "version": 1, "space": "probabilities",
///      "input": "h_base,h_thought", "activation": "relu", "output": "sigmoid",
///      "model": {"name", "architecture", "embedding_width", "vocabulary_size"},
///      "layers": [{"weight": [[out x in]], "bias": [out]}, ...], "training": {...}}
public struct LearnedMixingHead: @unchecked Sendable {
    public static let format = "strategyd-mixing-head"
    public static let version = 1
    /// What must match between the file and the resident model.
    public static let modelKeys = ["name", "architecture", "embedding_width", "vocabulary_size"]

    public struct Layer: Sendable {
        public var weight: [[Float]]
        public var bias: [Float]
        public init(weight: [[Float]], bias: [Float]) {
            self.weight = weight
            self.bias = bias
        }
    }

    public var layers: [Layer]
    public var model: [String: Any]
    public var training: [String: Any]
    public var path = ""

    public init(layers: [Layer], model: [String: Any], training: [String: Any] = [:]) {
        self.layers = layers
        self.model = model
        self.training = training
    }

    public struct FileError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Heads are small (two hidden layers over two hidden states): a cap on what is read.
    public static let maxFileBytes = 64 << 20

    /// The head file `name` in `folder`, the plugin's heads_dir setting. A client names a
    /// file there, never a path: what the daemon reads is the administrator's choice.
    public init(named name: String, in folder: String, modelInfo: [String: Any]) throws {
        guard name.range(of: #"^[A-Za-z0-9][A-Za-z0-9._-]*\.json$"#, options: .regularExpression) != nil else {
            throw FileError(description: "mixing head '\(name)': expected the file name of a .json head in the daemon's heads "
                + "directory (letters, digits, '.', '_', '-'; no path)")
        }
        try self.init(path: URL(fileURLWithPath: folder).appendingPathComponent(name).path, modelInfo: modelInfo)
    }

    /// Reads and checks a head file; `modelInfo` is the resident model's facts.
    public init(path: String, modelInfo: [String: Any]) throws {
        guard path.hasSuffix(".json") else {
            throw FileError(description: "mixing head \(path): not a .json head file")
        }
        guard let file = FileHandle(forReadingAtPath: path) else {
            throw FileError(description: "mixing head \(path): no such readable file (train one with strategyd-train-head)")
        }
        defer { try? file.close() }
        let data = (try? file.read(upToCount: Self.maxFileBytes + 1)) ?? Data()
        guard data.count <= Self.maxFileBytes else {
            throw FileError(description: "mixing head \(path): more than the \(Self.maxFileBytes) bytes a head may have")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              object["format"] as? String == Self.format else {
            throw FileError(description: "mixing head \(path): not a \(Self.format) file")
        }
        let version = (object["version"] as? NSNumber)?.intValue ?? -1
        guard version == Self.version else {
            throw FileError(description: "mixing head \(path): format version \(version), expected \(Self.version)")
        }
        let model = object["model"] as? [String: Any] ?? [:]
        let mismatched = Self.modelKeys.filter { "\(model[$0] ?? "?")" != "\(modelInfo[$0] ?? "?")" }
        guard mismatched.isEmpty else {
            func describe(_ facts: [String: Any]) -> String {
                Self.modelKeys.map { "\($0) \(facts[$0] ?? "?")" }.joined(separator: ", ")
            }
            throw FileError(description: "mixing head \(path) was trained for \(model["name"] ?? "?") (\(describe(model))), "
                + "but the daemon runs \(modelInfo["name"] ?? "?") (\(describe(modelInfo))): train one for this model")
        }
        guard let rawLayers = object["layers"] as? [[String: Any]], !rawLayers.isEmpty else {
            throw FileError(description: "mixing head \(path): no layers")
        }
        let layers = try rawLayers.enumerated().map { index, raw in
            guard let weight = raw["weight"] as? [[NSNumber]], let bias = raw["bias"] as? [NSNumber],
                  weight.count == bias.count, let inputs = weight.first?.count, weight.allSatisfy({ $0.count == inputs }) else {
                throw FileError(description: "mixing head \(path): layer \(index) is not a weight matrix with a bias per row")
            }
            return Layer(weight: weight.map { $0.map(\.floatValue) }, bias: bias.map(\.floatValue))
        }
        let width = (modelInfo["embedding_width"] as? NSNumber)?.intValue ?? 0
        var inputs = 2 * width
        for (index, layer) in layers.enumerated() {
            guard layer.weight[0].count == inputs else {
                throw FileError(description: "mixing head \(path): layer \(index) takes \(layer.weight[0].count) inputs, expected \(inputs)")
            }
            inputs = layer.bias.count
        }
        guard inputs == 1 else { throw FileError(description: "mixing head \(path): the last layer gives \(inputs) outputs, expected 1") }
        self.layers = layers
        self.model = model
        self.training = object["training"] as? [String: Any] ?? [:]
        self.path = path
    }

    /// The file's JSON (what `init(path:modelInfo:)` reads).
    public var json: [String: Any] {
        ["format": Self.format, "version": Self.version, "space": "probabilities", "input": "h_base,h_thought",
         "activation": "relu", "output": "sigmoid", "model": model, "training": training,
         "layers": layers.map { ["weight": $0.weight.map { $0.map(Double.init) }, "bias": $0.bias.map(Double.init)] }]
    }

    /// w = sigmoid(MLP([h_base ; h_thought])).
    public func weight(base: [Float], thought: [Float]) -> Double {
        var activation = base + thought
        for (index, layer) in layers.enumerated() {
            var next = layer.bias
            for row in next.indices {
                let weights = layer.weight[row]
                var sum: Float = 0
                for column in activation.indices { sum += weights[column] * activation[column] }
                next[row] += sum
            }
            activation = index == layers.count - 1 ? next : next.map { max(0, $0) }
        }
        return 1 / (1 + Foundation.exp(-Double(activation[0])))
    }
}
