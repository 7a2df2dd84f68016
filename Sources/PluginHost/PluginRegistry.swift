import Foundation
import PluginABI
import JSONValue
#if canImport(Glibc)
import Glibc
#endif

public enum PluginKind: String, Sendable {
    case strategy, scorer
}

/// Why a plugin was refused; `reason` is the stable name clients see in error data.
public struct PluginLoadError: Error, CustomStringConvertible, Sendable {
    public enum Reason: String, Sendable {
        case invalidName = "invalid_name", notFound = "not_found", dlopen, noEntrySymbol = "no_entry_symbol"
        case abiVersion = "abi_version", structSize = "struct_size", nameMismatch = "name_mismatch"
        case badKind = "bad_kind", badSchema = "bad_schema", missingFunction = "missing_function"
        case initFailed = "init_failed", hostABI = "host_abi"
        case badSettings = "bad_settings", configureFailed = "configure_failed"
    }

    public let name: String
    public let reason: Reason
    public let message: String
    public var expected: String?
    public var found: String?

    public var description: String { "plugin '\(name)': \(message)" }

    /// What a client is told besides the message: the plugin, the reason and, for a
    /// mismatch, what was expected and what was found.
    public var data: JSON {
        var data: [String: JSON] = ["plugin": .string(name), "reason": .string(reason.rawValue)]
        if let expected { data["expected"] = .string(expected) }
        if let found { data["found"] = .string(found) }
        return .object(data)
    }
}

/// One loaded build of a plugin. Requests hold a reference while they run, so a build
/// that has been replaced stays usable until its last request ends; then it is
/// deinitialized and — unless the Swift runtime knows the image (see ELFSections) — unmapped.
public final class PluginGeneration: @unchecked Sendable {
    public let name: String
    public let version: String
    public let kind: PluginKind
    public let description: String
    public let schema: ParamsSchema
    /// The plugin's settings as it was configured with them (an empty object when it takes none).
    public let settings: JSON
    public let settingsSchema: JSON?
    public let file: String
    public let generation: Int
    public let loadedAt: Date
    /// The original file's modification time when this generation was copied from it.
    let fileModified: Date?
    let plugin: UnsafePointer<sd_plugin>
    let state: UnsafeMutableRawPointer?
    /// The optional sd_plugin.reads_logprobs, nil where the plugin's struct predates it.
    let readsLogprobs: ReadsLogprobs?
    typealias ReadsLogprobs = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sd_host>?, OpaquePointer?,
                                              UnsafePointer<CChar>?) -> Bool
    private let handle: UnsafeMutableRawPointer
    /// Whether dlclose may unmap the image: never for images the Swift runtime knows.
    private let unmappable: Bool
    private let inFlightLock = NSLock()
    private var inFlightCount = 0

    init(name: String, version: String, kind: PluginKind, description: String, schema: ParamsSchema,
         settings: JSON, settingsSchema: JSON?, file: String,
         generation: Int, fileModified: Date?, plugin: UnsafePointer<sd_plugin>, state: UnsafeMutableRawPointer?,
         readsLogprobs: ReadsLogprobs?, handle: UnsafeMutableRawPointer, unmappable: Bool) {
        self.name = name
        self.version = version
        self.kind = kind
        self.description = description
        self.schema = schema
        self.settings = settings
        self.settingsSchema = settingsSchema
        self.file = file
        self.generation = generation
        self.loadedAt = Date()
        self.fileModified = fileModified
        self.plugin = plugin
        self.state = state
        self.readsLogprobs = readsLogprobs
        self.handle = handle
        self.unmappable = unmappable
    }

    deinit {
        plugin.pointee.deinit?(state)
        if unmappable { dlclose(handle) }
    }

    public var inFlight: Int { inFlightLock.withLock { inFlightCount } }

    /// Runs `body` counted as one request in flight on this generation.
    func using<T>(_ body: () throws -> T) rethrows -> T {
        inFlightLock.withLock { inFlightCount += 1 }
        defer { inFlightLock.withLock { inFlightCount -= 1 } }
        return try body()
    }

    public var json: JSON {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return ["name": .string(name), "kind": .string(kind.rawValue), "version": .string(version),
                "abi": JSON(Int(SD_PLUGIN_ABI_VERSION)), "file": .string(file), "generation": JSON(generation),
                "loaded_at": .string(formatter.string(from: loadedAt)), "description": .string(description),
                "params_schema": schema.json, "settings": settings, "settings_schema": settingsSchema ?? .null,
                "in_flight": JSON(inFlight)]
    }
}

/// The plugins of one daemon: loaded only from the configured directory, by name.
public final class PluginRegistry: @unchecked Sendable {
    public let directory: URL
    /// The administrator's settings, a section (a JSON object) per plugin name.
    public let settings: [String: JSON]
    private let host: UnsafePointer<sd_host>
    private let lock = NSLock()
    private var current: [String: PluginGeneration] = [:]
    /// Builds loaded so far, per plugin name: the next one's generation number.
    private var generations: [String: Int] = [:]
    /// The modification time of the last build of each plugin that was refused.
    private var refusedBuilds: [String: Date?] = [:]
    /// Where private copies are made before dlopen, so that a rebuild of the original
    /// file never changes code that is mapped, and every generation has its own path.
    private let copies: URL

    public init(directory: URL, host: UnsafePointer<sd_host>, settings: [String: JSON] = [:]) throws {
        self.directory = directory.standardizedFileURL
        self.settings = settings
        self.host = host
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("strategyd-plugins.XXXXXX").path
        var buffer = Array(template.utf8CString)
        guard mkdtemp(&buffer) != nil else { throw CocoaError(.fileWriteUnknown) }
        copies = URL(fileURLWithPath: String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    deinit { try? FileManager.default.removeItem(at: copies) }

    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "-")
        }
    }

    public func file(for name: String) -> URL { directory.appendingPathComponent("lib\(name).so") }

    public func get(_ name: String) -> PluginGeneration? { lock.withLock { current[name] } }

    public var all: [PluginGeneration] { lock.withLock { current.values.sorted { $0.name < $1.name } } }

    /// The plugin files present in the directory (lib<name>.so with a valid name).
    public func available() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.compactMap { file in
            guard file.hasPrefix("lib"), file.hasSuffix(".so") else { return nil }
            let name = String(file.dropFirst(3).dropLast(3))
            return PluginRegistry.isValidName(name) ? name : nil
        }.sorted()
    }

    /// Loads (or reloads) `name` and makes it current. Requests already running keep the
    /// generation they started with.
    @discardableResult
    public func load(_ name: String) throws -> PluginGeneration {
        let loaded = try open(name)
        lock.withLock { current[name] = loaded }
        return loaded
    }

    /// Removes `name`; returns false if it was not loaded.
    @discardableResult
    public func unload(_ name: String) -> Bool {
        lock.withLock { current.removeValue(forKey: name) } != nil
    }

    static func modificationDate(_ file: URL) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: file.path))?[.modificationDate] as? Date
    }

    /// Reloads every loaded plugin whose file changed since it was loaded (SIGHUP, --watch).
    /// A refused build keeps the old generation and is not tried again until the file
    /// changes once more.
    public func reloadChanged() -> (reloaded: [PluginGeneration], refused: [PluginLoadError]) {
        var reloaded: [PluginGeneration] = []
        var refused: [PluginLoadError] = []
        for loaded in all {
            let modified = PluginRegistry.modificationDate(file(for: loaded.name))
            guard modified != loaded.fileModified, modified != lock.withLock({ refusedBuilds[loaded.name] }) else { continue }
            do {
                reloaded.append(try load(loaded.name))
            } catch let error as PluginLoadError {
                lock.withLock { refusedBuilds[loaded.name] = modified }
                refused.append(error)
            } catch {}
        }
        return (reloaded, refused)
    }

    /// Loads every plugin in the directory; returns the refusals (the daemon logs them).
    public func loadAll() -> [PluginLoadError] {
        available().compactMap { name in
            do { try load(name); return nil } catch let error as PluginLoadError { return error } catch { return nil }
        }
    }

    private func refuse(_ name: String, _ reason: PluginLoadError.Reason, _ message: String,
                        expected: String? = nil, found: String? = nil) -> PluginLoadError {
        PluginLoadError(name: name, reason: reason, message: message, expected: expected, found: found)
    }

    private func open(_ name: String) throws -> PluginGeneration {
        guard PluginRegistry.isValidName(name) else {
            throw refuse(name, .invalidName, "a plugin name matches [a-z0-9-]+", expected: "[a-z0-9-]+", found: name)
        }
        let original = file(for: name)
        guard FileManager.default.fileExists(atPath: original.path) else {
            throw refuse(name, .notFound, "no \(original.lastPathComponent) in the plugin directory \(directory.path)")
        }
        let generation = lock.withLock { () -> Int in
            generations[name, default: 0] += 1
            return generations[name]!
        }
        let modified = PluginRegistry.modificationDate(original)
        let copy = copies.appendingPathComponent("lib\(name).\(generation).so")
        do {
            try? FileManager.default.removeItem(at: copy)
            try FileManager.default.copyItem(at: original, to: copy)
        } catch {
            throw refuse(name, .dlopen, "could not copy \(original.path): \(error)")
        }
        // The mapping outlives the file: remove the copy once it is open.
        defer { try? FileManager.default.removeItem(at: copy) }
        guard let handle = dlopen(copy.path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown"
            throw refuse(name, .dlopen, "dlopen failed: \(reason) (run ldd on \(original.path) to see missing libraries)")
        }
        let containsSwift = ELFSections.names(of: copy.path).contains { $0.hasPrefix("swift5_") }
        var keepHandle = false
        defer { if !keepHandle && !containsSwift { dlclose(handle) } }

        guard let symbol = dlsym(handle, SD_PLUGIN_ENTRY_SYMBOL) else {
            throw refuse(name, .noEntrySymbol, "\(original.lastPathComponent) exports no \(SD_PLUGIN_ENTRY_SYMBOL)()",
                         expected: SD_PLUGIN_ENTRY_SYMBOL, found: "nothing")
        }
        let entry = unsafeBitCast(symbol, to: sd_plugin_entry_fn.self)
        guard let plugin = entry() else {
            throw refuse(name, .noEntrySymbol, "\(SD_PLUGIN_ENTRY_SYMBOL)() returned NULL")
        }
        let abi = plugin.pointee.abi_version
        guard abi == UInt32(SD_PLUGIN_ABI_VERSION) else {
            throw refuse(name, .abiVersion, "built for plugin ABI \(abi), this daemon speaks ABI \(SD_PLUGIN_ABI_VERSION)",
                         expected: String(SD_PLUGIN_ABI_VERSION), found: String(abi))
        }
        let size = Int(plugin.pointee.size)
        let minimum = PluginRegistry.minimumPluginSize
        guard size >= minimum else {
            throw refuse(name, .structSize, "sd_plugin is \(size) bytes, ABI \(SD_PLUGIN_ABI_VERSION) needs at least \(minimum)",
                         expected: ">= \(minimum)", found: String(size))
        }
        let declared = plugin.pointee.name.map { String(cString: $0) } ?? ""
        guard declared == name else {
            throw refuse(name, .nameMismatch, "the library calls itself '\(declared)' but its file is \(original.lastPathComponent)",
                         expected: name, found: declared)
        }
        let kind: PluginKind
        switch plugin.pointee.kind {
        case Int32(SD_KIND_STRATEGY.rawValue):
            guard plugin.pointee.solve != nil else { throw refuse(name, .missingFunction, "a strategy must implement solve()") }
            kind = .strategy
        case Int32(SD_KIND_SCORER.rawValue):
            guard plugin.pointee.score != nil else { throw refuse(name, .missingFunction, "a scorer must implement score()") }
            kind = .scorer
        default:
            throw refuse(name, .badKind, "unknown kind \(plugin.pointee.kind)", expected: "1 (strategy) or 2 (scorer)",
                         found: String(plugin.pointee.kind))
        }
        let schema: ParamsSchema
        do {
            schema = try ParamsSchema(parsing: plugin.pointee.params_schema.map { String(cString: $0) } ?? "{}")
        } catch {
            throw refuse(name, .badSchema, "\(error)")
        }
        var state: UnsafeMutableRawPointer?
        if let initialize = plugin.pointee.`init` {
            let status = initialize(host, &state)
            if status == Int32(SD_ERR_HOST_ABI.rawValue) {
                throw refuse(name, .hostABI, "built against a newer strategyd_plugin.h than this daemon's (ABI \(SD_PLUGIN_ABI_VERSION), "
                             + "sd_host of \(MemoryLayout<sd_host>.size) bytes): rebuild it against this daemon's header",
                             expected: String(MemoryLayout<sd_host>.size))
            }
            guard status == 0 else { throw refuse(name, .initFailed, "init() returned \(status)", found: String(status)) }
        }
        let configured: (settings: JSON, schema: JSON?)
        do {
            configured = try configure(name, plugin, size: size, state: state)
        } catch {
            plugin.pointee.deinit?(state)
            throw error
        }
        keepHandle = true
        return PluginGeneration(
            name: name, version: plugin.pointee.version.map { String(cString: $0) } ?? "0",
            kind: kind, description: plugin.pointee.description.map { String(cString: $0) } ?? "",
            schema: schema, settings: configured.settings, settingsSchema: configured.schema,
            file: original.path, generation: generation, fileModified: modified, plugin: plugin, state: state,
            readsLogprobs: PluginRegistry.covers(size, \.reads_logprobs) ? plugin.pointee.reads_logprobs : nil,
            handle: handle, unmappable: !containsSwift)
    }

    /// Checks the administrator's section for `name` against the plugin's settings schema and
    /// hands the complete settings to configure(). Returns them, with the schema, for plugins.list.
    private func configure(_ name: String, _ plugin: UnsafePointer<sd_plugin>, size: Int,
                           state: UnsafeMutableRawPointer?) throws -> (settings: JSON, schema: JSON?) {
        let section = settings[name]
        let schemaText = PluginRegistry.covers(size, \.settings_schema) ? plugin.pointee.settings_schema.map { String(cString: $0) } : nil
        guard let schemaText else {
            if let section, section != [:] {
                throw refuse(name, .badSettings, "the configuration has settings for it, but it takes none",
                             expected: "no settings", found: section.serialized())
            }
            return ([:], nil)
        }
        let schema: ParamsSchema
        do {
            schema = try ParamsSchema(parsing: schemaText, allowPaths: true)
        } catch {
            throw refuse(name, .badSchema, "settings_schema: \(error)")
        }
        let complete: JSON
        switch schema.complete(section, base: directory) {
        case .success(let value): complete = value
        case .failure(let mismatch):
            let setting = "\(name)." + mismatch.param.replacingOccurrences(of: "params.", with: "")
            throw refuse(name, .badSettings, "setting \(setting) must be \(mismatch.expected)",
                         expected: mismatch.expected, found: section.map { $0.serialized() } ?? "nothing")
        }
        if PluginRegistry.covers(size, \.configure), let configure = plugin.pointee.configure {
            let status = SharedResources.configuring(name) { configure(state, host, complete.serialized()) }
            guard status == 0 else {
                throw refuse(name, .configureFailed, "configure() returned \(status)", found: String(status))
            }
        }
        return (complete, schema.json)
    }

    /// SD_PLUGIN_MIN_SIZE: the fields every ABI 1 plugin has; later ones are optional.
    static let minimumPluginSize = MemoryLayout<sd_plugin>.offset(of: \.reads_logprobs)!

    /// Whether a plugin struct of `size` bytes holds the optional field at `field`.
    static func covers<T>(_ size: Int, _ field: KeyPath<sd_plugin, T>) -> Bool {
        MemoryLayout<sd_plugin>.offset(of: field)! + MemoryLayout<T>.size <= size
    }
}

/// Section names of an ELF64 file. An image registered with the Swift runtime carries
/// swift5_* sections: Swift code, and also any library SwiftPM links (it adds swiftrt.o,
/// whose constructor registers the image, even to a pure C target). The runtime keeps
/// pointers into registered images, so those are never unmapped; a C plugin built with
/// plain cc has no such sections and is unmapped for real.
enum ELFSections {
    static func names(of path: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: path), data.count > 64,
              data.prefix(4) == Data([0x7f, 0x45, 0x4c, 0x46]), data[4] == 2 else { return [] }
        func integer(_ offset: Int, _ size: Int) -> Int {
            guard offset >= 0, offset + size <= data.count else { return 0 }
            return (0..<size).reduce(0) { $0 | Int(data[data.startIndex + offset + $1]) << (8 * $1) }
        }
        let tableOffset = integer(0x28, 8), entrySize = integer(0x3a, 2)
        let count = integer(0x3c, 2), namesIndex = integer(0x3e, 2)
        guard entrySize >= 0x28, namesIndex < count else { return [] }
        let namesOffset = integer(tableOffset + namesIndex * entrySize + 0x18, 8)
        return (0..<count).compactMap { index in
            var start = namesOffset + integer(tableOffset + index * entrySize, 4)
            guard start < data.count else { return nil }
            var bytes: [UInt8] = []
            while start < data.count, data[data.startIndex + start] != 0, bytes.count < 256 {
                bytes.append(data[data.startIndex + start])
                start += 1
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
