// swift-tools-version:6.1
// strategyd: a daemon that keeps one GGUF model resident (llama.cpp) and runs strategy
// plugins over it. The tree shows the architecture:
//   Sources/Engine        the model, sequences, batched decoding, sampling, accounting
//   Sources/PluginABI     the C header that is the whole plugin contract
//   Sources/PluginHost    dlopen, ABI checks, hot-swap, the host table handed to plugins
//   Sources/JSONValue     the JSON value type (jansson), shared by the host and the RPC layer
//   Sources/RPC           JSON-RPC 2.0 over a Unix socket (SwiftNIO)
//   Sources/strategyd     the daemon;  Sources/strategyctl  the CLI
//   Sources/Gateway       the OpenAI-compatible HTTP gateway (Hummingbird), strategyd-gateway its executable
//   Sources/StrategyKit   write a plugin in plain Swift;  Sources/Answers  answer parsing
//   Plugins/NAME          one strategy or scorer plugin each (lib NAME.so)
import PackageDescription
import Foundation

// llama.cpp is built by scripts/setup into a versioned cache (the rule of scripts/env.sh and
// Sources/CachePaths, repeated because a manifest cannot import the package's code);
// `current` links to the build for this machine. Everything that links llama gets an rpath to it, so binaries run
// without LD_LIBRARY_PATH.
let environment = ProcessInfo.processInfo.environment
let cacheHome = environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")
let strategydCache = environment["STRATEGYD_CACHE"] ?? (cacheHome + "/strategyd")
let llamaRpath: [LinkerSetting] = [
    .unsafeFlags(["-Xlinker", "-rpath", "-Xlinker", strategydCache + "/llama.cpp/current/lib"])
]
// Swift plugins must never be unmapped (the runtime keeps pointers into them): NODELETE
// turns dlclose into a no-op for them.
let pluginLinker: [LinkerSetting] = [.unsafeFlags(["-Xlinker", "-z", "-Xlinker", "nodelete"])]

// Each plugin lives in Plugins/NAME and becomes libNAME.so beside the executables;
// `swift` is false for plugins written in C.
let plugins: [(name: String, swift: Bool)] = [
    ("greedy", true),
    ("self-consistency", false),
    ("best-of-n", true),
    ("beam-search", true),
    ("rebase", true),
    ("quiet-star", true),
    ("quiet-rebase", true),
    ("self-eval", true),
    ("arith", true),
    ("logprob", true),
    ("prm", true),
    ("combine", true),
    ("deepconf", true),
    ("escalate", true),
    ("auto", true),
    ("cot-decoding", true),
    ("self-certainty", true),
]

var products: [Product] = [
    .executable(name: "strategyd", targets: ["strategyd"]),
    .executable(name: "strategyctl", targets: ["strategyctl"]),
    .executable(name: "strategyd-gateway", targets: ["strategyd-gateway"]),
    .executable(name: "strategyd-bench-engine", targets: ["BenchEngine"]),
    .executable(name: "strategyd-bench-daemon", targets: ["BenchDaemon"]),
    .executable(name: "strategyd-fuzz-requests", targets: ["FuzzRequests"]),
]
var targets: [Target] = [
    .systemLibrary(name: "CLlama", path: "Sources/CLlama", pkgConfig: "llama"),
    .systemLibrary(name: "CJansson", path: "Sources/CJansson"),
    .target(name: "PluginABI", path: "Sources/PluginABI"),
    .target(name: "Engine", dependencies: ["CLlama"], linkerSettings: llamaRpath),
    .target(name: "JSONValue", dependencies: ["CJansson"]),
    .target(name: "CachePaths"),
    .target(name: "Systemd"),
    .target(name: "RPC", dependencies: [
        "JSONValue", "CJansson", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
    ]),
    .target(name: "PluginHost", dependencies: ["Engine", "JSONValue", "Answers", "PluginABI"], linkerSettings: llamaRpath),
    .target(name: "StrategyKit", dependencies: ["PluginABI"]),
    .executableTarget(name: "strategyd", dependencies: [
        "Engine", "RPC", "PluginHost", "CachePaths", "Systemd",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
    ], linkerSettings: llamaRpath),
    .executableTarget(name: "strategyctl", dependencies: [
        "RPC", .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ]),
    .target(name: "Gateway", dependencies: [
        "RPC", "JSONValue", .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
    ]),
    .executableTarget(name: "strategyd-gateway", dependencies: [
        "Gateway", "RPC", "Systemd", .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HummingbirdCore", package: "hummingbird"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
    ]),
    .target(name: "Answers", dependencies: ["PluginABI"]),
    .target(name: "TestSupport", dependencies: ["RPC", "CachePaths"], path: "Sources/TestSupport"),
    .executableTarget(name: "BenchEngine", dependencies: ["Engine"], linkerSettings: llamaRpath),
    .executableTarget(name: "BenchDaemon", dependencies: ["RPC"]),
    // libFuzzer's target over the request path (scripts/fuzz); built plainly, it replays inputs.
    .executableTarget(name: "FuzzRequests", dependencies: [
        "RPC", "PluginHost", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
    ], linkerSettings: llamaRpath),
    .testTarget(name: "EngineTests", dependencies: ["Engine", "TestSupport"], linkerSettings: llamaRpath),
    .testTarget(name: "GatewayTests", dependencies: ["Gateway", "JSONValue"]),
    .testTarget(name: "AnswersTests", dependencies: ["Answers", "TestSupport"]),
    .testTarget(name: "PluginHostTests", dependencies: ["PluginHost", "JSONValue"], linkerSettings: llamaRpath),
    .testTarget(name: "DaemonTests", dependencies: ["RPC", "TestSupport"], exclude: ["Fixtures"]),
    .testTarget(name: "StrategyTests", dependencies: ["RPC", "TestSupport", "StrategyKit", "Answers"], exclude: ["Fixtures"]),
]
for plugin in plugins {
    products.append(.library(name: plugin.name, type: .dynamic, targets: [plugin.name]))
    if plugin.swift {
        targets.append(.target(name: plugin.name, dependencies: ["StrategyKit"], path: "Plugins/\(plugin.name)",
                               linkerSettings: pluginLinker))
    } else {
        // C plugins carry no Swift runtime and can be unmapped for real.
        targets.append(.target(name: plugin.name, dependencies: ["PluginABI"], path: "Plugins/\(plugin.name)",
                               linkerSettings: [.linkedLibrary("jansson")]))
    }
}

let package = Package(
    name: "strategyd",
    platforms: [.macOS(.v13)],
    products: products,
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The gateway's HTTP server; its swift-configuration support is not used.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: targets
)
