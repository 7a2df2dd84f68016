import CachePaths
import Engine
import Foundation
import PluginHost
import RPC

/// Everything the daemon was told at start, with each limit's default and maximum.
struct Configuration: Sendable {
    static let version = "0.1.0"
    /// Mirrors "default" in catalog/models.json (a test keeps the two equal).
    static let defaultModelName = "qwen2.5-coder-1.5b-instruct-q4_k_m"

    /// A limit's bounds: what applies when nothing is said, and what may never be exceeded.
    struct Bounds<Value: Comparable & Sendable>: Sendable {
        let defaultValue: Value
        let range: ClosedRange<Value>
    }

    static let requestBytes = Bounds(defaultValue: 1 << 20, range: 1024...(64 << 20))
    // Sixteen: llama.cpp's batched decode on two cores keeps gaining up to about sixteen
    // sequences (docs/results/concurrent-solves), and a greedy GSM8K sweep gains about 1.4x
    // there against 1.23x at eight (docs/results/sweep-problems-per-hour,
    // reproducibility-under-load). A solve starts only while the free KV
    // cells hold its share of the cache, and one that wants more cells than are free waits
    // for them, so wide solves queue instead of failing.
    static let concurrentSolves = Bounds(defaultValue: 16, range: 1...64)
    static let queuedSolves = Bounds(defaultValue: 64, range: 0...4096)
    // A solve's budget has two figures: what a request that names none gets, and the most
    // it may ask for. 65,536 tokens hold every preset's widest strategy at GSM8K lengths.
    static let solveTokens = Bounds(defaultValue: 65_536, range: 1...1_048_576)
    static let solveTokensCap = Bounds(defaultValue: 262_144, range: 1...1_048_576)
    // Ten minutes for an interactive solve; up to an hour for one that asks (a sweep: sixteen
    // solves in flight share every step, so a sampled solve of 512-token samples can take
    // ten minutes and more on two cores, docs/results/reproducibility-under-load).
    static let timeout = Bounds(defaultValue: 600.0, range: 1.0...86_400.0)
    static let timeoutCap = Bounds(defaultValue: 3600.0, range: 1.0...86_400.0)
    // What one client can hold (docs/api.md, "Limits"). Connections cost a descriptor and
    // buffers, never a thread; a batch answers each element; a reply of a few solves is
    // kilobytes; the problem is the longest string a request carries.
    static let connections = Bounds(defaultValue: 256, range: 1...65_536)
    static let batchElements = Bounds(defaultValue: 64, range: 1...4096)
    static let replyBytes = Bounds(defaultValue: 16 << 20, range: 4096...(1 << 30))
    static let stringBytes = Bounds(defaultValue: 64 << 10, range: 1024...(64 << 20))
    // Two sweeps' worth of one user's solves in flight, out of the 16 running + 64 queued.
    static let solvesPerUser = Bounds(defaultValue: 32, range: 1...4160)
    // By default half the cache (--context-size / 2): one solve never holds all of it; 0
    // lifts the cap.
    static let cellsPerSolve = Bounds(defaultValue: contextSize.defaultValue / 2, range: 0...1_048_576)
    static let width = Bounds(defaultValue: 64, range: 1...256)
    static let callTokens = Bounds(defaultValue: 4096, range: 1...32_768)
    static let contextSize = Bounds(defaultValue: 32_768, range: 256...1_048_576)
    static let grace = Bounds(defaultValue: 30.0, range: 0.0...3600.0)
    // Off by default: a solve that reads kept cells computes its last prompt token in
    // another batch shape, which can change the last bits of its logits (docs/api.md).
    static let promptCache = Bounds(defaultValue: 0, range: 0...1_048_576)

    var modelPath: String
    var modelName: String
    var socketPath: String
    var socketMode: mode_t
    var inheritedSocket: Int32?
    var pluginDirectory: URL
    /// The administrator's settings, a section per plugin.
    var pluginSettings: [String: JSON]
    var watchPlugins: Bool
    var threads: Int
    var contextSize: Int
    var maxRequestBytes: Int
    var maxConcurrentSolves: Int
    var maxQueuedSolves: Int
    var defaultTokens: Int
    var maxTokens: Int
    var defaultTimeoutSeconds: Double
    var maxTimeoutSeconds: Double
    var maxConnections: Int
    var maxBatchElements: Int
    var maxReplyBytes: Int
    var maxStringBytes: Int
    var maxSolvesPerUser: Int
    var maxCellsPerSolve: Int
    var maxWidth: Int
    var maxTokensPerCall: Int
    var graceSeconds: Double
    var promptCacheTokens: Int
    /// Batch-invariant numerics (Model.init(path:batchInvariant:)).
    var deterministic: Bool

    var requestLimits: RequestLimits {
        var limits = RequestLimits()
        limits.maxSequences = maxWidth
        limits.maxTokensPerCall = maxTokensPerCall
        return limits
    }

    var engineOptions: EngineOptions {
        var options = EngineOptions()
        options.contextSize = contextSize
        // Every concurrent solve may hold maxWidth sequences, within llama.cpp's 256 (one
        // of them the padding row's, with batch-invariant numerics).
        options.maxSequences = min(deterministic ? 255 : 256, maxWidth * maxConcurrentSolves)
        options.threads = threads
        options.promptCacheTokens = promptCacheTokens
        options.maxCellsPerAccount = maxCellsPerSolve
        return options
    }

    var limitsJSON: JSON {
        ["max_request_bytes": JSON(maxRequestBytes), "max_concurrent_solves": JSON(maxConcurrentSolves),
         "max_queued_solves": JSON(maxQueuedSolves),
         "default_tokens": JSON(defaultTokens), "max_tokens": JSON(maxTokens),
         "default_timeout_s": JSON(defaultTimeoutSeconds), "max_timeout_s": JSON(maxTimeoutSeconds), "max_width": JSON(maxWidth),
         "max_tokens_per_call": JSON(maxTokensPerCall), "context_size": JSON(contextSize),
         "prompt_cache_tokens": JSON(promptCacheTokens), "max_connections": JSON(maxConnections),
         "max_batch_elements": JSON(maxBatchElements), "max_reply_bytes": JSON(maxReplyBytes),
         "max_string_bytes": JSON(maxStringBytes), "max_solves_per_user": JSON(maxSolvesPerUser),
         "max_cells_per_solve": JSON(maxCellsPerSolve)]
    }

    /// Where catalog models are fetched to (scripts/setup, scripts/fetch.py).
    static var modelCache: URL { CachePaths.models }

    /// A catalog name or a path: a value with a "/" or ending in .gguf is a path.
    static func resolveModel(_ value: String?) -> (path: String, name: String) {
        let value = value ?? defaultModelName
        if value.contains("/") || value.hasSuffix(".gguf") {
            return (value, URL(fileURLWithPath: value).deletingPathExtension().lastPathComponent)
        }
        return (modelCache.appendingPathComponent("\(value).gguf").path, value)
    }
}

/// models.info: the model's facts, the shared resources plugins' settings turned on, and
/// the file's sha256 once computed in the background.
final class ModelInfo: @unchecked Sendable {
    private let base: [String: JSON]
    private let lock = NSLock()
    private var sha256: String?
    /// Set once at start, before any plugin loads.
    var resources: SharedResources?

    init(name: String, facts: ModelFacts, engine: EngineOptions) {
        base = ["name": .string(name), "path": .string(facts.path), "architecture": .string(facts.architecture),
                "description": .string(facts.description), "parameters": JSON(Int(facts.parameters)),
                "non_embedding_parameters": JSON(Int(facts.nonEmbeddingParameters)), "layers": JSON(facts.layers),
                "embedding_width": JSON(facts.embeddingWidth), "heads": JSON(facts.heads), "heads_kv": JSON(facts.headsKV),
                "attention_width": JSON(facts.attentionWidth), "trained_context": JSON(facts.trainedContext),
                "vocabulary_size": JSON(facts.vocabularySize), "file_bytes": JSON(Int(facts.fileBytes)),
                "tied_embeddings": .bool(facts.tiedEmbeddings), "chat_template": JSON(facts.chatTemplate),
                "context_size": JSON(engine.contextSize), "max_sequences": JSON(engine.maxSequences),
                "threads": JSON(engine.threads),
                "devices": .array(facts.devices.map { device in
                    ["name": .string(device.name), "description": .string(device.description), "kind": .string(device.kind),
                     "memory_total_bytes": JSON(Int(device.memoryTotalBytes)),
                     "memory_free_bytes": JSON(Int(device.memoryFreeBytes)),
                     "layer_share": device.layerShare.map { JSON($0) } ?? .null]
                }),
                "backend": ["ggml_version": .string(Backend.current.ggmlVersion),
                            "ggml_commit": .string(Backend.current.ggmlCommit),
                            "system_info": .string(Backend.current.systemInfo)],
                "flops_formula": "2*non_embedding_parameters + 2*layers*(position+1)*attention_width per evaluated token"]
    }

    var json: JSON {
        var object = base
        object["sha256"] = JSON(lock.withLock { sha256 })
        object["hidden_states"] = .bool(resources?.policy.hiddenStates ?? false)
        object["reward_model"] = resources?.rewardEngine.map { reward in
            ["path": .string(reward.model.facts.path), "architecture": .string(reward.model.facts.architecture),
             "parameters": JSON(Int(reward.model.facts.parameters))]
        } ?? .null
        return .object(object)
    }

    /// Hashes the model file off the start-up path (a 1 GB file takes seconds), then calls
    /// `done` (plugins' model_info carries the hash from then on).
    func computeHash(path: String, done: @escaping @Sendable () -> Void) {
        Thread.detachNewThread { [self] in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
            process.arguments = [path]
            let output = Pipe()
            process.standardOutput = output
            guard (try? process.run()) != nil else { return }
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let digest = String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init)
            if process.terminationStatus == 0, let digest, digest.count == 64 {
                lock.withLock { sha256 = digest }
                done()
            }
        }
    }
}

/// Plugin settings as the administrator writes them: a JSON file's "plugins" object, and
/// NAME.SETTING=VALUE assignments. Each plugin checks its own section at load.
enum PluginSettings {
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    /// A configuration file's sections; only "plugins" is read from it.
    static func read(file: String) throws -> [String: JSON] {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw Invalid(description: "--config \(file): no such readable file")
        }
        let parsed: JSON
        do {
            parsed = try data.withUnsafeBytes { try JSON.parse($0) }
        } catch {
            throw Invalid(description: "--config \(file): not JSON: \(error)")
        }
        guard let members = parsed.objectValue, Set(members.keys).isSubset(of: ["plugins"]) else {
            throw Invalid(description: "--config \(file): expected {\"plugins\": {NAME: {SETTING: VALUE}}}")
        }
        guard let plugins = members["plugins"] else { return [:] }
        guard let sections = plugins.objectValue, sections.values.allSatisfy({ $0.objectValue != nil }) else {
            throw Invalid(description: "--config \(file): \"plugins\" must map each plugin name to an object of settings")
        }
        for name in sections.keys where !PluginRegistry.isValidName(name) {
            throw Invalid(description: "--config \(file): '\(name)' is not a plugin name ([a-z0-9-]+)")
        }
        return sections
    }

    /// NAME.SETTING=VALUE into `sections`; VALUE is read as JSON when it is, else as a string.
    static func apply(_ assignment: String, to sections: inout [String: JSON]) throws {
        guard let equals = assignment.firstIndex(of: "="),
              let dot = assignment[..<equals].firstIndex(of: ".") else {
            throw Invalid(description: "--plugin-config \(assignment): expected NAME.SETTING=VALUE")
        }
        let name = String(assignment[..<dot])
        let key = String(assignment[assignment.index(after: dot)..<equals])
        let text = String(assignment[assignment.index(after: equals)...])
        guard PluginRegistry.isValidName(name), !key.isEmpty else {
            throw Invalid(description: "--plugin-config \(assignment): expected NAME.SETTING=VALUE with NAME a plugin name")
        }
        set((try? JSON.parse(text)) ?? .string(text), plugin: name, key: key, in: &sections)
    }

    /// One setting into a plugin's section, over what it held.
    static func set(_ value: JSON, plugin: String, key: String, in sections: inout [String: JSON]) {
        var section = sections[plugin]?.objectValue ?? [:]
        section[key] = value
        sections[plugin] = .object(section)
    }
}
