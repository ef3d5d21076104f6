"""lm-evaluation-harness, driven on an already loaded model: task lookup, one evaluation, its metric rows.

Why a model object and not ``--model hf pretrained=...``: interp_sot's steering hook must sit on the very model
lm-eval runs, so the model is loaded once and wrapped in lm-eval's plain ``hf`` class (``HFLM``). With the hook
adding nothing, this is exactly lm-eval's ``--model hf`` on the same weights and batch size.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from interp_sot.errors import InterpSotError, shorten

if TYPE_CHECKING:  # lm-eval has no type information: these name its classes, mypy sees Any
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from interp_sot.protocols import CausalLM, Tokenizer

logger = logging.getLogger(__name__)

EVAL_EXTRA = "pip install 'interp-sot[eval]'"
"""How to install lm-eval at the version interp_sot is tested with."""
N_CLOSE = 5
"""Close task names listed for an unknown one."""


class EvalRow(NamedTuple):
    """One metric of one task at one strength: a row of ``eval.csv``."""

    task: str
    metric: str
    """lm-eval's metric name, with ``/FILTER`` when the filter is not ``none`` (``exact_match/first-number``)."""
    strength: float
    value: float
    stderr: float
    """lm-eval's standard error of the metric (NaN when it reports none)."""
    n: int
    """Documents scored."""


def require_lm_eval() -> None:
    """Raise InterpSotError naming the extra when lm-eval cannot be imported."""
    try:
        import lm_eval  # noqa: F401
    except ImportError as err:
        raise InterpSotError(f"lm-eval is not installed ({err}): {EVAL_EXTRA}") from err


def check_include_path(path: str | Path | None) -> Path | None:
    """``--include-path`` as a folder that exists, or an InterpSotError naming it."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.is_dir():
        raise InterpSotError(f"include path {shorten(path)} is not a folder (it should hold lm-eval task YAML files)")
    return p


def task_manager(include_path: str | Path | None = None, tasks: Sequence[str] = ()) -> TaskManager:
    """lm-eval's ``TaskManager`` over its own tasks plus those under ``include_path``.

    When every name in ``tasks`` is a local task, the manager indexes ``include_path`` alone: indexing lm-eval's
    ~15,000 own tasks costs ~10 s on a small CPU, more than evaluating a small local task.
    """
    require_lm_eval()
    folder = check_include_path(include_path)
    from lm_eval.tasks import TaskManager

    if folder is not None and tasks:
        local = TaskManager(include_path=str(folder), include_defaults=False)
        if all(t in local.all_tasks for t in tasks):
            return local
    return TaskManager(include_path=str(folder) if folder is not None else None)


def check_tasks(tasks: Sequence[str], manager: TaskManager) -> None:
    """Refuse task names lm-eval does not know, listing the close matches it offers."""
    known = list(manager.all_tasks)
    problems = []
    for name in tasks:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=N_CLOSE, cutoff=0.6)
        problems.append(f"{shorten(name)!r} (close matches: {', '.join(close) if close else 'none'})")
    if problems:
        raise InterpSotError(f"unknown lm-eval task {'; '.join(problems)}; local tasks need --include-path DIR")


def hf_lm(model: CausalLM, tokenizer: Tokenizer, batch_size: int) -> HFLM:
    """lm-eval's plain ``hf`` model (``HFLM``) around an already loaded model and tokenizer."""
    require_lm_eval()
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def evaluate(lm: HFLM, tasks: Sequence[str], manager: TaskManager, *, limit: int | None = None,
             num_fewshot: int | None = None) -> dict[str, Any]:
    """One ``simple_evaluate`` over ``tasks`` with per-document samples kept (lm-eval's default seeds)."""
    from lm_eval import simple_evaluate

    results = simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager, limit=limit,
                              num_fewshot=num_fewshot, log_samples=True)
    if results is None:  # only on non-zero ranks of a distributed lm-eval run
        raise InterpSotError("lm-eval returned no results (a non-main rank of a distributed run)")
    return dict(results)


def jsonable_results(results: Mapping[str, object]) -> dict[str, Any]:
    """lm-eval's result dict without samples, through lm-eval's own JSON conversion."""
    from lm_eval.utils import handle_non_serializable

    body = {k: v for k, v in results.items() if k != "samples"}
    data: dict[str, Any] = json.loads(json.dumps(body, default=handle_non_serializable))
    return data


def samples_jsonl(samples: Sequence[Mapping[str, object]]) -> str:
    """Per-document records (doc, arguments, resps, filtered_resps, metrics) as JSON lines."""
    from lm_eval.utils import handle_non_serializable

    return "".join(json.dumps(s, default=handle_non_serializable) + "\n" for s in samples)


def metric_rows(results: Mapping[str, object], strength: float) -> list[EvalRow]:
    """Every metric of every task in lm-eval's results (its ``results`` and ``n-samples`` sections), sorted by task
    and metric (lm-eval's own order differs between a fresh run and its JSON read back)."""
    rows = []
    n_samples = _section(results, "n-samples")
    for task, metrics in _section(results, "results").items():
        effective = _section(n_samples, task).get("effective", 0)
        n = int(effective) if isinstance(effective, (int, float)) else 0
        if not isinstance(metrics, Mapping):
            continue
        for key, value in metrics.items():
            metric, sep, filt = key.partition(",")
            if not sep or metric.endswith("_stderr") or not isinstance(value, (int, float)):
                continue
            err = metrics.get(f"{metric}_stderr,{filt}")
            name = metric if filt == "none" else f"{metric}/{filt}"
            rows.append(EvalRow(task, name, float(strength), float(value),
                                float(err) if isinstance(err, (int, float)) else math.nan, n))
    return sorted(rows, key=lambda r: (r.task, r.metric))


def _section(results: Mapping[str, object], key: str) -> Mapping[str, object]:
    """``results[key]`` when it is an object (lm-eval's JSON), else empty."""
    value = results.get(key)
    return value if isinstance(value, Mapping) else {}
