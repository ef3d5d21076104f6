"""Steered evaluation on lm-evaluation-harness tasks (the optional ``eval`` extra: ``pip install 'interp-sot[eval]'``).

lm-eval is imported inside functions only, so this package imports without it and says which extra to install
when it is missing.
"""

from interp_sot.evaluation.harness import (
    EVAL_EXTRA,
    EvalRow,
    check_include_path,
    check_tasks,
    evaluate,
    hf_lm,
    metric_rows,
    require_lm_eval,
    task_manager,
)

__all__ = [
    "EVAL_EXTRA",
    "EvalRow",
    "check_include_path",
    "check_tasks",
    "evaluate",
    "hf_lm",
    "metric_rows",
    "require_lm_eval",
    "task_manager",
]
