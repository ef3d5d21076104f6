"""Stage ``eval``: a steering spec at a list of strengths on lm-evaluation-harness tasks, resumable per strength.

Reads: a model + tokenizer, a steering spec (``steering.json``), lm-eval task names (and local task YAML under
``include_path``). For each strength it runs lm-eval's ``simple_evaluate`` on its plain ``hf`` model wrapped around
the loaded model, under interp_sot's own steering hook (one strength for the whole batch, so no per-row strength),
and writes ``strength_<s>/results.json`` (lm-eval's result JSON) and ``strength_<s>/samples_<task>.jsonl``
(per-document log-likelihoods or generations). A strength whose ``results.json`` exists is read back on a rerun.
Finally ``eval.csv`` (task, metric, strength, value, stderr, n) and one ``eval_<metric>.png`` per metric.
At strength 0 the hook adds exact zeros, so the numbers are lm-eval's ``--model hf`` on the same weights.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from interp_sot.errors import InterpSotError
from interp_sot.evaluation.harness import (
    EvalRow,
    check_tasks,
    evaluate,
    hf_lm,
    jsonable_results,
    metric_rows,
    samples_jsonl,
    task_manager,
)
from interp_sot.evaluation.plot import plot_metrics
from interp_sot.experiments.records import direction_fingerprint
from interp_sot.io import atomic_write_json, atomic_write_text, write_frame
from interp_sot.stages.identity import path_identity
from interp_sot.stages.rundir import begin_stage, finish_stage
from interp_sot.steering.spec import SteeringSpec, check_strength, check_width, spec_direction, steer_from_spec

if TYPE_CHECKING:  # lm-eval has no type information: these name its classes, mypy sees Any
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from interp_sot.protocols import CausalLM, Tokenizer

logger = logging.getLogger(__name__)

STAGE = "eval"
EVAL_FILE = "eval.csv"
RESULTS_FILE = "results.json"
COLUMNS = list(EvalRow._fields)


@dataclass(frozen=True)
class EvalConfig:
    """What ``interp-sot eval`` runs: lm-eval tasks at steering strengths."""

    tasks: tuple[str, ...]
    """lm-eval task (or group) names, e.g. ``gsm8k``, ``mmlu``, or local ones under ``include_path``."""
    strengths: tuple[float, ...]
    """Steering strengths in the spec's units (0 = the unsteered model)."""
    include_path: str | None = None
    """Folder of extra lm-eval task YAML files (local tasks)."""
    limit: int | None = None
    """Documents per task (lm-eval's ``--limit``: the first N); None = all."""
    batch_size: int = 8
    """lm-eval batch size (the same one reproduces lm-eval's ``--model hf`` numbers exactly)."""
    num_fewshot: int | None = None
    """Few-shot examples per prompt (None: each task's default)."""

    def __post_init__(self) -> None:
        tasks = tuple(t.strip() for t in self.tasks if t and t.strip())
        if not tasks:
            raise InterpSotError("tasks: name at least one lm-eval task")
        object.__setattr__(self, "tasks", tasks)
        strengths = tuple(check_strength(s) for s in self.strengths)
        if not strengths:
            raise InterpSotError("strengths: give at least one strength")
        if len(set(strengths)) != len(strengths):
            raise InterpSotError(f"strengths are listed twice: {list(strengths)}")
        object.__setattr__(self, "strengths", strengths)
        if self.limit is not None and (isinstance(self.limit, bool) or self.limit < 1):
            raise InterpSotError(f"limit must be an integer >= 1, got {self.limit!r}")
        if self.batch_size < 1:
            raise InterpSotError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise InterpSotError(f"num_fewshot must be >= 0, got {self.num_fewshot!r}")


class EvalResult(NamedTuple):
    """The rows of ``eval.csv`` and the run directory."""

    rows: list[EvalRow]
    out: Path


def strength_dir(out: Path, strength: float) -> Path:
    """``strength_+0.15``: one folder per strength, named by its signed value."""
    return out / f"strength_{strength:+.6g}"


def eval_identity(config: EvalConfig, spec: SteeringSpec, direction: torch.Tensor) -> dict[str, Any]:
    """What an eval run's numbers depend on: settings, the spec (bar its own strengths), the direction's content,
    and the local task folder's content."""
    spec_dict = {k: v for k, v in spec.to_dict().items() if k != "strengths"}
    include = path_identity(config.include_path) if config.include_path else None
    return {"config": {**config.__dict__, "include_path": None}, "spec": spec_dict,
            "direction": direction_fingerprint(direction), "include_path": include}


def _evaluate_strength(model: CausalLM, lm: HFLM, spec: SteeringSpec, direction: torch.Tensor, strength: float,
                       config: EvalConfig, manager: TaskManager, folder: Path) -> dict[str, Any]:
    """Run (or read back) one strength; ``results.json`` is written last, so its presence marks it done."""
    path = folder / RESULTS_FILE
    if path.is_file():
        logger.info("%s: strength %g already evaluated; reading it", folder, strength)
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    logger.info("evaluating %s at strength %g (%s units)", ",".join(config.tasks), strength, spec.units)
    with steer_from_spec(model, spec, strength, direction=direction):
        results = evaluate(lm, config.tasks, manager, limit=config.limit, num_fewshot=config.num_fewshot)
    folder.mkdir(parents=True, exist_ok=True)
    for task, samples in results.get("samples", {}).items():
        atomic_write_text(folder / f"samples_{task}.jsonl", samples_jsonl(samples))
    data = jsonable_results(results)
    data["interp_sot"] = {"strength": strength, "units": spec.units, "layer": spec.layer, "site": spec.site,
                          "feature": spec.direction.feature}
    atomic_write_json(path, data)
    return data


def eval_stage(
    model: CausalLM,
    tokenizer: Tokenizer,
    spec: SteeringSpec,
    config: EvalConfig,
    out: str | Path,
    *,
    inputs: Mapping[str, object] | None = None,
    manager: TaskManager | None = None,
    direction: torch.Tensor | None = None,
) -> EvalResult:
    """Evaluate ``spec`` at ``config.strengths`` on ``config.tasks`` into ``out`` (resuming finished strengths).

    Bad input fails before any evaluation: a model of another width than the spec, an unknown task (close names
    listed), a missing include path, lm-eval not installed. ``manager``: a ready lm-eval ``TaskManager`` over
    ``config.include_path`` (built here when None; building one indexes every lm-eval task, a few seconds).
    """
    out = Path(out)
    check_width(spec, model)
    vec = spec_direction(spec) if direction is None else direction
    manager = task_manager(config.include_path, config.tasks) if manager is None else manager
    check_tasks(config.tasks, manager)
    begin_stage(out, STAGE, eval_identity(config, spec, vec), inputs)
    lm = hf_lm(model, tokenizer, config.batch_size)
    rows: list[EvalRow] = []
    files: list[Path] = []
    for s in config.strengths:
        folder = strength_dir(out, s)
        results = _evaluate_strength(model, lm, spec, vec, s, config, manager, folder)
        files += [folder / RESULTS_FILE, *sorted(folder.glob("samples_*.jsonl"))]
        rows += metric_rows(results, s)
    if not rows:
        raise InterpSotError(f"lm-eval reported no metrics for {list(config.tasks)}")
    import pandas as pd

    files.append(write_frame(pd.DataFrame(rows, columns=COLUMNS), out / EVAL_FILE))
    files += plot_metrics(rows, out, spec.units)
    summary = {f"{r.task}/{r.metric}@{r.strength:g}": r.value for r in rows if not math.isnan(r.value)}
    finish_stage(out, STAGE, files, {"units": spec.units, "metrics": summary})
    return EvalResult(rows, out)

