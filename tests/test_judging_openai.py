"""The openai-SDK judge against the fault-injecting test server on loopback (tests/fault_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fault_server import LoopbackServer, ServerOptions

from interp_sot.judging.base import reply_budget
from interp_sot.judging.cache import CachedJudge
from interp_sot.judging.heuristic import HeuristicJudge
from interp_sot.judging.openai_compat import (
    JudgeRequestError,
    JudgeTransportError,
    OpenAIConfig,
    OpenAIJudge,
    is_loopback,
    parse_retry_after,
)
from interp_sot.judging.prompts.conversational import CONVERSATIONAL_SCORE, format_excerpts
from interp_sot.judging.structured import ask_json_many


def prompt(i: int) -> list[dict[str, str]]:
    texts = [f"Oh, you did that {i} times? I can't believe it!", f"The reaction yields {i} mol of product [3]."]
    return CONVERSATIONAL_SCORE.render(n=str(len(texts)), excerpts=format_excerpts(texts))


def expected(i: int) -> str:
    return HeuristicJudge().complete(prompt(i))


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(server: LoopbackServer, sleeps: Sleeps | None = None, **kw) -> OpenAIJudge:
    cfg = dict(model="m", base_url=server.base_url, backoff_s=0.01, max_retries=3, timeout_s=5.0)
    cfg.update(kw)
    return OpenAIJudge(OpenAIConfig(**cfg), sleep=sleeps if sleeps is not None else Sleeps())


@pytest.mark.parametrize("stream", [True, False])
def test_plain_request_round_trip(stream: bool) -> None:
    with LoopbackServer() as server:
        judge = client(server, stream=stream)
        assert judge.complete(prompt(1)) == expected(1)
        assert json.loads(expected(1))["scores"][0] > json.loads(expected(1))["scores"][1]
        assert judge.usage.requests == 1 and judge.usage.retries == 0 and judge.usage.prompt_tokens > 0
        stats = server.stats()
        assert stats["requests"] == 1 and stats["streamed"] == int(stream)
        assert judge.name == "openai:m"


@pytest.mark.parametrize(
    ("fault", "stream"),
    [("500", True), ("malformed", True), ("malformed", False), ("truncated", True), ("truncated", False),
     ("drop", True), ("timeout", True)],
)
def test_transient_fault_is_retried(fault: str, stream: bool) -> None:
    with LoopbackServer(ServerOptions(faults=[fault], timeout_sleep_s=1.0)) as server:
        sleeps = Sleeps()
        judge = client(server, sleeps, timeout_s=0.3, stream=stream)
        assert judge.complete(prompt(2)) == expected(2)
        assert judge.usage.retries == 1 and judge.usage.requests == 1
        assert server.stats()["requests"] == 2
        assert len(sleeps) == 1 and 0.005 <= sleeps[0] <= 0.01  # jittered first backoff


def test_a_slow_stream_that_makes_progress_is_not_abandoned() -> None:
    # pieces of 8 characters 0.2 s apart: longer than the timeout in all, but never silent for that long
    pieces = -(-len(expected(7)) // 8)
    assert pieces * 0.2 > 0.45
    with LoopbackServer(ServerOptions(faults=["slow"], slow_gap_s=0.2)) as server:
        sleeps = Sleeps()
        judge = client(server, sleeps, timeout_s=0.45)
        assert judge.complete(prompt(7)) == expected(7)
        assert server.stats()["requests"] == 1 and judge.usage.retries == 0 and not sleeps
    # the same server without streaming: the client sees silence until the whole reply is ready
    with LoopbackServer(ServerOptions(latency_s=0.6, faults=[])) as server:
        judge = client(server, Sleeps(), timeout_s=0.3, stream=False, max_retries=0)
        with pytest.raises(JudgeTransportError, match=r"no progress for 0\.3s"):
            judge.complete(prompt(7))


def test_reply_budget_reaches_the_server() -> None:
    with LoopbackServer() as server:
        judge = client(server)
        judge.complete(prompt(8))
        with reply_budget(40):
            judge.complete(prompt(9))
        assert judge.complete(prompt(10)) == expected(10)
        assert server.stats()["max_tokens"] == [1024, 40, 1024]
    with pytest.raises(ValueError, match=">= 1 token"):
        with reply_budget(0):
            pass


@pytest.mark.parametrize("stream", [True, False])
def test_extra_body_fields_reach_the_server_even_unknown_to_the_sdk(stream: bool) -> None:
    """``extra_body`` carries server-specific fields (``transformers serve``'s ``generation_config``) that the SDK's
    ``create`` has no keyword for; they arrive in the JSON as given, and the batch-file body keeps them too."""
    extra = {"generation_config": json.dumps({"suppress_tokens": [5, 7]}), "seed": 3}
    with LoopbackServer() as server:
        judge = client(server, stream=stream, extra_body=extra)
        assert judge.complete(prompt(11)) == expected(11)
        (body,) = server.state.bodies
        assert body["generation_config"] == extra["generation_config"] and body["seed"] == 3
        assert body["model"] == "m" and body["max_tokens"] == 1024 and bool(body.get("stream")) == stream
    assert judge.request_body(prompt(11))["generation_config"] == extra["generation_config"]


def test_429_retry_after_pauses_every_call_of_the_client() -> None:
    with LoopbackServer(ServerOptions(faults=["429"], retry_after_s=2.5)) as server:
        sleeps = Sleeps()  # records instead of sleeping, so the pause is still in force afterwards
        judge = client(server, sleeps)
        assert judge.complete(prompt(3)) == expected(3)
        assert server.stats()["requests"] == 2
        assert len(sleeps) == 1 and sleeps[0] == pytest.approx(2.5, abs=0.2)
        # another call (any thread) made during the pause waits for it too, before sending anything
        assert judge.complete(prompt(4)) == expected(4)
        assert len(sleeps) == 2 and sleeps[1] == pytest.approx(2.5, abs=0.3)
        assert server.stats()["requests"] == 3


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= parse_retry_after(future) <= 31


def test_gives_up_after_retries_with_a_clear_error(tmp_path) -> None:
    with LoopbackServer(ServerOptions(faults=["500"] * 10)) as server:
        judge = CachedJudge(client(server, max_retries=2), tmp_path / "cache.jsonl")
        with pytest.raises(JudgeTransportError, match=r"failed 3 times; last error: HTTP 500"):
            judge.complete(prompt(4))
        assert server.stats()["requests"] == 3
    assert not (tmp_path / "cache.jsonl").exists()  # failures are never cached


def test_unknown_model_fails_fast() -> None:
    with LoopbackServer(ServerOptions(models=("served",))) as server:
        with pytest.raises(JudgeRequestError, match=r"HTTP 404.*unknown model 'other'.*does not exist"):
            client(server, model="other").complete(prompt(5))
        assert server.stats()["requests"] == 1
        assert client(server, model="served").complete(prompt(5)) == expected(5)


def test_api_key_handling(monkeypatch) -> None:
    monkeypatch.delenv("MY_JUDGE_KEY", raising=False)
    with pytest.raises(ValueError, match=r"set the environment variable MY_JUDGE_KEY"):
        OpenAIJudge(OpenAIConfig(model="m", base_url="https://judge.example.com/v1", api_key_env="MY_JUDGE_KEY"))
    with LoopbackServer(ServerOptions(api_key="sekret")) as server:
        with pytest.raises(JudgeRequestError, match=r"HTTP 401.*MY_JUDGE_KEY"):
            client(server, api_key_env="MY_JUDGE_KEY").complete(prompt(6))  # loopback: allowed, but rejected
        monkeypatch.setenv("MY_JUDGE_KEY", "wrong")
        with pytest.raises(JudgeRequestError, match="HTTP 401"):
            client(server, api_key_env="MY_JUDGE_KEY").complete(prompt(6))
        monkeypatch.setenv("MY_JUDGE_KEY", "sekret")
        assert client(server, api_key_env="MY_JUDGE_KEY").complete(prompt(6)) == expected(6)
    assert is_loopback("http://localhost:1/v1") and is_loopback("http://[::1]:8/v1")
    assert not is_loopback("http://10.0.0.1/v1")


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="base_url"):
        OpenAIConfig(model="m", base_url="ftp://x")
    with pytest.raises(ValueError, match="model"):
        OpenAIConfig(model="")
    with pytest.raises(ValueError, match="timeout_s"):
        OpenAIConfig(model="m", timeout_s=0)
    assert OpenAIConfig(model="m", base_url="http://h/v1/chat/completions/").url == "http://h/v1/chat/completions"
    assert OpenAIConfig(model="m", base_url="http://h/v1/chat/completions").api_root == "http://h/v1"
    with pytest.raises(ValueError, match="max_tokens"):
        OpenAIConfig(model="m", max_tokens=0)
    # a concurrency that suits the server: a local server computes one call at a time
    assert OpenAIConfig(model="m", base_url="http://127.0.0.1:9/v1").concurrency == 2
    assert OpenAIConfig(model="m", base_url="https://api.example.com/v1").concurrency == 8
    assert OpenAIConfig(model="m", base_url="http://127.0.0.1:9/v1", max_concurrency=5).concurrency == 5


def test_concurrency_is_bounded() -> None:
    with LoopbackServer(ServerOptions(latency_s=0.25)) as server:
        judge = client(server, max_concurrency=4)
        replies = judge.complete_many([prompt(i) for i in range(12)])
        assert replies == [expected(i) for i in range(12)]
        assert server.stats()["peak_in_flight"] == 4


def _start_server_process(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    port_file = tmp_path / f"port-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("fault_server.py")), "--port-file", str(port_file), *args],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("loopback server did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text()}/v1"


def test_server_killed_mid_run_loses_nothing_and_resumes(tmp_path) -> None:
    cache = tmp_path / "cache.jsonl"
    prompts = [prompt(i) for i in range(12)]
    validate = lambda obj: obj["scores"]  # noqa: E731
    proc, url = _start_server_process(tmp_path, "--die-after", "5", "--latency", "0.05")
    try:
        cfg = OpenAIConfig(model="m", base_url=url, backoff_s=0.01, max_retries=2, max_concurrency=3)
        judge = CachedJudge(OpenAIJudge(cfg, sleep=Sleeps()), cache)
        got: dict[int, list[int]] = {}
        with pytest.raises(JudgeTransportError, match="connection"):
            ask_json_many(judge, prompts, validate, on_result=lambda i, v: got.__setitem__(i, v))
        assert proc.wait(timeout=30) == 3  # the server really died
    finally:
        proc.kill()
    # everything the client received is in the cache, and correct
    saved = [json.loads(line) for line in cache.read_text().splitlines()]
    assert 1 <= len(saved) <= 5 and len(saved) == judge.misses
    assert {r["value"] for r in saved} <= {expected(i) for i in range(12)}
    assert all(v == json.loads(expected(i))["scores"] for i, v in got.items())

    proc, url = _start_server_process(tmp_path)
    try:
        cfg = OpenAIConfig(model="m", base_url=url, backoff_s=0.01, max_retries=2, max_concurrency=3)
        resumed = CachedJudge(OpenAIJudge(cfg, sleep=Sleeps()), cache)
        out = ask_json_many(resumed, prompts, validate)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        stats = json.loads(opener.open(url.replace("/v1", "/control/stats"), timeout=5).read())
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert out == [json.loads(expected(i))["scores"] for i in range(12)]
    assert stats["requests"] == 12 - len(saved)  # only the missing ones were asked again
    assert resumed.hits == len(saved)
    assert len(cache.read_text().splitlines()) == 12
