"""Thin, optional adapters for LLM judging (see ``base.Judge``).

- ``structured``: ask for JSON, validate it, retry on malformed output (``ask_json``, ``ask_json_many``).
- ``store``: the one sha256-keyed JSONL store; ``cache.CachedJudge`` keeps every reply in it so reruns cost
  nothing and interrupted runs resume.
- backends: ``openai_compat`` (any OpenAI-compatible server, on the ``openai`` SDK), ``hf`` (local transformers),
  ``heuristic`` (rules).
- ``batch``: full screens through a provider's Batch API (write the uncached requests, read the results back).
- ``registry``: the judge backends a ``--judge`` spec can name (``register_judge_backend`` adds one);
  ``spec.make_judge``: build one from a spec string; ``prompts``: the versioned templates, ``prompts.files``:
  templates from user files.
"""

from interp_sot.judging.base import Judge, Message
from interp_sot.judging.cache import CachedJudge
from interp_sot.judging.registry import register_judge_backend, unregister_judge_backend
from interp_sot.judging.spec import make_judge
from interp_sot.judging.structured import JudgeOutputError, ask_json, ask_json_many

__all__ = ["CachedJudge", "Judge", "JudgeOutputError", "Message", "ask_json", "ask_json_many", "make_judge",
           "register_judge_backend", "unregister_judge_backend"]
