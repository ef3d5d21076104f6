"""The ``screen`` stage from the folders and files a user names (what ``interp-sot screen`` runs).

:func:`run_screen` builds the judge, checks that the options fit together, reads the prompt files, the statistics
and their contexts, the tokenizer and the feature labels, then runs
:func:`~interp_sot.stages.screen.screen_stage`. Errors in what the user named are :class:`FlagError` naming the
flag (or files missing: ``FileNotFoundError``), raised before any work where they can be.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from interp_sot.errors import FlagError
from interp_sot.features.contexts import ContextStore
from interp_sot.features.stats import FeatureStats
from interp_sot.stages.screen import SCREEN_PROMPTS, ScreenResult, screen_stage
from interp_sot.stages.screen_config import JudgeOptions, ScreenConfig, ScreenInputs

if TYPE_CHECKING:
    import pandas as pd

    from interp_sot.protocols import Tokenizer

logger = logging.getLogger(__name__)


def load_inputs(inputs: ScreenInputs) -> tuple[FeatureStats, ContextStore]:
    """``(stats, contexts)`` from the folders ``inputs`` names (``--stats``, ``--contexts``)."""
    from interp_sot.stages.rundir import require_complete

    require_complete(Path(inputs.stats), "--stats")
    stats = FeatureStats.load(Path(inputs.stats))
    if inputs.contexts:
        return stats, ContextStore.load(Path(inputs.contexts))
    if stats.contexts is not None:
        return stats, stats.contexts
    raise FileNotFoundError(f"{inputs.stats} holds no contexts.safetensors; collect with keep_contexts=True "
                            "or pass --contexts")


def load_tokenizer(name: str | None) -> Tokenizer | None:
    """The tokenizer named by ``--tokenizer``, or None to let the context store load its own."""
    if name is None:
        return None
    from transformers import AutoTokenizer

    tokenizer: Tokenizer = AutoTokenizer.from_pretrained(name)
    return tokenizer


def load_labels(inputs: ScreenInputs, d_sae: int) -> pd.Series | None:
    """One explanation per feature from the export ``--labels`` names (None without one)."""
    if inputs.labels is None:
        return None
    from interp_sot.screening.labels import feature_labels, read_explanations

    return feature_labels(read_explanations(inputs.labels), inputs.prefer_explainer, d_sae=d_sae)


def run_screen(inputs: ScreenInputs, config: ScreenConfig, judging: JudgeOptions | None = None) -> ScreenResult:
    """Screen the statistics ``inputs.stats`` names into ``inputs.out`` (see :func:`screen_stage`)."""
    from interp_sot.judging.prompts.files import load_prompt_files
    from interp_sot.judging.spec import make_judge
    from interp_sot.stages.identity import path_identity

    judging = judging or JudgeOptions()
    judge = make_judge(config.judge, **judging.backend_options(config.judge))
    if judge is None and (judging.judge_batch_out or judging.judge_batch_in or judging.validate_on):
        raise FlagError("--judge-batch-out, --judge-batch-in and --validate-on need an LLM judge (--judge), "
                        "not 'labels'")
    prompts = load_prompt_files(judging.prompt_file, SCREEN_PROMPTS)  # a bad prompt file fails before any read
    stats, contexts = load_inputs(inputs)
    labels = load_labels(inputs, d_sae=len(stats.fire_count))
    if config.categories and (judge is None or labels is None):
        raise FlagError("--categories needs a judge (not 'labels') and --labels")
    identity = {"stats": path_identity(inputs.stats),
                "labels": None if inputs.labels is None else path_identity(inputs.labels)}
    return screen_stage(stats, config, inputs.out, contexts=contexts, tokenizer=load_tokenizer(inputs.tokenizer),
                        judge=judge, labels=labels, inputs=identity, prompts=prompts,
                        batch_out=judging.judge_batch_out, batch_in=judging.judge_batch_in,
                        validate_on=judging.validate_on)
