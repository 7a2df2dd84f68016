import StrategyKit

/// Greedy chain-of-thought: one sample at temperature 0, the answer extracted from it.
/// The baseline every other strategy is measured against. (Bit-reproducible beside other
/// solves only when the daemon runs --deterministic: otherwise llama.cpp's sums depend on
/// where the KV cells lie and what shares a batch.)
struct Greedy: Strategy {
    static let name = "greedy"
    static let version = "1.0.0"
    static let description = "Greedy chain-of-thought: one temperature-0 solution, answer extracted"
    static let params: [Param] = [
        .integer("max_tokens", 512, 1...4096, "tokens the solution may take"),
        .integer("progress_every", 64, 1...4096, "tokens between progress notifications"),
    ]

    init() {}

    func solve(_ request: Request, problem: String, params: Params) throws -> Solution {
        let sequence = try request.chat(system: Prompts.system, user: problem)
        let limit = params.int("max_tokens")
        var text = ""
        var produced = 0
        var finish = Finish.maxTokens
        // Generate in chunks so a streaming client sees real progress; a chunk boundary
        // costs nothing (the last token is evaluated with the next chunk).
        while produced < limit {
            let chunk = try request.generate([sequence], maxTokens: min(params.int("progress_every"), limit - produced))[0]
            text += chunk.text
            produced += chunk.tokens
            finish = chunk.finish
            request.progress(["event": "step", "tokens": produced, "text": text])
            if finish != .maxTokens || chunk.tokens == 0 { break }
        }
        let answer = request.extractAnswer(text)
        return Solution(text: text, answer: answer, candidates: [.init(text: text, answer: answer)],
                        details: ["finish": "\(finish)", "tokens": produced])
    }
}

@_cdecl("strategyd_plugin_entry")
public func strategydPluginEntry() -> UnsafePointer<sd_plugin> { export(Greedy.self) }
