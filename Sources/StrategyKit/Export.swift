import Foundation
import PluginABI

/// The plugin this image exports. Each plugin library links its own copy of StrategyKit
/// and is loaded RTLD_LOCAL, so this global is per plugin (and per generation).
private enum Exported {
    nonisolated(unsafe) static var strategy: (any Strategy)?
    nonisolated(unsafe) static var scorer: (any Scorer)?
    nonisolated(unsafe) static var descriptor: UnsafeMutablePointer<sd_plugin>?
    /// The declared params and settings, which every Params read is checked against.
    nonisolated(unsafe) static var params: [Param] = []
    nonisolated(unsafe) static var settingParams: [Param] = []
    /// The settings configure() was called with; written once, before any request.
    nonisolated(unsafe) static var settings = Params(json: "{}", declared: [])

    /// A request's params, as the daemon hands them over.
    static func requestParams(_ text: UnsafePointer<CChar>) -> Params {
        Params(json: String(cString: text), declared: params)
    }
    /// The plugin type's configure.
    nonisolated(unsafe) static var configure: ((Params, HostResources) throws -> Void)?
}

extension Request {
    /// The plugin's settings, as the daemon's administrator gave them (defaults filled in).
    public var settings: Params { Exported.settings }
}

/// The sd_plugin of a Swift strategy: return it from `strategyd_plugin_entry`.
public func export<S: Strategy>(_ type: S.Type) -> UnsafePointer<sd_plugin> {
    if Exported.descriptor == nil {
        Exported.strategy = S()
        Exported.params = S.params
        Exported.descriptor = descriptor(S.self, kind: SD_KIND_STRATEGY)
        Exported.descriptor!.pointee.solve = { _, host, raw, problem, params in
            guard let host, let problem, let params, let strategy = Exported.strategy else {
                return Int32(SD_ERR_INVALID_ARGUMENT.rawValue)
            }
            let request = Request(host: host, raw: raw)
            do {
                let solution = try strategy.solve(request, problem: String(cString: problem),
                                                  params: Exported.requestParams(params))
                return host.pointee.set_result(raw, solution.json)
            } catch {
                return report(error, host: host, raw: raw)
            }
        }
    }
    return UnsafePointer(Exported.descriptor!)
}

/// The sd_plugin of a Swift scorer: return it from `strategyd_plugin_entry`.
public func export<S: Scorer>(_ type: S.Type) -> UnsafePointer<sd_plugin> {
    if Exported.descriptor == nil {
        Exported.scorer = S()
        Exported.params = S.params
        Exported.descriptor = descriptor(S.self, kind: SD_KIND_SCORER)
        Exported.descriptor!.pointee.score = { _, host, raw, problem, solution, params, out in
            guard let host, let problem, let solution, let params, let out, let scorer = Exported.scorer else {
                return Int32(SD_ERR_INVALID_ARGUMENT.rawValue)
            }
            do {
                out.pointee = try scorer.score(Request(host: host, raw: raw), problem: String(cString: problem),
                                               solution: String(cString: solution), params: Exported.requestParams(params))
                return Int32(SD_OK.rawValue)
            } catch {
                return report(error, host: host, raw: raw)
            }
        }
        Exported.descriptor!.pointee.reads_logprobs = { _, host, raw, params in
            guard let host, let params, let scorer = Exported.scorer else { return false }
            return scorer.readsLogprobs(Request(host: host, raw: raw), params: Exported.requestParams(params))
        }
    }
    return UnsafePointer(Exported.descriptor!)
}

/// A params_schema or settings_schema: each param's name -> its type, default and bounds.
private func schemaText(_ params: [Param]) -> String {
    jsonText(Dictionary(uniqueKeysWithValues: params.map { ($0.name, $0.schemaEntry) }))
}

private func descriptor<P: PluginMetadata>(_ type: P.Type, kind: sd_plugin_kind) -> UnsafeMutablePointer<sd_plugin> {
    var plugin = sd_plugin()
    plugin.abi_version = UInt32(SD_PLUGIN_ABI_VERSION)
    plugin.size = UInt32(MemoryLayout<sd_plugin>.size)
    // These strings live as long as the image, which is never unmapped.
    plugin.name = UnsafePointer(strdup(P.name))
    plugin.version = UnsafePointer(strdup(P.version))
    plugin.kind = Int32(kind.rawValue)
    plugin.description = UnsafePointer(strdup(P.description))
    plugin.params_schema = UnsafePointer(strdup(schemaText(P.params)))
    if !P.settings.isEmpty {
        plugin.settings_schema = UnsafePointer(strdup(schemaText(P.settings)))
        Exported.settingParams = P.settings
        Exported.settings = Params(json: "{}", declared: P.settings)
        Exported.configure = P.configure
        plugin.configure = { _, host, settings in
            guard let host, let settings else { return Int32(SD_ERR_INVALID_ARGUMENT.rawValue) }
            Exported.settings = Params(json: String(cString: settings), declared: Exported.settingParams)
            do {
                try Exported.configure?(Exported.settings, HostResources(host: host))
                return Int32(SD_OK.rawValue)
            } catch let failure as PluginFailure {
                host.pointee.log(nil, 3, "configure: \(failure.description)")
                return failure.status
            } catch {
                return Int32(SD_ERR_PLUGIN.rawValue)
            }
        }
    }
    plugin.`init` = { host, _ in
        guard let host, host.pointee.abi_version == UInt32(SD_PLUGIN_ABI_VERSION),
              host.pointee.size >= UInt32(MemoryLayout<sd_host>.size) else { return Int32(SD_ERR_HOST_ABI.rawValue) }
        return Int32(SD_OK.rawValue)
    }
    let pointer = UnsafeMutablePointer<sd_plugin>.allocate(capacity: 1)
    pointer.initialize(to: plugin)
    return pointer
}

private func report(_ error: Error, host: UnsafePointer<sd_host>, raw: OpaquePointer?) -> Int32 {
    if let failure = error as? PluginFailure {
        _ = host.pointee.fail(raw, failure.description)
        return failure.status
    }
    if let hostError = error as? Request.HostError {
        _ = host.pointee.fail(raw, hostError.description)
        return hostError.status
    }
    return host.pointee.fail(raw, "\(error)")
}
