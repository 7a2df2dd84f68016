import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Builds a C plugin from a test fixture with plain cc, as a build tool would: into a
/// temporary file beside the target, then renamed, so a watching daemon never loads half
/// a library. cc-built plugins carry no Swift runtime registration: the daemon unmaps them.
public enum CPlugin {
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Compiles `source` (relative to the repository) into `folder`/lib`name`.so.
    public static func compile(_ source: String, into folder: URL, name: String, defines: [String] = [],
                               libraries: [String] = []) throws {
        let temporary = folder.appendingPathComponent(".lib\(name).so.tmp")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["cc", "-shared", "-fPIC", "-O1",
                             "-I", repository.appendingPathComponent("Sources/PluginABI/include").path]
            + defines + ["-o", temporary.path, repository.appendingPathComponent(source).path] + libraries.map { "-l" + $0 }
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw DaemonProcess.Failure(message: "cc failed for \(name) (\(source))") }
        guard rename(temporary.path, folder.appendingPathComponent("lib\(name).so").path) == 0 else {
            throw DaemonProcess.Failure(message: "could not move lib\(name).so into \(folder.path)")
        }
    }
}
