"""Test fixture: an OpenAI-compatible chat-completions server on loopback that answers with the heuristic judge
and injects the faults real servers produce (test-only code; the real-server tests use ``transformers serve``).

The client code that talks to it is the one that talks to vLLM or a hosted API. Requests with ``"stream": true``
get server-sent events (one content piece per event). Faults, one per request, in order:

- ``timeout``: wait ``timeout_sleep_s`` before answering (longer than the client's timeout)
- ``429``: HTTP 429 with ``Retry-After: retry_after_s``; ``500``: HTTP 500
- ``malformed``: HTTP 200 whose body is not JSON (nor server-sent events)
- ``truncated``: a body shorter than its Content-Length, or a stream that stops before its finish event
- ``drop``: close the connection without answering
- ``slow``: stream the reply in pieces ``slow_gap_s`` apart (a slow server that is making progress)

``die_after=N`` makes the process exit abruptly after N completions (a crash mid-run). Control endpoints:
``POST /control/faults`` ``{"faults": [...]}`` appends faults; ``GET /control/stats`` returns counters.
Run as a process: ``python tests/fault_server.py --port-file F [--latency S] [--die-after N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from interp_sot.judging.heuristic import HeuristicJudge

FAULTS = ("timeout", "429", "500", "malformed", "truncated", "drop", "slow")
"""Fault names accepted by the server."""


@dataclass
class ServerOptions:
    """Behaviour of the loopback server."""

    models: tuple[str, ...] = ()
    """Served model names; a request for any other gets 404 (empty: accept any)."""
    api_key: str | None = None
    """If set, requests must carry ``Authorization: Bearer <api_key>`` (else 401)."""
    latency_s: float = 0.0
    """Delay before each answer (simulates model time; lets tests see concurrency)."""
    retry_after_s: float = 1.0
    """``Retry-After`` value sent with injected 429s."""
    timeout_sleep_s: float = 2.0
    """How long an injected ``timeout`` stalls."""
    slow_gap_s: float = 0.2
    """Pause between the streamed pieces of a ``slow`` reply."""
    die_after: int | None = None
    """Exit the process (``os._exit``) after this many completions; only for subprocess servers."""
    faults: list[str] = field(default_factory=list)
    """Initial fault queue (see module doc)."""

    def __post_init__(self) -> None:
        bad = [f for f in self.faults if f not in FAULTS]
        if bad:
            raise ValueError(f"unknown faults {bad}; known: {FAULTS}")


class _State:
    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.judge = HeuristicJudge()
        self.lock = threading.Lock()
        self.faults: deque[str] = deque(options.faults)
        self.requests = 0
        self.completions = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.prompt_chars = 0
        self.bodies: list[dict[str, Any]] = []

    def add_faults(self, faults: Iterable[str]) -> None:
        faults = list(faults)
        bad = [f for f in faults if f not in FAULTS]
        if bad:
            raise ValueError(f"unknown faults {bad}; known: {FAULTS}")
        with self.lock:
            self.faults.extend(faults)

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {
                "requests": self.requests,
                "completions": self.completions,
                "peak_in_flight": self.peak_in_flight,
                "prompt_chars": self.prompt_chars,
                "faults_left": len(self.faults),
                "max_tokens": [b.get("max_tokens") for b in self.bodies],
                "streamed": sum(bool(b.get("stream")) for b in self.bodies),
            }


def _reply_text(judge: HeuristicJudge, messages: list[dict[str, Any]]) -> str:
    try:
        return judge.complete(messages)  # type: ignore[arg-type]
    except ValueError:
        users = [m.get("content", "") for m in messages if m.get("role") == "user"]
        return f"echo: {users[-1] if users else ''}"


class _Handler(BaseHTTPRequestHandler):
    server_version = "interp-sot-loopback/1"
    protocol_version = "HTTP/1.1"
    state: _State

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/control/stats":
            self._send_json(200, self.state.stats())
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/control/faults":
            try:
                self.state.add_faults(json.loads(body)["faults"])
            except (ValueError, KeyError) as err:
                self._send_json(400, {"error": {"message": str(err)}})
                return
            self._send_json(200, {"ok": True})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        st = self.state
        with st.lock:
            st.requests += 1
            st.in_flight += 1
            st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
            fault = st.faults.popleft() if st.faults else None
        try:
            self._chat(body, fault)
        finally:
            with st.lock:
                st.in_flight -= 1

    def _chat(self, body: bytes, fault: str | None) -> None:
        st, opts = self.state, self.state.options
        if opts.api_key is not None and self.headers.get("Authorization") != f"Bearer {opts.api_key}":
            self._send_json(401, {"error": {"message": "Incorrect API key provided."}})
            return
        try:
            request = json.loads(body)
            messages = request["messages"]
            model = request["model"]
        except (ValueError, KeyError, TypeError):
            self._send_json(400, {"error": {"message": "body must be JSON with model and messages"}})
            return
        with st.lock:
            st.bodies.append({k: v for k, v in request.items() if k != "messages"})
        stream = bool(request.get("stream"))
        if opts.models and model not in opts.models:
            self._send_json(404, {"error": {"message": f"The model `{model}` does not exist."}})
            return
        if fault == "timeout":
            time.sleep(opts.timeout_sleep_s)
        elif fault == "429":
            self._send_json(429, {"error": {"message": "rate limited"}}, {"Retry-After": f"{opts.retry_after_s:g}"})
            return
        elif fault == "500":
            self._send_json(500, {"error": {"message": "internal error"}})
            return
        elif fault == "malformed":
            data = b"<html>502 Bad Gateway</html>"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        elif fault in ("truncated", "drop"):
            if fault == "truncated" and stream:
                self._start_stream()
                self._event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "{\"sco"}}]})
            elif fault == "truncated":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "4096")
                self.end_headers()
                self.wfile.write(b'{"choices": [{"message": {"content": "')
                self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        if opts.latency_s:
            time.sleep(opts.latency_s)
        text = _reply_text(st.judge, messages)
        prompt_chars = sum(len(m.get("content", "")) for m in messages)
        reply = {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(text) // 4},
        }
        with st.lock:  # reserve the slot before answering, so that at most die_after replies ever leave
            if opts.die_after is not None and st.completions >= opts.die_after:
                os._exit(3)
            st.completions += 1
            st.prompt_chars += prompt_chars
            done = st.completions
        with contextlib.suppress(OSError):  # the client may have given up (timeout fault)
            if stream:
                self._stream_reply(reply, opts.slow_gap_s if fault == "slow" else 0.0)
            else:
                self._send_json(200, reply)
        if opts.die_after is not None and done >= opts.die_after:
            os._exit(3)


    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _event(self, obj: Any) -> None:
        self.wfile.write(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")
        self.wfile.flush()

    def _stream_reply(self, reply: dict[str, Any], gap_s: float) -> None:
        """The reply as server-sent events: role, the text in pieces of 8 characters, finish, usage, [DONE]."""
        text = reply["choices"][0]["message"]["content"]
        base = {"id": reply["id"], "object": "chat.completion.chunk", "created": reply["created"],
                "model": reply["model"]}
        self._start_stream()
        self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        for i in range(0, len(text), 8):
            if gap_s:
                time.sleep(gap_s)
            self._event({**base, "choices": [{"index": 0, "delta": {"content": text[i:i + 8]}}]})
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        self._event({**base, "choices": [], "usage": reply["usage"]})
        self._event(b"[DONE]")


class LoopbackServer:
    """The server in a background thread of this process; use as a context manager."""

    def __init__(self, options: ServerOptions | None = None) -> None:
        self.state = _State(options or ServerOptions())
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="loopback-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def add_faults(self, faults: Iterable[str]) -> None:
        self.state.add_faults(faults)

    def stats(self) -> dict[str, int]:
        return self.state.stats()

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="OpenAI-compatible loopback server answering with heuristics")
    parser.add_argument("--port-file", required=True, help="write the chosen port here once listening")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--die-after", type=int, default=None)
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--fault", action="append", default=[], choices=FAULTS)
    args = parser.parse_args(argv)
    options = ServerOptions(
        models=tuple(args.model), latency_s=args.latency, die_after=args.die_after, faults=args.fault
    )
    server = LoopbackServer(options)
    tmp = Path(args.port_file + ".tmp")
    tmp.write_text(str(server.httpd.server_address[1]))
    os.replace(tmp, args.port_file)
    server.httpd.serve_forever()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
