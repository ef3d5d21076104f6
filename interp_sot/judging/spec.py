"""Judge specs as the command line writes them: ``labels``, ``heuristic``, ``openai:MODEL@URL``, ``hf:PATH``, and
whatever else is registered in :mod:`interp_sot.judging.registry` (the one place backends are declared).

``SPEC_HELP`` is read from the registry when it is imported, so a backend registered before the command line's
parser is built appears in ``--judge``'s help.
"""

from __future__ import annotations

from typing import Any

from interp_sot.judging.base import Judge
from interp_sot.judging.registry import DEFAULT_OPENAI_URL, JUDGE_FREE, parse_judge_spec, spec_help

__all__ = ["DEFAULT_OPENAI_URL", "JUDGE_FREE", "make_judge", "spec_help"]  # and SPEC_HELP (see __getattr__)


def make_judge(spec: str, **options: object) -> Judge | None:
    """Build the judge a spec names; ``None`` for ``labels`` (the judge-free mode).

    ``options`` go to the backend's factory: ``OpenAIConfig`` fields for ``openai:`` (e.g. ``api_key_env``,
    ``max_concurrency``, ``extra_body``), ``HFJudge.from_pretrained`` keywords for ``hf:``. An unknown spec raises
    :class:`~interp_sot.judging.registry.JudgeSpecError` listing the registered ones.
    """
    backend, argument = parse_judge_spec(spec)
    return backend.factory(argument, **options)


def __getattr__(name: str) -> Any:
    if name == "SPEC_HELP":  # derived from the registry at the moment it is asked for
        return spec_help()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
