"""Thin, optional adapters for LLM judging (see ``base.Judge``).

- ``structured``: ask for JSON, validate it, retry on malformed output (``ask_json``, ``ask_json_many``).
- ``cache``: ``CachedJudge``, a persistent reply cache so reruns cost nothing and interrupted runs resume.
- backends: ``openai_compat`` (any OpenAI-compatible server), ``hf`` (local transformers), ``heuristic`` (rules).
- ``spec.make_judge``: build one from a spec string; ``prompts``: the versioned templates.
"""

from interp_sot.judging.base import Judge, Message
from interp_sot.judging.cache import CachedJudge
from interp_sot.judging.spec import make_judge
from interp_sot.judging.structured import JudgeOutputError, ask_json, ask_json_many

__all__ = ["CachedJudge", "Judge", "JudgeOutputError", "Message", "ask_json", "ask_json_many", "make_judge"]
