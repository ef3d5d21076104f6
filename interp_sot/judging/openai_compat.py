"""A judge that talks to any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, hosted APIs).

Standard library only (``urllib``). Transient failures — timeouts, refused or dropped connections, 408/409/429/5xx,
bodies that are truncated or not JSON — are retried with exponential backoff; a ``Retry-After`` header is honoured
and pauses every thread of this client, not just the one that got it. Permanent failures (bad key, unknown model,
bad request) raise at once with the server's message.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from interp_sot.judging.base import Message
from interp_sot.judging.concurrency import map_bounded

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying; any other 4xx is a caller error and raises at once."""


class JudgeTransportError(RuntimeError):
    """The server could not be reached or kept failing after all retries."""


class JudgeRequestError(ValueError):
    """The server rejected the request (bad key, unknown model, bad parameters); retrying will not help."""


@dataclass
class OpenAIConfig:
    """Where and how to reach the server."""

    model: str
    """Model name as the server knows it (``"gpt-4o-mini"``, the served name of a vLLM model, ...)."""
    base_url: str = "https://api.openai.com/v1"
    """API root; ``/chat/completions`` is appended unless already present."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the key. A missing key is an error unless the server is on loopback."""
    timeout_s: float = 120.0
    """Socket timeout per request (connect and each read)."""
    max_retries: int = 6
    """Retries after the first attempt for transient failures."""
    backoff_s: float = 1.0
    """Delay before the first retry; doubles each retry (with jitter in [0.5, 1] x)."""
    backoff_max_s: float = 60.0
    """Cap on the exponential backoff delay."""
    retry_after_max_s: float = 600.0
    """Cap on a server's ``Retry-After`` delay."""
    max_concurrency: int = 8
    """Requests in flight at once in :meth:`OpenAIJudge.complete_many` and screening."""
    temperature: float = 0.0
    """Sampling temperature (0 = greedy, so cached replies are what a rerun would get)."""
    max_tokens: int | None = 1024
    """Reply length cap sent to the server (None: server default)."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Extra JSON fields merged into each request (e.g. ``{"seed": 0}``)."""
    name: str | None = None
    """Judge name used in cache keys; default ``openai:<model>`` (the URL is not part of it)."""

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("OpenAIConfig.model must be a non-empty model name")
        parsed = urllib.parse.urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"OpenAIConfig.base_url must be an http(s) URL with a host, got {self.base_url!r}")
        for attr in ("timeout_s", "backoff_s", "backoff_max_s", "retry_after_max_s"):
            if getattr(self, attr) <= 0:
                raise ValueError(f"OpenAIConfig.{attr} must be > 0, got {getattr(self, attr)}")
        if self.max_retries < 0 or self.max_concurrency < 1:
            raise ValueError("OpenAIConfig needs max_retries >= 0 and max_concurrency >= 1")

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (no key needed, never proxied)."""
    host = urllib.parse.urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/unparsable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Usage:
    """Running totals over the life of a client (thread-safe updates via the client's lock)."""

    requests: int = 0
    """Successful requests."""
    retries: int = 0
    """Failed attempts that were retried."""
    prompt_tokens: int = 0
    """Sum of ``usage.prompt_tokens`` reported by the server."""
    completion_tokens: int = 0
    """Sum of ``usage.completion_tokens`` reported by the server."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class OpenAIJudge:
    """Judge backed by ``POST {base_url}/chat/completions``; safe to call from many threads.

    ``sleep`` waits between retries (injectable so tests can record delays instead of waiting).
    """

    def __init__(self, config: OpenAIConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep
        key = os.environ.get(config.api_key_env, "").strip()
        loopback = is_loopback(config.url)
        if not key and not loopback:
            raise ValueError(
                f"no API key: set the environment variable {config.api_key_env} for {config.url} "
                "(only servers on loopback may run without one)"
            )
        self._key = key
        handlers: list[Any] = [urllib.request.ProxyHandler({})] if loopback else []
        self._opener = urllib.request.build_opener(*handlers)
        self._lock = threading.Lock()
        self._not_before = 0.0
        self.usage = Usage()

    @property
    def name(self) -> str:
        return self.config.name or f"openai:{self.config.model}"

    @property
    def max_concurrency(self) -> int:
        return self.config.max_concurrency

    def complete(self, messages: list[Message]) -> str:
        payload = self._payload(messages)
        last = ""
        for attempt in range(self.config.max_retries + 1):
            self._wait_for_pause()
            try:
                reply = self._post(payload)
            except _Retryable as err:
                last = str(err)
                if attempt == self.config.max_retries:
                    break
                with self._lock:
                    self.usage.retries += 1
                if err.retry_after is not None:
                    # The server asked everyone to hold off: pause all threads; _wait_for_pause does the waiting.
                    delay = min(err.retry_after, self.config.retry_after_max_s)
                    with self._lock:
                        self._not_before = max(self._not_before, time.monotonic() + delay)
                else:
                    delay = min(self.config.backoff_max_s, self.config.backoff_s * 2**attempt)
                    delay *= 0.5 + 0.5 * random.random()
                    self._sleep(delay)
                logger.warning(
                    "%s: %s; retry %d/%d after %.2fs", self.config.url, err, attempt + 1, self.config.max_retries, delay
                )
                continue
            return reply
        raise JudgeTransportError(
            f"{self.config.url} (model {self.config.model!r}) failed {self.config.max_retries + 1} times; "
            f"last error: {last}"
        )

    def complete_many(self, batch: Sequence[list[Message]]) -> list[str]:
        """Replies to many conversations, ``max_concurrency`` requests in flight, in input order."""
        return map_bounded(self.complete, batch, self.config.max_concurrency)

    # -- internals -------------------------------------------------------------------------------------------

    def _payload(self, messages: list[Message]) -> bytes:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "temperature": self.config.temperature,
            "stream": False,
        }
        if self.config.max_tokens is not None:
            body["max_tokens"] = self.config.max_tokens
        body.update(self.config.extra_body)
        return json.dumps(body).encode("utf-8")

    def _wait_for_pause(self) -> None:
        with self._lock:
            wait = self._not_before - time.monotonic()
        if wait > 0:
            self._sleep(wait)

    def _post(self, payload: bytes) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self.config.url, data=payload, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.config.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            self._raise_for_status(err)
        except TimeoutError as err:
            raise _Retryable(f"timed out after {self.config.timeout_s}s") from err
        except urllib.error.URLError as err:
            raise _Retryable(f"connection failed: {err.reason}") from err
        except (http.client.HTTPException, ConnectionError, OSError) as err:
            raise _Retryable(f"connection broken: {type(err).__name__}: {err}") from err
        return self._parse(raw)

    def _raise_for_status(self, err: urllib.error.HTTPError) -> NoReturn:
        try:
            detail = err.read().decode("utf-8", "replace")[:500]
        except (OSError, http.client.HTTPException):
            detail = ""
        if err.code in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {err.code}", parse_retry_after(err.headers.get("Retry-After"))) from err
        if err.code in (401, 403):
            hint = f"check the API key in ${self.config.api_key_env}"
        elif err.code == 404:
            hint = f"unknown model {self.config.model!r} or wrong endpoint {self.config.url}"
        else:
            hint = "the server rejected the request"
        raise JudgeRequestError(f"HTTP {err.code} from {self.config.url}: {hint}. Server said: {detail}") from err

    def _parse(self, raw: bytes) -> str:
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise _Retryable(f"response is not JSON ({len(raw)} bytes: {raw[:80]!r})") from err
        try:
            choice = body["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as err:
            raise _Retryable(f"response lacks choices[0].message.content: {str(body)[:200]}") from err
        if not isinstance(content, str):
            raise JudgeRequestError(
                f"{self.config.url} returned no text content (finish_reason={choice.get('finish_reason')!r}); "
                "raise max_tokens or check the model"
            )
        usage = body.get("usage") or {}
        with self._lock:
            self.usage.requests += 1
            self.usage.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.usage.completion_tokens += int(usage.get("completion_tokens") or 0)
        if choice.get("finish_reason") == "length":
            logger.warning("%s: reply cut at max_tokens=%s", self.config.url, self.config.max_tokens)
        return content
