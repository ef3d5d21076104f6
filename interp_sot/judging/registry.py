"""The registry of judge backends: what a ``--judge`` spec names (the one place a new backend is declared;
``docs/extending.md``).

A spec is ``NAME`` or ``NAME:ARGUMENT``: ``labels``, ``heuristic``, ``openai:MODEL[@URL]``, ``hf:PATH``. ``NAME``
picks a registered :class:`JudgeBackend`; its factory gets the text after the first ``:`` (``""`` for a bare spec)
and the caller's keyword options, and returns a :class:`~interp_sot.judging.base.Judge` (or None for the judge-free
``labels`` mode). :func:`interp_sot.judging.spec.make_judge` builds judges from specs; the ``--judge`` help text and
the error for an unknown spec list what is registered here.

Pure Python: the built-in factories import their backends (``openai``, ``transformers``) only when called, so
``interp-sot --help`` lists the backends without torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from interp_sot.errors import InterpSotError, shorten
from interp_sot.judging.base import Judge

JudgeFactory = Callable[..., "Judge | None"]
"""``factory(argument: str, **options) -> Judge | None``: ``argument`` is the spec after ``NAME:`` (``""`` when the
backend takes none), ``options`` the keywords given to ``make_judge`` (e.g. ``max_concurrency``, ``timeout_s``)."""

JUDGE_FREE = "labels"
"""Spec meaning "no judge": screening takes conversation ratios from document labels."""
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
"""Used by ``openai:MODEL`` without ``@URL`` unless ``OPENAI_BASE_URL`` is set."""
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


class JudgeSpecError(InterpSotError):
    """A ``--judge`` spec that names no registered backend, or gives it the wrong kind of argument."""


@dataclass(frozen=True)
class JudgeBackend:
    """One kind of judge a spec can name."""

    name: str
    """The spec's ``NAME`` (before the ``:``): letters, digits, ``_ . -``, starting with a letter."""
    factory: JudgeFactory
    """Builds the judge: ``factory(argument, **options)`` (see :data:`JudgeFactory`)."""
    help: str
    """A few words for ``--help``: what the backend is."""
    argument: str | None = None
    """How ``--help`` writes the argument (``"MODEL[@URL]"``); None: a bare spec, which takes no argument."""
    codes_behaviours: bool = True
    """Whether its judges can code reasoning traces (an LLM reading text); False for ``labels`` and ``heuristic``."""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"a judge backend's name must be letters, digits, '_', '.', '-' starting with a letter "
                             f"(it is what comes before ':' in a spec), got {self.name!r}")
        if not callable(self.factory):
            raise ValueError(f"judge backend {self.name!r}: factory must be callable, got {self.factory!r}")

    @property
    def usage(self) -> str:
        """The spec as ``--help`` writes it: ``NAME`` or ``NAME:ARGUMENT``."""
        return self.name if self.argument is None else f"{self.name}:{self.argument}"


JUDGE_BACKENDS: dict[str, JudgeBackend] = {}
"""Registered backends by name (the built-ins below, then any :func:`register_judge_backend` adds)."""


def register_judge_backend(name: str, factory: JudgeFactory, *, help: str, argument: str | None = None,
                           codes_behaviours: bool = True, replace: bool = False) -> JudgeBackend:
    """Register a backend under ``name`` (``replace=True`` to redefine one); returns it.

    ``argument``: how help writes what follows ``name:`` (e.g. ``"MODEL@URL"``); leave None for a bare spec.
    Register before the command line's parser is built so that ``--judge``'s help lists it."""
    backend = JudgeBackend(name, factory, help, argument, codes_behaviours)
    if name in JUDGE_BACKENDS and not replace:
        raise ValueError(f"judge backend {name!r} is already registered (pass replace=True to redefine it)")
    JUDGE_BACKENDS[name] = backend
    return backend


def unregister_judge_backend(name: str) -> None:
    """Remove ``name`` from the registry (no-op when absent)."""
    JUDGE_BACKENDS.pop(name, None)


def spec_help() -> str:
    """``--judge`` help text: every registered spec and what it is."""
    return "judge spec: " + ", ".join(f"'{b.usage}' ({b.help})" for b in JUDGE_BACKENDS.values())


def parse_judge_spec(spec: str) -> tuple[JudgeBackend, str]:
    """``(backend, argument)`` for ``spec``; a :class:`JudgeSpecError` naming the registered specs otherwise."""
    spec = spec.strip()
    name, colon, argument = spec.partition(":")
    backend = JUDGE_BACKENDS.get(name)
    if backend is None:
        raise JudgeSpecError(f"unknown judge spec {shorten(spec)!r}; registered: "
                             + ", ".join(repr(b.usage) for b in JUDGE_BACKENDS.values()))
    if backend.argument is None and colon:
        raise JudgeSpecError(f"judge spec {shorten(spec)!r}: {name!r} takes no argument; write {name!r}")
    if backend.argument is not None and not colon:
        raise JudgeSpecError(f"judge spec {shorten(spec)!r} needs an argument; write {backend.usage}")
    return backend, argument


def can_code_behaviours(spec: str) -> bool:
    """Whether the backend ``spec`` names can code reasoning traces (see :attr:`JudgeBackend.codes_behaviours`)."""
    return parse_judge_spec(spec)[0].codes_behaviours


# -- the built-in backends ---------------------------------------------------------------------------------------

def _labels(argument: str, **options: object) -> None:
    if options:
        raise JudgeSpecError(f"the {JUDGE_FREE!r} mode calls no judge and takes no options, got {sorted(options)}")
    return None


def _heuristic(argument: str, **options: object) -> Judge:
    from interp_sot.judging.heuristic import HeuristicJudge

    if options:
        raise JudgeSpecError(f"the heuristic judge takes no options, got {sorted(options)}")
    return HeuristicJudge()


def _openai(argument: str, **options: Any) -> Judge:
    from interp_sot.judging.openai_compat import OpenAIConfig, OpenAIJudge

    at = argument.find("@http")
    model, url = ((argument[:at], argument[at + 1:]) if at >= 0
                  else (argument, os.environ.get("OPENAI_BASE_URL", DEFAULT_OPENAI_URL)))
    if not model:
        raise JudgeSpecError(f"judge spec 'openai:{shorten(argument)}' names no model; write openai:MODEL@URL")
    return OpenAIJudge(OpenAIConfig(model=model, base_url=url, **options))


def _hf(argument: str, **options: Any) -> Judge:
    from interp_sot.judging.hf import HFJudge

    if not argument:
        raise JudgeSpecError("judge spec 'hf:' names no model; write hf:PATH (a folder, hub id or 'smollm2')")
    return HFJudge.from_pretrained(argument, **options)


register_judge_backend(JUDGE_FREE, _labels, help="no judge; document labels", codes_behaviours=False)
register_judge_backend("heuristic", _heuristic, help="offline rules", codes_behaviours=False)
register_judge_backend("openai", _openai, argument="MODEL[@URL]",
                       help="OpenAI-compatible server; key from $OPENAI_API_KEY")
register_judge_backend("hf", _hf, argument="PATH", help="local transformers")
