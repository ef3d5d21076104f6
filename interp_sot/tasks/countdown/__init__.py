"""The Countdown task (TinyZero conventions): problems, prompts, answer extraction and exact verification."""

from interp_sot.tasks.countdown.answers import ANSWER_RULES, AnswerRule, ExtractedAnswer, extract_answer, find_answer
from interp_sot.tasks.countdown.loader import load_tinyzero, problems_from_records
from interp_sot.tasks.countdown.problems import CountdownProblem, GeneratorConfig, generate_problems, sample_problems
from interp_sot.tasks.countdown.prompts import (
    PROMPT_STYLES,
    TINYZERO_TEMPLATE,
    adds_special_tokens,
    build_prompt,
    chat_prompt,
    tinyzero_prompt,
)
from interp_sot.tasks.countdown.scoring import Score, score_completion
from interp_sot.tasks.countdown.solver import reachable, solve
from interp_sot.tasks.countdown.verify import Verdict, check, normalize_operators, verify

__all__ = [
    "ANSWER_RULES",
    "PROMPT_STYLES",
    "TINYZERO_TEMPLATE",
    "AnswerRule",
    "CountdownProblem",
    "ExtractedAnswer",
    "GeneratorConfig",
    "Score",
    "Verdict",
    "adds_special_tokens",
    "build_prompt",
    "chat_prompt",
    "check",
    "extract_answer",
    "find_answer",
    "generate_problems",
    "load_tinyzero",
    "normalize_operators",
    "problems_from_records",
    "reachable",
    "sample_problems",
    "score_completion",
    "solve",
    "tinyzero_prompt",
    "verify",
]
