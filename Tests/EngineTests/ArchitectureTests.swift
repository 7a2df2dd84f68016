import Engine
import Foundation
import TestSupport
import XCTest

/// What the strategies assume of a model (docs/models.md), on the test model's llama
/// architecture and on Gemma 3 (270M, base): the chat template, the end-of-generation
/// tokens, the beginning of sequence.
final class ArchitectureTests: XCTestCase {
    let messages = [ChatMessage(role: "system", content: "SYS"), ChatMessage(role: "user", content: "USER")]

    func testLlama() throws {
        let model = try Model(path: try TestAssets.model())
        XCTAssertEqual(model.facts.architecture, "llama")
        XCTAssertEqual(try model.chatPrompt(messages).text,
                       "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nUSER<|im_end|>\n<|im_start|>assistant\n")
        let end = model.tokenize("<|im_end|>", parseSpecial: true)
        XCTAssertEqual(end.count, 1)
        XCTAssertTrue(model.isEndOfGeneration(end[0]))
        XCTAssertNil(model.beginningOfSequence)
    }

    func testGemma3() throws {
        let path = try TestAssets.model("gemma3-270m-q4_k_m")
        XCTAssertThrowsError(try Model(path: path).chatPrompt(messages)) { error in
            XCTAssertTrue("\(error)".contains("carries no chat template"), "\(error)")
        }
        let model = try Model(path: path, chatTemplate: "gemma")
        XCTAssertEqual(model.facts.architecture, "gemma3")
        XCTAssertEqual(model.facts.embeddingWidth, 640)
        // Gemma has no system turn: llama.cpp writes the system message into the user's.
        XCTAssertEqual(try model.chatPrompt(messages).text,
                       "<start_of_turn>user\nSYS\n\nUSER<end_of_turn>\n<start_of_turn>model\n")
        for marker in ["<end_of_turn>", "<eos>"] {
            let tokens = model.tokenize(marker, parseSpecial: true)
            XCTAssertEqual(tokens.count, 1, marker)
            XCTAssertTrue(model.isEndOfGeneration(tokens[0]), marker)
        }
        XCTAssertFalse(model.isEndOfGeneration(model.tokenize("<start_of_turn>", parseSpecial: true)[0]))
        XCTAssertNotNil(model.beginningOfSequence)
    }
}
