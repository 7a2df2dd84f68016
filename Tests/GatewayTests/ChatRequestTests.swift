import Gateway
import JSONValue
import XCTest

/// How an OpenAI chat-completion body becomes a solve, and a solve's result a completion.
final class ChatRequestTests: XCTestCase {
    func body(_ extra: [String: JSON] = [:], model: String = "self-consistency:k=4") -> JSON {
        var fields: [String: JSON] = ["model": .string(model), "messages": [["role": "user", "content": "What is 2+2?"]]]
        fields.merge(extra) { $1 }
        return .object(fields)
    }

    func refusal(_ body: JSON) -> APIError? {
        do {
            _ = try ChatRequest(body: body, timeoutSeconds: 600)
            return nil
        } catch {
            return error
        }
    }

    func testMapsTheFieldsThatMeanTheSame() throws {
        let chat = try ChatRequest(body: body(["seed": 7, "max_tokens": 900, "n": 2, "temperature": 0.3,
                                               "strategyd": ["params": ["temperature": 0.5], "budget": ["max_flops": 1e12]]]),
                                   timeoutSeconds: 600)
        XCTAssertEqual(chat.solve["strategy"], "self-consistency")
        XCTAssertEqual(chat.solve["problem"], "What is 2+2?")
        XCTAssertEqual(chat.solve["seed"], 7)
        XCTAssertEqual(chat.solve["params"], ["k": 4, "temperature": 0.5])
        XCTAssertEqual(chat.solve["budget"], ["max_tokens": 900, "max_flops": 1e12, "timeout_s": 600.0])
        XCTAssertEqual(chat.n, 2)
        XCTAssertEqual(chat.field(forDaemonParam: "params.k"), "model")
        XCTAssertEqual(chat.field(forDaemonParam: "params.temperature"), "strategyd.params.temperature")
        XCTAssertEqual(chat.field(forDaemonParam: "budget.max_tokens"), "max_tokens")
        XCTAssertEqual(chat.field(forDaemonParam: "problem"), "messages")
    }

    func testTextPartsAndMaxCompletionTokens() throws {
        let chat = try ChatRequest(body: body(["messages": [["role": "user", "content": [["type": "text", "text": "a"], ["type": "text", "text": "b"]]]],
                                               "max_completion_tokens": 50, "stream": true, "stream_options": ["include_usage": true]]),
                                   timeoutSeconds: 30)
        XCTAssertEqual(chat.problem, "a\nb")
        XCTAssertEqual(chat.solve["budget"]?["max_tokens"], 50)
        XCTAssertEqual(chat.solve["budget"]?["timeout_s"], 30.0)
        XCTAssertTrue(chat.stream && chat.includeUsage)
    }

    func testRefusalsNameTheirParam() {
        let cases: [(JSON, String?, Int)] = [
            (.array([]), nil, 400),
            (["messages": [["role": "user", "content": "x"]]], "model", 400),
            (body(model: "Not A Spec"), "model", 400),
            (body(["messages": []]), "messages", 400),
            (body(["messages": [["role": "system", "content": "be brief"], ["role": "user", "content": "x"]]]), "messages", 400),
            (body(["messages": [["role": "assistant", "content": "x"]]]), "messages[0].role", 400),
            (body(["messages": [["role": "user", "content": [["type": "image_url", "image_url": ["url": "x"]]]]]]), "messages[0].content[0]", 400),
            (body(["messages": [["role": "user", "content": ""]]]), "messages[0].content", 400),
            (body(["n": 0]), "n", 400),
            (body(["n": 65]), "n", 400),
            (body(["seed": -1]), "seed", 400),
            (body(["max_tokens": 0]), "max_tokens", 400),
            (body(["max_tokens": 5, "max_completion_tokens": 6]), "max_tokens", 400),
            (body(["max_tokens": 5], model: "greedy@max_tokens=9"), "max_tokens", 400),
            (body(["stream": "yes"]), "stream", 400),
            (body(["tools": [["type": "function"]]]), "tools", 400),
            (body(["logprobs": true]), "logprobs", 400),
            (body(["response_format": ["type": "json_object"]]), "response_format", 400),
            (body(["strategyd": ["params": ["k": 8]]]), "strategyd.params.k", 400),
            (body(["strategyd": ["budget": ["timeout_s": 601]]]), "strategyd.budget.timeout_s", 400),
            (body(["strategyd": ["extra": 1]]), "strategyd.extra", 400),
        ]
        for (body, param, status) in cases {
            guard let error = refusal(body) else {
                XCTFail("accepted \(body.serialized())")
                continue
            }
            XCTAssertEqual(error.param, param, body.serialized())
            XCTAssertEqual(error.status, status, body.serialized())
            XCTAssertEqual(error.json["error"]?["type"], "invalid_request_error")
        }
    }

    func testChoicesPutTheChosenFirstThenByVotes() {
        let result: JSON = [
            "answer": "4", "text": "B", "budget_exhausted": false,
            "candidates": [
                ["text": "A", "answer": "5", "votes": 1, "vote_weight": 1.0],
                ["text": "C", "answer": "6", "votes": 2, "vote_weight": 2.0],
                ["text": "B", "answer": "4", "votes": 3, "vote_weight": 3.0],
                ["text": "D", "answer": "6", "votes": 2, "vote_weight": 2.0],
            ],
            "metrics": ["prompt_tokens": 10, "generated_tokens": 30, "thought_tokens": 5, "cached_tokens": 4, "flops": 1e9],
        ]
        let choices = ChatCompletion.choices(of: result, n: 3)
        XCTAssertEqual(choices.map(\.text), ["B", "C", "D"])
        XCTAssertEqual(choices[0].details["votes"], 3)
        XCTAssertEqual(ChatCompletion.choices(of: result, n: 64).count, 4)
        XCTAssertEqual(ChatCompletion.usage(result)["completion_tokens"], 35)
        XCTAssertEqual(ChatCompletion.usage(result)["total_tokens"], 45)
        XCTAssertEqual(ChatCompletion.usage(result)["prompt_tokens_details"]?["cached_tokens"], 4)
        let completion = ChatCompletion(model: "m").completion(result, n: 1)
        XCTAssertEqual(completion["choices"]?.arrayValue?.count, 1)
        XCTAssertEqual(completion["choices"]?.arrayValue?.first?["finish_reason"], "stop")
        XCTAssertEqual(completion["strategyd"]?["metrics"]?["flops"], 1e9)
    }
}
