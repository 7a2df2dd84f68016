import Foundation

/// Where scripts/setup keeps what it fetches and builds (models, data, llama.cpp): the one
/// place Swift code finds it. The rule is scripts/env.sh's: $STRATEGYD_CACHE, else
/// $XDG_CACHE_HOME/strategyd, else ~/.cache/strategyd. (Package.swift repeats it: a
/// manifest cannot import the package's own code.)
public enum CachePaths {
    public static var root: URL {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["STRATEGYD_CACHE"] { return URL(fileURLWithPath: explicit) }
        let cacheHome = environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return cacheHome.appendingPathComponent("strategyd")
    }

    /// Catalog models, as NAME.gguf.
    public static var models: URL { root.appendingPathComponent("models") }
}
