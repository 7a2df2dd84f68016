"""strategyd-gateway end to end: the official openai package (and LangChain's way of
streaming through it) against a real gateway and daemon on the test model; every error
status; the metrics parsed by prometheus_client."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, List, Optional

import httpx2  # the openai package's HTTP client
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from strategyd_client import Client
from strategyd_daemon import LONG_PARAMS, LONG_PROBLEM, REPO, SHORT_PROBLEM, Daemon, stop_process

GATEWAY_BIN = Path(os.environ.get("STRATEGYD_BIN") or REPO / ".build" / "debug" / "strategyd").parent / "strategyd-gateway"
SHORT = "greedy:max_tokens=24"
KEY = "test-key-0123456789abcdef"


class Gateway:
    def __init__(self, process: "subprocess.Popen[bytes]", url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def stop(self) -> None:
        stop_process(self.process)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gateway(folder: Path, socket_path: str, *extra: str, listen: Optional[str] = None) -> Gateway:
    assert GATEWAY_BIN.is_file(), f"{GATEWAY_BIN} is missing: swift build"
    listen = listen or f"127.0.0.1:{free_port()}"
    log = folder / f"gateway-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(GATEWAY_BIN), "--socket", socket_path, "--listen", listen, *extra],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{listen}" if not listen.startswith("/") else "http://gateway"
    deadline = time.monotonic() + 30
    while b"serving" not in log.read_bytes():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return Gateway(process, url, log)


@pytest.fixture(scope="module")
def gateway(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    started = start_gateway(tmp_path_factory.mktemp("gateway"), daemon.socket_path)
    yield started
    started.stop()


@pytest.fixture
def sdk(gateway: Gateway) -> openai.OpenAI:
    # No retries: a test of a 429 or a 503 must see it.
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def user(text: str) -> list:
    return [{"role": "user", "content": text}]


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_a_completion_is_the_daemons_solve(sdk: openai.OpenAI, daemon: Daemon) -> None:
    completion = sdk.chat.completions.create(model=SHORT, messages=user(SHORT_PROBLEM), seed=3)
    with Client(daemon.socket_path) as client:
        direct = client.solve(SHORT_PROBLEM, strategy="greedy", params={"max_tokens": 24}, seed=3)
    assert completion.object == "chat.completion" and completion.model == SHORT
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == direct.text
    assert choice.finish_reason in ("stop", "length")
    extension = completion.model_extra["strategyd"]
    assert extension["answer"] == direct.answer and extension["strategy"]["name"] == "greedy"
    metrics = extension["metrics"]
    assert metrics["flops"] > 0 and metrics["wall_s"] > 0
    assert completion.usage.prompt_tokens == metrics["prompt_tokens"] > 0
    assert completion.usage.completion_tokens == metrics["generated_tokens"] + metrics["thought_tokens"] > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_max_tokens_and_the_extension_reach_the_budget(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model="greedy", messages=user(LONG_PROBLEM), max_tokens=80,
                                             extra_body={"strategyd": {"params": {"max_tokens": 3000}}})
    extension = completion.model_extra["strategyd"]
    assert extension["stopped_by"] == "max_tokens" and extension["budget_exhausted"] is True
    assert completion.choices[0].finish_reason == "length"
    assert extension["metrics"]["evaluated_tokens"] <= 80 + LONG_PARAMS["progress_every"]


def test_a_streamed_completion_has_the_same_text(sdk: openai.OpenAI) -> None:
    plain = sdk.chat.completions.create(model=SHORT, messages=user(SHORT_PROBLEM))
    chunks = list(sdk.chat.completions.create(model=SHORT, messages=user(SHORT_PROBLEM), stream=True,
                                              stream_options={"include_usage": True}))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == plain.choices[0].message.content
    finishes = [choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == plain.usage.total_tokens
    assert all(chunk.id == chunks[0].id for chunk in chunks)


def test_progress_arrives_as_comments_before_the_answer(gateway: Gateway) -> None:
    body = {"model": "greedy:max_tokens=64,progress_every=8", "stream": True, "messages": user(LONG_PROBLEM)}
    with httpx2.stream("POST", gateway.url + "/v1/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    progress = [json.loads(line[len(": progress "):]) for line in lines if line.startswith(": progress ")]
    assert [event["event"] for event in progress[:1]] == ["started"]
    assert sum(event["event"] == "step" for event in progress) >= 2
    first_content = next(i for i, line in enumerate(lines) if '"content":"' in line and '"content":""' not in line)
    assert max(i for i, line in enumerate(lines) if line.startswith(": progress ")) < first_content
    assert lines[-1] == "data: [DONE]"


def test_n_returns_the_top_candidates(sdk: openai.OpenAI) -> None:
    model = "self-consistency:k=3,max_tokens=24"
    completion = sdk.chat.completions.create(model=model, messages=user(SHORT_PROBLEM), n=2, seed=1)
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert completion.choices[0].message.content != completion.choices[1].message.content
    votes = [choice.model_extra["strategyd"]["votes"] for choice in completion.choices]
    assert completion.choices[0].model_extra["strategyd"]["answer"] == completion.model_extra["strategyd"]["answer"]
    assert votes[0] >= votes[1]
    everything = sdk.chat.completions.create(model=model, messages=user(SHORT_PROBLEM), n=10, seed=1)
    assert len(everything.choices) == 3  # no more than the strategy's candidates
    streamed = list(sdk.chat.completions.create(model=model, messages=user(SHORT_PROBLEM), n=2, seed=1, stream=True))
    indices = {choice.index for chunk in streamed for choice in chunk.choices if choice.delta.content}
    assert indices == {0, 1}


def test_models_lists_the_strategies(sdk: openai.OpenAI, daemon: Daemon) -> None:
    models = sdk.models.list().data
    names = {model.id for model in models}
    assert {"greedy", "self-consistency", "rebase"} <= names
    assert "arith" not in names  # scorers are not models
    greedy = sdk.models.retrieve("greedy")
    assert greedy.owned_by == "strategyd" and greedy.created > 1_600_000_000
    with Client(daemon.socket_path) as client:
        info = client.models_info()
    assert greedy.model_extra["strategyd"]["model"]["name"] == info.name
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("no-such-strategy")


def test_metrics_and_health(gateway: Gateway, sdk: openai.OpenAI) -> None:
    before = httpx2.get(gateway.url + "/metrics").text
    sdk.chat.completions.create(model=SHORT, messages=user(SHORT_PROBLEM))
    response = httpx2.get(gateway.url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert metric(after, "strategyd_solves_total", strategy="greedy", outcome="ok") == \
        metric(before, "strategyd_solves_total", strategy="greedy", outcome="ok") + 1
    assert metric(after, "strategyd_tokens_total", kind="generated") > metric(before, "strategyd_tokens_total", kind="generated")
    health = httpx2.get(gateway.url + "/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"


@pytest.mark.parametrize("kwargs, param", [
    ({"model": "Not A Spec", "messages": user("x")}, "model"),
    ({"model": "greedy:k", "messages": user("x")}, "model"),
    ({"model": "greedy", "messages": [{"role": "system", "content": "brief"}, {"role": "user", "content": "x"}]}, "messages"),
    ({"model": "greedy", "messages": user("x"), "n": 0}, "n"),
    ({"model": "greedy", "messages": user("x"), "seed": -4}, "seed"),
    ({"model": "greedy:max_tokens=999999", "messages": user("x")}, "model"),
    ({"model": "greedy@timeout_s=-1e21", "messages": user("x")}, "model"),
    ({"model": "greedy", "messages": user("x"), "extra_body": {"strategyd": {"budget": {"timeout_s": 0}}}},
     "strategyd.budget.timeout_s"),
    ({"model": "greedy", "messages": user("x"), "extra_body": {"strategyd": {"params": {"max_tokens": "lots"}}}},
     "strategyd.params.max_tokens"),
    ({"model": "greedy", "messages": user("x"), "extra_body": {"strategyd": {"budget": {"max_flops": -1}}}},
     "strategyd.budget.max_flops"),
])
def test_400_names_the_param(sdk: openai.OpenAI, kwargs: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(**kwargs)
    assert raised.value.status_code == 400 and raised.value.param == param, raised.value.body
    assert raised.value.type == "invalid_request_error" and raised.value.message


def test_404_unknown_strategy(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.chat.completions.create(model="no-such-strategy", messages=user("x"))
    assert raised.value.code == "model_not_found" and raised.value.param == "model"
    assert "greedy" in raised.value.message  # names what is loaded


def test_401_without_the_key(daemon: Daemon, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    keyed = start_gateway(tmp_path, daemon.socket_path, "--api-key-file", str(key_file))
    try:
        for key in ("wrong-key-0123456789abcdef", KEY[:-1]):
            with pytest.raises(openai.AuthenticationError) as raised:
                openai.OpenAI(base_url=keyed.url + "/v1", api_key=key, max_retries=0).models.list()
            assert raised.value.status_code == 401 and raised.value.code == "invalid_api_key"
        assert httpx2.get(keyed.url + "/metrics").status_code == 401
        assert httpx2.get(keyed.url + "/health").status_code == 200  # for probes
        good = openai.OpenAI(base_url=keyed.url + "/v1", api_key=KEY, max_retries=0)
        assert good.chat.completions.create(model=SHORT, messages=user(SHORT_PROBLEM)).choices[0].message.content
    finally:
        keyed.stop()


def test_413_body_too_large(daemon: Daemon, tmp_path: Path) -> None:
    small = start_gateway(tmp_path, daemon.socket_path, "--max-body-bytes", "4096")
    try:
        sdk = openai.OpenAI(base_url=small.url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as raised:
            sdk.chat.completions.create(model="greedy", messages=user("x" * 8000))
        assert raised.value.status_code == 413 and raised.value.code == "request_too_large"
        # The gateway still serves.
        assert sdk.chat.completions.create(model=SHORT, messages=user(SHORT_PROBLEM)).choices
    finally:
        small.stop()


def test_429_when_the_daemon_is_busy(spare_daemon, tmp_path: Path) -> None:
    busy = spare_daemon("--max-concurrent-solves", "1", "--max-queued-solves", "0")
    front = start_gateway(tmp_path, busy.socket_path)
    try:
        sdk = openai.OpenAI(base_url=front.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        stream = sdk.chat.completions.create(model="greedy", messages=user(LONG_PROBLEM), stream=True,
                                             extra_body={"strategyd": {"params": LONG_PARAMS}})
        next(iter(stream))  # the long solve runs
        with pytest.raises(openai.RateLimitError) as raised:
            sdk.chat.completions.create(model=SHORT, messages=user(SHORT_PROBLEM))
        assert raised.value.status_code == 429 and raised.value.code == "busy"
        stream.close()
    finally:
        front.stop()


def test_503_when_the_daemon_is_down(spare_daemon, tmp_path: Path) -> None:
    doomed = spare_daemon()
    front = start_gateway(tmp_path, doomed.socket_path)
    try:
        sdk = openai.OpenAI(base_url=front.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        assert sdk.chat.completions.create(model=SHORT, messages=user(SHORT_PROBLEM)).choices
        doomed.stop()
        with pytest.raises(openai.InternalServerError) as raised:
            sdk.chat.completions.create(model=SHORT, messages=user(SHORT_PROBLEM))
        assert raised.value.status_code == 503 and raised.value.code == "daemon_unavailable"
        assert httpx2.get(front.url + "/health").status_code == 503
        assert front.process.poll() is None  # the gateway outlives its daemon
    finally:
        front.stop()


def test_a_request_timeout_ends_the_solve_with_its_best(daemon: Daemon, tmp_path: Path) -> None:
    quick = start_gateway(tmp_path, daemon.socket_path, "--request-timeout", "2")
    try:
        sdk = openai.OpenAI(base_url=quick.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        completion = sdk.chat.completions.create(model="greedy", messages=user(LONG_PROBLEM),
                                                 extra_body={"strategyd": {"params": LONG_PARAMS}})
        assert completion.model_extra["strategyd"]["stopped_by"] == "timeout_s"
        assert completion.choices[0].finish_reason == "length"
        with pytest.raises(openai.BadRequestError) as raised:  # no more than the gateway allows
            sdk.chat.completions.create(model="greedy@timeout_s=5", messages=user("x"))
        assert raised.value.param == "model"
    finally:
        quick.stop()


def test_a_client_that_leaves_mid_stream_ends_its_solve(gateway: Gateway, daemon: Daemon) -> None:
    body = {"model": "greedy", "stream": True, "messages": user(LONG_PROBLEM), "strategyd": {"params": LONG_PARAMS}}
    with httpx2.stream("POST", gateway.url + "/v1/chat/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith(": progress ") and '"step"' in line:
                break
    # The solve would generate for much longer than this if nothing ended it.
    deadline = time.monotonic() + 5
    with Client(daemon.socket_path) as client:
        while client.status().solves_in_flight > 0:
            assert time.monotonic() < deadline, "the solve outlived its HTTP client"
            time.sleep(0.1)


def test_a_client_that_leaves_before_the_answer_ends_its_solve(gateway: Gateway, daemon: Daemon) -> None:
    body = {"model": "greedy", "messages": user(LONG_PROBLEM), "strategyd": {"params": LONG_PARAMS}}
    with pytest.raises(httpx2.TimeoutException):
        httpx2.post(gateway.url + "/v1/chat/completions", json=body, timeout=2)
    deadline = time.monotonic() + 5
    with Client(daemon.socket_path) as client:
        while client.status().solves_in_flight > 0:
            assert time.monotonic() < deadline, "the solve outlived its HTTP client"
            time.sleep(0.1)


def test_a_unix_socket_listener(daemon: Daemon, tmp_path: Path) -> None:
    path = tmp_path / "gateway.sock"
    front = start_gateway(tmp_path, daemon.socket_path, listen=str(path))
    try:
        assert path.stat().st_mode & 0o002 == 0, "the socket is world-writable"
        sdk = openai.OpenAI(base_url="http://gateway/v1", api_key="unused", max_retries=0,
                            http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=str(path))))
        assert sdk.chat.completions.create(model=SHORT, messages=user(SHORT_PROBLEM)).choices[0].message.content
    finally:
        front.stop()


@pytest.mark.parametrize("args, message", [
    (["--listen", "0.0.0.0:8090"], "not a loopback address"),
    (["--listen", "127.example.com:8090"], "not a loopback address"),
    (["--listen", "no-port"], "HOST:PORT"),
    (["--max-body-bytes", "10"], "--max-body-bytes"),
    (["--request-timeout", "7200"], "--request-timeout"),
])
def test_refuses_bad_flags(args: List[str], message: str) -> None:
    result = subprocess.run([str(GATEWAY_BIN), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and message in result.stderr


def test_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    key_file.chmod(0o644)
    result = subprocess.run([str(GATEWAY_BIN), "--api-key-file", str(key_file), "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "readable by every user" in result.stderr
