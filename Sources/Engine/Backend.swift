import CLlama
import Foundation

/// The llama.cpp build that computes the logits and the CPU kernels compiled into it. A
/// seeded solve reproduces token for token only on the same build and kernels: builds
/// for other CPUs (scripts/setup builds for the CPU it runs on) round the logits'
/// last bits differently, and with them, now and then, a sampled token.
public struct Backend: Sendable, Equatable {
    public let ggmlVersion: String
    public let ggmlCommit: String
    /// llama_print_system_info(): each backend and the CPU features it was built with.
    public let systemInfo: String

    /// Read once: llama_print_system_info writes into a static buffer.
    public static let current: Backend = {
        LlamaRuntime.initialize()
        return Backend(ggmlVersion: String(cString: ggml_version()), ggmlCommit: String(cString: ggml_commit()),
                       systemInfo: String(cString: llama_print_system_info())
                           .trimmingCharacters(in: CharacterSet(charactersIn: " |")))
    }()
}
