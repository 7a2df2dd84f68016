/// Every way the engine can refuse: each case carries what a user needs to act on it.
public enum EngineError: Error, Equatable, CustomStringConvertible, Sendable {
    case fileNotFound(path: String)
    case notGGUF(path: String, magic: String)
    case truncated(path: String, expectedBytes: UInt64, actualBytes: UInt64)
    case corrupt(path: String, reason: String)
    case unsupportedArchitecture(path: String, architecture: String)
    case loadFailed(path: String, log: String)
    case placement(reason: String)
    case contextCreationFailed(reason: String)
    case contextOverflow(sequence: Int32, needed: Int, capacity: Int)
    case kvCacheFull(tokens: Int, capacity: Int)
    case tooManySequences(limit: Int)
    case unknownSequence(Int32)
    case invalidToken(Int32, vocabularySize: Int)
    case decodeFailed(code: Int32)
    case chatTemplate(reason: String)
    case hiddenStatesDisabled
    case emptySequence

    /// The context has no room for what was asked: the KV cache is full, or a sequence
    /// would outgrow it.
    public var isOutOfRoom: Bool {
        switch self {
        case .kvCacheFull, .contextOverflow: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "model file not found: \(path)"
        case .notGGUF(let path, let magic):
            return "not a GGUF file: \(path) (starts with \(magic), expected \"GGUF\")"
        case .truncated(let path, let expected, let actual):
            return "truncated GGUF file: \(path) has \(actual) bytes, its tensor table needs \(expected)"
        case .corrupt(let path, let reason):
            return "corrupt GGUF file: \(path): \(reason)"
        case .unsupportedArchitecture(let path, let architecture):
            return "unsupported model architecture '\(architecture)' in \(path) (this llama.cpp build cannot run it)"
        case .loadFailed(let path, let log):
            return "llama.cpp could not load \(path): \(log)"
        case .placement(let reason):
            return "cannot place the model: \(reason)"
        case .contextCreationFailed(let reason):
            return "could not create the llama.cpp context: \(reason)"
        case .contextOverflow(let sequence, let needed, let capacity):
            return "context overflow: sequence \(sequence) needs \(needed) positions, the context holds \(capacity)"
        case .kvCacheFull(let tokens, let capacity):
            return "KV cache full: no room for \(tokens) more tokens within \(capacity) cells (the cache, or a solve's share of it)"
        case .tooManySequences(let limit):
            return "too many live sequences: the context allows \(limit)"
        case .unknownSequence(let id):
            return "unknown sequence \(id)"
        case .invalidToken(let token, let vocabularySize):
            return "token \(token) is outside the vocabulary (0..<\(vocabularySize))"
        case .decodeFailed(let code):
            return "llama_decode failed with code \(code)"
        case .chatTemplate(let reason):
            return "chat template: \(reason)"
        case .hiddenStatesDisabled:
            return "hidden states are not kept (a plugin's hidden_states setting turns them on)"
        case .emptySequence:
            return "a sequence needs at least one token"
        }
    }
}
