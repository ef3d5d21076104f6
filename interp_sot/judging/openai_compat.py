"""A judge that talks to any OpenAI-compatible chat-completions server through the ``openai`` SDK.

Works with hosted APIs, vLLM, llama.cpp, Ollama and ``transformers serve``. What this adds to the SDK:

- one ``Retry-After`` pause shared by every thread of the client (a 429 tells the whole client to hold off, not
  just the call that got it), with the retry loop here (the SDK's own per-call retries are off) so that the
  pause and the attempt count are visible and testable;
- streamed replies by default, with ``timeout_s`` bounding the *silence* (connect, first token, gap between
  tokens) rather than the whole call: a slow server that is producing tokens is never abandoned, so a call is
  not re-sent while the server is still computing it;
- reply budgets from :func:`interp_sot.judging.base.reply_budget` (a few tokens per judged item), falling back to
  ``max_tokens``;
- the key from the environment, none needed on loopback, and a concurrency default that suits the server
  (2 on loopback, where one local process answers one call at a time; 8 elsewhere).
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from interp_sot.errors import InterpSotError
from interp_sot.judging.base import Message, current_reply_budget
from interp_sot.judging.concurrency import map_bounded

if TYPE_CHECKING:
    from openai import APIStatusError

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying; any other 4xx is a caller error and raises at once."""
LOOPBACK_CONCURRENCY = 2
"""Default requests in flight to a server on this machine: one computing, one queued behind it."""
REMOTE_CONCURRENCY = 8
"""Default requests in flight to a remote server."""
_NO_KEY = "no-key-needed-on-loopback"


class JudgeTransportError(RuntimeError):
    """The server could not be reached or kept failing after all retries."""


class JudgeRequestError(InterpSotError):
    """The server rejected the request (bad key, unknown model, bad parameters); retrying will not help."""


@dataclass
class OpenAIConfig:
    """Where and how to reach the server."""

    model: str
    """Model name as the server knows it (``"gpt-4o-mini"``; for ``transformers serve``, the served folder)."""
    base_url: str = "https://api.openai.com/v1"
    """API root (``.../v1``); a URL ending in ``/chat/completions`` is accepted and trimmed."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the key. A missing key is an error unless the server is on loopback."""
    timeout_s: float = 120.0
    """Longest silence tolerated: connecting, waiting for the first token, or between streamed tokens."""
    max_retries: int = 6
    """Retries after the first attempt for transient failures."""
    backoff_s: float = 1.0
    """Delay before the first retry; doubles each retry (with jitter in [0.5, 1] x)."""
    backoff_max_s: float = 60.0
    """Cap on the exponential backoff delay."""
    retry_after_max_s: float = 600.0
    """Cap on a server's ``Retry-After`` delay."""
    max_concurrency: int | None = None
    """Requests in flight at once; None: 2 on loopback, 8 elsewhere."""
    temperature: float = 0.0
    """Sampling temperature (0 = greedy, so cached replies are what a rerun would get)."""
    max_tokens: int | None = 1024
    """Reply cap when the caller sets no :func:`reply_budget` (None: server default)."""
    stream: bool = True
    """Stream replies (progress-aware timeouts); False for servers that cannot stream."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Extra JSON fields merged into each request as they are, including fields the ``openai`` SDK does not know
    (e.g. ``{"seed": 0}``, or ``transformers serve``'s ``{"generation_config": "<JSON>"}``)."""
    name: str | None = None
    """Judge name used in cache keys; default ``openai:<model>`` (the URL is not part of it)."""

    def __post_init__(self) -> None:
        if not self.model:
            raise InterpSotError("OpenAIConfig.model must be a non-empty model name")
        parsed = urllib.parse.urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InterpSotError(f"OpenAIConfig.base_url must be an http(s) URL with a host, got {self.base_url!r}")
        for attr in ("timeout_s", "backoff_s", "backoff_max_s", "retry_after_max_s"):
            if getattr(self, attr) <= 0:
                raise InterpSotError(f"OpenAIConfig.{attr} must be > 0, got {getattr(self, attr)}")
        if self.max_retries < 0 or (self.max_concurrency is not None and self.max_concurrency < 1):
            raise InterpSotError("OpenAIConfig needs max_retries >= 0 and max_concurrency >= 1")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise InterpSotError(f"OpenAIConfig.max_tokens must be >= 1 or None, got {self.max_tokens}")

    @property
    def api_root(self) -> str:
        """The base URL the SDK appends ``/chat/completions`` to."""
        base = self.base_url.rstrip("/")
        return base[: -len("/chat/completions")] if base.endswith("/chat/completions") else base

    @property
    def url(self) -> str:
        return self.api_root + "/chat/completions"

    @property
    def concurrency(self) -> int:
        """``max_concurrency``, or the default for where the server is."""
        if self.max_concurrency is not None:
            return self.max_concurrency
        return LOOPBACK_CONCURRENCY if is_loopback(self.base_url) else REMOTE_CONCURRENCY


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


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the openai judge needs the 'openai' package: pip install 'interp-sot[judge]'") from err
    return openai


class OpenAIJudge:
    """Judge backed by ``POST {base_url}/chat/completions``; safe to call from many threads.

    ``sleep`` waits between retries (injectable so tests can record delays instead of waiting).
    """

    def __init__(self, config: OpenAIConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        openai = _import_openai()
        self.config = config
        self._sleep = sleep
        self._openai = openai
        key = os.environ.get(config.api_key_env, "").strip()
        loopback = is_loopback(config.base_url)
        if not key and not loopback:
            raise InterpSotError(
                f"no API key: set the environment variable {config.api_key_env} for {config.url} "
                "(only servers on loopback may run without one)"
            )
        self.client = openai.OpenAI(
            api_key=key or _NO_KEY,
            base_url=config.api_root,
            max_retries=0,
            timeout=openai.Timeout(config.timeout_s, connect=min(config.timeout_s, 30.0)),
            # trust_env=False: a proxy from the environment must not intercept calls to this machine.
            http_client=openai.DefaultHttpxClient(trust_env=False) if loopback else None,
        )
        self._lock = threading.Lock()
        self._not_before = 0.0
        self.usage = Usage()

    @property
    def name(self) -> str:
        return self.config.name or f"openai:{self.config.model}"

    @property
    def max_concurrency(self) -> int:
        return self.config.concurrency

    def request_body(self, messages: Sequence[Message]) -> dict[str, Any]:
        """The JSON body of a (non-streamed) chat-completions call; also what a batch file line carries."""
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "temperature": self.config.temperature,
        }
        budget = current_reply_budget() or self.config.max_tokens
        if budget is not None:
            body["max_tokens"] = budget
        body.update(self.config.extra_body)
        return body

    def complete(self, messages: list[Message]) -> str:
        body = self.request_body(messages)
        last = ""
        for attempt in range(self.config.max_retries + 1):
            self._wait_for_pause()
            try:
                return self._call(body)
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
        raise JudgeTransportError(
            f"{self.config.url} (model {self.config.model!r}) failed {self.config.max_retries + 1} times; "
            f"last error: {last}"
        )

    def complete_many(self, batch: Sequence[list[Message]]) -> list[str]:
        """Replies to many conversations, ``max_concurrency`` requests in flight, in input order."""
        return map_bounded(self.complete, batch, self.max_concurrency)

    # -- internals -------------------------------------------------------------------------------------------

    def _wait_for_pause(self) -> None:
        with self._lock:
            wait = self._not_before - time.monotonic()
        if wait > 0:
            self._sleep(wait)

    def _sdk_arguments(self, body: dict[str, object]) -> dict[str, object]:
        """``body`` as keywords of the SDK's ``create``: the config's ``extra_body`` fields travel as the SDK's
        ``extra_body`` (merged into the JSON as they are), since ``create`` rejects keywords it does not know
        (e.g. ``transformers serve``'s ``generation_config``)."""
        extra = self.config.extra_body
        if not extra:
            return body
        kwargs = {k: v for k, v in body.items() if k not in extra}
        kwargs["extra_body"] = dict(extra)
        return kwargs

    def _call(self, body: dict[str, object]) -> str:
        openai = self._openai
        kwargs = self._sdk_arguments(body)
        try:
            if self.config.stream:
                text, finish, usage = self._streamed(kwargs)
            else:
                text, finish, usage = self._whole(kwargs)
        except openai.APITimeoutError as err:
            raise _Retryable(f"no progress for {self.config.timeout_s:g}s") from err
        except openai.APIConnectionError as err:
            raise _Retryable(f"connection failed: {err.__cause__ or err}") from err
        except openai.APIStatusError as err:
            self._raise_for_status(err)
        except (json.JSONDecodeError, openai.APIResponseValidationError) as err:
            raise _Retryable(f"response is not valid JSON: {str(err)[:120]}") from err
        except openai.APIError as err:  # an error event inside a stream
            raise _Retryable(f"server error: {str(err)[:200]}") from err
        with self._lock:
            self.usage.requests += 1
            self.usage.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            self.usage.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        if finish == "length":
            logger.warning("%s: reply cut at max_tokens=%s", self.config.url, body.get("max_tokens"))
        return text

    def _streamed(self, body: Mapping[str, object]) -> tuple[str, str | None, Any]:
        parts: list[str] = []
        finish: str | None = None
        usage: Any = None
        stream = self.client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
        with stream:
            for chunk in stream:
                usage = chunk.usage or usage
                for choice in chunk.choices or []:
                    if choice.delta is not None and choice.delta.content:
                        parts.append(choice.delta.content)
                    finish = choice.finish_reason or finish
        if finish is None:
            raise _Retryable(f"the stream ended before the reply finished ({len(parts)} pieces received)")
        return "".join(parts), finish, usage

    def _whole(self, body: Mapping[str, object]) -> tuple[str, str | None, Any]:
        resp = self.client.chat.completions.create(**body)
        if not isinstance(resp, self._openai.types.chat.ChatCompletion) or not resp.choices:
            raise _Retryable(f"response lacks choices[0].message: {str(resp)[:200]}")
        choice = resp.choices[0]
        content = choice.message.content if choice.message is not None else None
        if not isinstance(content, str):
            raise JudgeRequestError(
                f"{self.config.url} returned no text content (finish_reason={choice.finish_reason!r}); "
                "raise max_tokens or check the model"
            )
        return content, choice.finish_reason, resp.usage

    def _raise_for_status(self, err: APIStatusError) -> NoReturn:
        status = int(err.status_code)
        detail = str(getattr(err, "message", "") or err)[:500]
        if status in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {status}", parse_retry_after(err.response.headers.get("retry-after"))) from err
        if status in (401, 403):
            hint = f"check the API key in ${self.config.api_key_env}"
        elif status == 404:
            hint = f"unknown model {self.config.model!r} or wrong endpoint {self.config.url}"
        else:
            hint = "the server rejected the request"
        raise JudgeRequestError(f"HTTP {status} from {self.config.url}: {hint}. Server said: {detail}") from err
