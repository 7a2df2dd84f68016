import Foundation
import JSONValue
import NIOCore
import NIOEmbedded
import PluginHost
import RPC

/// What a client's bytes go through before any method runs: the daemon's line framing (its
/// SwiftNIO decoder, in a real pipeline), JSON parsing (jansson), the JSON-RPC envelope,
/// the string cap and a plugin's params schema. Built with -sanitize=fuzzer (scripts/fuzz),
/// libFuzzer drives it; built plainly, it replays the files it is given (the committed
/// corpus and every input that once crashed it), so the tests run them.
enum RequestPath {
    static let maxRequestBytes = 4096

    /// A schema with a param of every kind a request may fill, aliases included.
    static let schema = try! ParamsSchema(parsing: """
        {"n": {"type": "integer", "default": 4, "minimum": 1, "maximum": 64, "aliases": ["k"]},
         "temperature": {"type": "number", "default": 0.7, "minimum": 0, "maximum": 2},
         "vote": {"type": "string", "default": "majority", "enum": ["majority", "weighted"]},
         "logprobs": {"type": "boolean", "default": false},
         "scorer_params": {"type": "object", "default": {}}}
        """)

    /// Feeds `data` to the framing in pieces (its first byte says where to cut) and every
    /// frame on through the rest of the path. Each step must answer, never trap.
    static func run(_ data: [UInt8]) {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineFrameDecoder(maxBytes: maxRequestBytes)))
        let step = max(1, Int(data.first ?? 1))
        var offset = 0
        while offset < data.count {
            let end = min(data.count, offset + step)
            _ = try? channel.writeInbound(channel.allocator.buffer(bytes: data[offset..<end]))
            offset = end
            while let frame = try? channel.readInbound(as: Frame.self) { handle(frame) }
        }
        _ = try? channel.finish()
    }

    static func handle(_ frame: Frame) {
        guard case .line(let line) = frame else { return }
        guard let parsed = try? line.withUnsafeBytes({ try JSON.parse($0) }) else { return }
        let elements: [JSON]
        if case .array(let batch) = parsed { elements = batch } else { elements = [parsed] }
        for element in elements {
            guard case .success(let request) = Request.validate(element) else { continue }
            _ = request.params?.firstString(longerThan: 256)
            _ = schema.complete(request.params?["params"])
            // What the daemon sends back must serialize and parse again.
            let reply = Message.response(id: request.id ?? .null, result: request.params ?? .null).serialized()
            precondition((try? JSON.parse(reply)) != nil, "a reply that does not parse: \(reply)")
        }
    }
}

#if FUZZING
/// libFuzzer's entry point (its archive's own main, which this program's replaces, names it).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    RequestPath.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

/// libFuzzer's own driver (libclang_rt.fuzzer), run from this program's main.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<Int32>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32
#endif

/// Built with -DFUZZING (scripts/fuzz): libFuzzer's driver with its flags. Otherwise:
/// replays each file named (or every file of each folder named) through the request path.
@main
struct FuzzRequests {
    static func main() throws {
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv) { fuzzOneInput($0, $1) })
        #else
        var count = 0
        for argument in CommandLine.arguments.dropFirst() {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isFolder) else {
                FileHandle.standardError.write(Data("no such file: \(argument)\n".utf8))
                exit(2)
            }
            let files = isFolder.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: argument).sorted().map { argument + "/" + $0 }
                : [argument]
            for file in files {
                RequestPath.run(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
                count += 1
            }
        }
        print("replayed \(count) inputs through the request path")
        #endif
    }
}
