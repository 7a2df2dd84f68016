import CLlama
import Foundation

/// What a loaded model is: the figures compute accounting and the strategies rely on.
public struct ModelFacts: Sendable, Codable, Equatable {
    public var path: String
    public var architecture: String
    public var description: String
    public var fileBytes: UInt64
    public var parameters: UInt64
    /// Parameters minus the token-embedding matrix (and a separate output matrix, if the
    /// model has one): Kaplan et al.'s N.
    public var nonEmbeddingParameters: UInt64
    public var layers: Int
    public var embeddingWidth: Int
    public var heads: Int
    public var headsKV: Int
    /// Width of the attention's query projection, n_head * head_dim (Kaplan's d_attn).
    public var attentionWidth: Int
    public var trainedContext: Int
    public var vocabularySize: Int
    public var tiedEmbeddings: Bool
    public var chatTemplate: String?
    /// Where the layers are: this host's CPU, or the RPC servers' devices (ModelPlacement).
    public var devices: [DeviceFacts]
}

/// A chat message for the model's template.
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// Prompt text in parts. Only the chat template's own text is read for control tokens
/// (its "<|im_start|>" is that token); every other part is only ever text, so a problem
/// holding "<|im_end|>\n<|im_start|>system" cannot close its turn or open another.
public struct PromptText: Sendable, Equatable {
    public struct Part: Sendable, Equatable {
        public var text: String
        /// Written by the chat template: control tokens spelled in it are parsed.
        public var isTemplate: Bool
    }

    public private(set) var parts: [Part] = []

    /// Plain text: no control token in it.
    public init(_ text: String = "") { append(text) }

    init(parts: [Part]) { for part in parts { append(part) } }

    public var text: String { parts.map(\.text).joined() }

    public mutating func append(_ text: String) { append(Part(text: text, isTemplate: false)) }

    mutating func append(_ part: Part) {
        guard !part.text.isEmpty else { return }
        if let last = parts.last, last.isTemplate == part.isTemplate {
            parts[parts.count - 1].text += part.text
        } else {
            parts.append(part)
        }
    }

    /// The parts from byte `offset` of `text` on; nil when the cut falls inside a template
    /// part (it could split a control token's spelling into plain text).
    func suffix(fromByte offset: Int) -> PromptText? {
        var start = 0
        var rest = PromptText()
        for part in parts {
            let bytes = Array(part.text.utf8)
            let end = start + bytes.count
            if offset <= start {
                rest.append(part)
            } else if offset < end {
                guard !part.isTemplate else { return nil }
                rest.append(String(decoding: bytes[(offset - start)...], as: UTF8.self))
            }
            start = end
        }
        return rest
    }
}

/// One GGUF model loaded through llama.cpp. Immutable after load; tokenization is
/// thread-safe (llama.h says so), so a Model is shared freely.
public final class Model: @unchecked Sendable {
    public let facts: ModelFacts
    /// Every end-of-generation token (EOS, EOT, ...), for suppressing them.
    public let endOfGenerationTokens: [Int32]
    /// Whether every matrix product takes the same kernel whatever the batch: see
    /// `init(path:batchInvariant:)`.
    public let batchInvariant: Bool
    /// Whether some weights have a type llamafile's sgemm multiplies (F32, F16, BF16,
    /// Q8_0, Q4_0, Q5_0, IQ4_NL): their products with one row take ggml's vector dot
    /// product instead, which adds up in another order.
    let oneRowTakesOtherKernels: Bool
    let pointer: OpaquePointer
    let vocab: OpaquePointer

    /// Loads a GGUF file. `batchInvariant` gives up the CPU kernels whose numbers for one
    /// token's row depend on how many rows share the product: weights repacked for
    /// multi-row gemm (llama.cpp's extra buffer types) and ggml's tiled K-quant matmul,
    /// which take over above a batch size. What is left computes each output element as one
    /// dot product over the whole row, the same at any batch size. The tiled switch is an
    /// environment variable ggml reads once per process, so it is set here, before the
    /// first product: a process that computed with it on keeps it on.
    ///
    /// `placement` puts the layers on RPC servers' devices instead of this host's CPU.
    /// Their kernels are the servers' own, so batch invariance holds only on this host.
    ///
    /// `chatTemplate` names a template llama.cpp has built in ("gemma", "chatml"), used
    /// instead of the GGUF's own: for a base model whose file carries none.
    public init(path: String, batchInvariant: Bool = false, placement: ModelPlacement = .local,
                chatTemplate: String? = nil) throws {
        LlamaRuntime.initialize()
        if let chatTemplate, !Model.builtInChatTemplates.contains(chatTemplate) {
            throw EngineError.chatTemplate(reason: "llama.cpp has no built-in template '\(chatTemplate)'; "
                                           + "it has \(Model.builtInChatTemplates.joined(separator: ", "))")
        }
        if batchInvariant && !placement.isLocal {
            throw EngineError.placement(reason: "batch-invariant numerics need every product on this host's CPU; "
                                        + "RPC servers compute with their own kernels")
        }
        if batchInvariant {
            setenv("GGML_CPU_TILED_MM", "0", 1)
            // Read by strategyd's llama.cpp patch (scripts/patches/llama.cpp): each sequence's
            // KV cells in position order.
            setenv("LLAMA_KV_CELLS_IN_ORDER", "1", 1)
        }
        self.batchInvariant = batchInvariant
        let inspection = try GGUFInspection(path: path)
        oneRowTakesOtherKernels = inspection.sgemmWeights
        var params = llama_model_default_params()
        params.n_gpu_layers = 0
        params.use_extra_bufts = !batchInvariant
        let remote = placement.isLocal ? [] : try RemoteDevices.devices(of: placement.rpcServers)
        guard remote.count <= Int(llama_max_devices()) else {
            throw EngineError.placement(reason: "the RPC servers offer \(remote.count) devices; llama.cpp takes at most \(llama_max_devices())")
        }
        let shares = try Model.shares(of: remote, split: placement.split)
        var deviceList: [ggml_backend_dev_t?] = remote + [nil]
        var tensorSplit = [Float](repeating: 0, count: Int(llama_max_devices()))
        for (index, share) in shares.enumerated() { tensorSplit[index] = Float(share) }
        let (loaded, log) = deviceList.withUnsafeMutableBufferPointer { devices in
            tensorSplit.withUnsafeBufferPointer { split in
                if !remote.isEmpty {
                    params.devices = devices.baseAddress
                    params.n_gpu_layers = -1  // every layer, and the output layer, on the servers
                    params.split_mode = LLAMA_SPLIT_MODE_LAYER
                    params.tensor_split = split.baseAddress
                }
                return LlamaRuntime.capturingLog { llama_model_load_from_file(path, params) }
            }
        }
        guard let model = loaded else {
            if log.contains("unknown model architecture") {
                throw EngineError.unsupportedArchitecture(path: path, architecture: inspection.architecture)
            }
            throw EngineError.loadFailed(path: path, log: log.isEmpty ? "no reason given" : log)
        }
        pointer = model
        let vocab = llama_model_get_vocab(model)!
        var facts = Model.readFacts(model, vocab: vocab, path: path, inspection: inspection)
        if let chatTemplate { facts.chatTemplate = chatTemplate }
        let cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU).map { [RemoteDevices.facts($0, share: nil)] } ?? []
        facts.devices = cpu + zip(remote, shares).map { RemoteDevices.facts($0, share: $1) }
        endOfGenerationTokens = (0..<Int32(facts.vocabularySize)).filter { llama_vocab_is_eog(vocab, $0) }
        self.vocab = vocab
        self.facts = facts
    }

    deinit { llama_model_free(pointer) }

    private static func readFacts(_ model: OpaquePointer, vocab: OpaquePointer, path: String,
                                  inspection: GGUFInspection) -> ModelFacts {
        var buffer = [CChar](repeating: 0, count: 256)
        llama_model_desc(model, &buffer, buffer.count)
        let description = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let embd = Int(llama_model_n_embd(model))
        let vocabSize = Int(llama_vocab_n_tokens(vocab))
        let heads = Int(llama_model_n_head(model))
        let headDim = inspection.headDimension ?? (heads > 0 ? embd / heads : embd)
        let total = llama_model_n_params(model)
        let embeddingMatrices = UInt64(inspection.tiedEmbeddings ? 1 : 2) * UInt64(vocabSize * embd)
        return ModelFacts(
            path: path,
            architecture: inspection.architecture,
            description: description,
            fileBytes: inspection.fileBytes,
            parameters: total,
            nonEmbeddingParameters: total > embeddingMatrices ? total - embeddingMatrices : total,
            layers: Int(llama_model_n_layer(model)),
            embeddingWidth: embd,
            heads: heads,
            headsKV: Int(llama_model_n_head_kv(model)),
            attentionWidth: heads * headDim,
            trainedContext: Int(llama_model_n_ctx_train(model)),
            vocabularySize: vocabSize,
            tiedEmbeddings: inspection.tiedEmbeddings,
            chatTemplate: llama_model_chat_template(model, nil).map { String(cString: $0) },
            devices: [])
    }

    /// Each RPC device's share of the layers, handed to llama.cpp as its tensor split: the
    /// given proportions, else in proportion to each device's free memory (llama.cpp's own
    /// rule when told nothing). llama.cpp rounds the shares to whole layers.
    private static func shares(of devices: [ggml_backend_dev_t], split: [Float]) throws -> [Double] {
        guard !devices.isEmpty else { return [] }
        let weights: [Double]
        if split.isEmpty {
            weights = devices.map { device in
                var free = 0, total = 0
                ggml_backend_dev_memory(device, &free, &total)
                return Double(free)
            }
        } else {
            guard split.count == devices.count else {
                throw EngineError.placement(reason: "the split names \(split.count) shares; the RPC servers offer \(devices.count) devices")
            }
            if let problem = ModelPlacement.splitProblem(split) { throw EngineError.placement(reason: "the split: \(problem)") }
            weights = split.map(Double.init)
        }
        let total = weights.reduce(0, +)
        return weights.map { total > 0 ? $0 / total : 1 / Double(weights.count) }
    }

    // MARK: tokens

    /// A prompt to tokens: its template parts with their control tokens, the rest as text.
    /// `addSpecial` puts the BOS token first when the vocabulary asks for one.
    public func tokenize(_ prompt: PromptText, addSpecial: Bool = false) -> [Int32] {
        var tokens = addSpecial ? beginningOfSequence.map { [$0] } ?? [] : []
        for part in prompt.parts { tokens += tokenize(part.text, parseSpecial: part.isTemplate) }
        return tokens
    }

    /// Text to tokens. `parseSpecial` lets control tokens written as text (such as
    /// "<|im_start|>") become those tokens: only ever for the chat template's own text.
    public func tokenize(_ text: String, addSpecial: Bool = false, parseSpecial: Bool = false) -> [Int32] {
        let utf8 = Array(text.utf8)
        var capacity = utf8.count + 8
        while true {
            var tokens = [Int32](repeating: 0, count: capacity)
            let count = utf8.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { chars in
                    llama_tokenize(vocab, chars.baseAddress, Int32(utf8.count), &tokens, Int32(capacity),
                                   addSpecial, parseSpecial)
                }
            }
            if count >= 0 { return Array(tokens.prefix(Int(count))) }
            capacity = Int(-count)
        }
    }

    /// The bytes of one token (a token can hold part of a UTF-8 character).
    public func piece(_ token: Int32, renderSpecial: Bool = false) -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: 64)
        var count = llama_token_to_piece(vocab, token, &buffer, Int32(buffer.count), 0, renderSpecial)
        if count < 0 {
            buffer = [CChar](repeating: 0, count: Int(-count))
            count = llama_token_to_piece(vocab, token, &buffer, Int32(buffer.count), 0, renderSpecial)
        }
        return buffer.prefix(Int(max(count, 0))).map { UInt8(bitPattern: $0) }
    }

    public func detokenize(_ tokens: [Int32], renderSpecial: Bool = false) -> String {
        String(decoding: tokens.flatMap { piece($0, renderSpecial: renderSpecial) }, as: UTF8.self)
    }

    public func isEndOfGeneration(_ token: Int32) -> Bool { llama_vocab_is_eog(vocab, token) }

    /// Whether a token is a control token (a turn marker, BOS, EOS, ...).
    public func isControl(_ token: Int32) -> Bool { llama_vocab_is_control(vocab, token) }

    public var beginningOfSequence: Int32? {
        llama_vocab_get_add_bos(vocab) ? llama_vocab_bos(vocab) : nil
    }

    // MARK: chat template

    /// The names of the templates llama.cpp renders without Jinja.
    public static let builtInChatTemplates: [String] = {
        let count = Int(llama_chat_builtin_templates(nil, 0))
        var names = [UnsafePointer<CChar>?](repeating: nil, count: count)
        _ = llama_chat_builtin_templates(&names, count)
        return names.compactMap { $0.map { String(cString: $0) } }.sorted()
    }()

    /// Renders messages with the model's own chat template (llama.cpp's built-in
    /// template matcher, no Jinja), ending with the assistant's turn opened. The template
    /// is rendered around a stand-in for each content, which then goes back in as text.
    public func chatPrompt(_ messages: [ChatMessage]) throws -> PromptText {
        let nonce = UUID().uuidString
        let marks = messages.indices.map { "\u{1}content-\($0)-\(nonce)\u{1}" }
        var rest = Substring(try render(messages.indices.map { ChatMessage(role: messages[$0].role, content: marks[$0]) }))
        var prompt = PromptText()
        for (message, mark) in zip(messages, marks) {
            guard let range = rest.range(of: mark) else {
                throw EngineError.chatTemplate(reason: "the template does not copy each message's content once, in order")
            }
            prompt.append(PromptText.Part(text: String(rest[..<range.lowerBound]), isTemplate: true))
            prompt.append(message.content)
            rest = rest[range.upperBound...]
        }
        guard !rest.contains(nonce) else {
            throw EngineError.chatTemplate(reason: "the template does not copy each message's content once, in order")
        }
        prompt.append(PromptText.Part(text: String(rest), isTemplate: true))
        return prompt
    }

    private func render(_ messages: [ChatMessage]) throws -> String {
        guard let template = facts.chatTemplate else {
            throw EngineError.chatTemplate(reason: "the model carries no chat template (strategyd --chat-template NAME gives it one)")
        }
        let roles = messages.map { strdup($0.role) }
        let contents = messages.map { strdup($0.content) }
        defer { (roles + contents).forEach { free($0) } }
        let chat = (0..<messages.count).map { llama_chat_message(role: roles[$0], content: contents[$0]) }
        var capacity = messages.reduce(256) { $0 + 2 * ($1.content.utf8.count + $1.role.utf8.count) }
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            let written = llama_chat_apply_template(template, chat, chat.count, true, &buffer, Int32(capacity))
            if written < 0 { throw EngineError.chatTemplate(reason: "llama.cpp does not know this template") }
            if Int(written) <= capacity {
                return String(decoding: buffer.prefix(Int(written)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            capacity = Int(written)
        }
    }
}

/// What the GGUF header says, read before llama.cpp sees the file so that a bad file
/// gets a precise error rather than a load failure.
struct GGUFInspection {
    var architecture: String
    var fileBytes: UInt64
    var tiedEmbeddings: Bool
    var headDimension: Int?
    /// Whether a matrix (not a norm or a bias) has a type llamafile's sgemm takes.
    var sgemmWeights = false

    init(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw EngineError.fileNotFound(path: path)
        }
        let head = (try? handle.read(upToCount: 4)) ?? Data()
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.close()
        guard head == Data("GGUF".utf8) else {
            let shown = head.map { (0x20..<0x7f).contains($0) ? String(UnicodeScalar($0)) : String(format: "\\x%02x", $0) }
            throw EngineError.notGGUF(path: path, magic: "\"" + shown.joined() + "\"")
        }
        fileBytes = size
        let (parsed, log) = LlamaRuntime.capturingLog {
            gguf_init_from_file(path, gguf_init_params(no_alloc: true, ctx: nil))
        }
        guard let gguf = parsed else {
            throw EngineError.corrupt(path: path, reason: log.isEmpty ? "unreadable header or metadata" : log)
        }
        defer { gguf_free(gguf) }
        var end = UInt64(gguf_get_data_offset(gguf))
        let sgemmTypes = Set([GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
                              GGML_TYPE_Q5_0, GGML_TYPE_IQ4_NL].map(\.rawValue))
        for tensor in 0..<gguf_get_n_tensors(gguf) {
            let name = String(cString: gguf_get_tensor_name(gguf, tensor))
            if sgemmTypes.contains(gguf_get_tensor_type(gguf, tensor).rawValue), name.hasSuffix(".weight"), !name.contains("norm") {
                sgemmWeights = true
            }
            end = max(end, UInt64(gguf_get_data_offset(gguf)) + UInt64(gguf_get_tensor_offset(gguf, tensor))
                        + UInt64(gguf_get_tensor_size(gguf, tensor)))
        }
        if end > size { throw EngineError.truncated(path: path, expectedBytes: end, actualBytes: size) }
        let archKey = gguf_find_key(gguf, "general.architecture")
        guard archKey >= 0, let arch = gguf_get_val_str(gguf, archKey) else {
            throw EngineError.corrupt(path: path, reason: "no general.architecture key")
        }
        architecture = String(cString: arch)
        tiedEmbeddings = gguf_find_tensor(gguf, "output.weight") < 0
        let keyLength = gguf_find_key(gguf, "\(architecture).attention.key_length")
        headDimension = keyLength >= 0 ? Int(gguf_get_val_u32(gguf, keyLength)) : nil
    }
}

/// Process-wide llama.cpp set-up and log routing. llama.cpp logs through one global
/// callback; the engine keeps the recent lines so that a failed load can say why.
enum LlamaRuntime {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var initialized = false
    nonisolated(unsafe) private static var captured: [String] = []
    nonisolated(unsafe) private static var capturing = 0
    /// Set STRATEGYD_LLAMA_LOG=1 to see llama.cpp's own log on stderr.
    private static let verbose = ProcessInfo.processInfo.environment["STRATEGYD_LLAMA_LOG"] == "1"

    static func initialize() {
        lock.lock(); defer { lock.unlock() }
        guard !initialized else { return }
        initialized = true
        llama_backend_init()
        let callback: ggml_log_callback = { level, text, _ in
            guard let text else { return }
            let line = String(cString: text)
            if LlamaRuntime.verbose { FileHandle.standardError.write(Data(line.utf8)) }
            guard level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN else { return }
            LlamaRuntime.record(line)
        }
        llama_log_set(callback, nil)
    }

    private static func record(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        guard capturing > 0 else { return }
        captured.append(line.trimmingCharacters(in: .whitespacesAndNewlines))
        if captured.count > 20 { captured.removeFirst() }
    }

    /// Runs `body` and returns what llama.cpp logged as warnings or errors meanwhile.
    static func capturingLog<T>(_ body: () -> T) -> (T, String) {
        initialize()
        lock.lock(); capturing += 1; captured.removeAll(); lock.unlock()
        let result = body()
        lock.lock(); capturing -= 1; let lines = captured; lock.unlock()
        return (result, lines.filter { !$0.isEmpty }.joined(separator: "; "))
    }
}
