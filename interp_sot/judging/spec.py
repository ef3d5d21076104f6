"""Judge specs as the command line writes them: ``labels``, ``heuristic``, ``openai:MODEL@URL``, ``hf:PATH``."""

from __future__ import annotations

import os
from typing import Any

from interp_sot.judging.base import Judge

JUDGE_FREE = "labels"
"""Spec meaning "no judge": screening takes conversation ratios from document labels."""
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
"""Used by ``openai:MODEL`` without ``@URL`` unless ``OPENAI_BASE_URL`` is set."""

SPEC_HELP = (
    "judge spec: 'labels' (no judge; document labels), 'heuristic' (offline rules), "
    "'openai:MODEL[@URL]' (OpenAI-compatible server; key from $OPENAI_API_KEY), 'hf:PATH' (local transformers)"
)


def make_judge(spec: str, **options: Any) -> Judge | None:
    """Build the judge a spec names; ``None`` for ``labels`` (the judge-free mode).

    ``options`` go to the backend: ``OpenAIConfig`` fields for ``openai:`` (e.g. ``api_key_env``,
    ``max_concurrency``), ``HFJudge.from_pretrained`` keywords for ``hf:``.
    """
    spec = spec.strip()
    if spec == JUDGE_FREE:
        return None
    if spec == "heuristic":
        from interp_sot.judging.heuristic import HeuristicJudge

        if options:
            raise ValueError(f"the heuristic judge takes no options, got {sorted(options)}")
        return HeuristicJudge()
    if spec.startswith("openai:"):
        from interp_sot.judging.openai_compat import OpenAIConfig, OpenAIJudge

        rest = spec[len("openai:"):]
        at = rest.find("@http")
        model, url = (rest[:at], rest[at + 1:]) if at >= 0 else (rest, os.environ.get("OPENAI_BASE_URL", DEFAULT_OPENAI_URL))
        if not model:
            raise ValueError(f"judge spec {spec!r} names no model; write openai:MODEL@URL")
        return OpenAIJudge(OpenAIConfig(model=model, base_url=url, **options))
    if spec.startswith("hf:"):
        from interp_sot.judging.hf import HFJudge

        path = spec[len("hf:"):]
        if not path:
            raise ValueError(f"judge spec {spec!r} names no model; write hf:PATH (a folder, hub id or 'smollm2')")
        return HFJudge.from_pretrained(path, **options)
    raise ValueError(f"unknown judge spec {spec!r}; expected {SPEC_HELP}")
