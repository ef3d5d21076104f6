"""Finished steer / controls run directories from synthetic records (no model): what the analyze and report stages
read. Plain functions, importable by any test."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interp_sot.behaviours.judge_coding import BehaviourCoding
from interp_sot.io import append_jsonl
from interp_sot.stages.measure import MEASURES_DIR
from interp_sot.stages.rundir import begin_stage, finish_stage

SETTINGS = {"layer": 15, "generation": {"temperature": 0.6}}


def record(key: str, feature: Any, group: str | None, strength: float, problem: str, correct: bool, completion: str,
           n_new_tokens: int, **extra: Any) -> dict[str, Any]:
    """One sweep record with the fields the analysis reads."""
    return {"key": key, "feature": feature, "group": group, "strength": strength, "problem_id": problem,
            "correct": correct, "answer": "1 + 2", "completion": completion, "n_new_tokens": n_new_tokens,
            "settings": SETTINGS, "prompt": "q", **extra}


def sweep_records(n_problems: int = 40, seed: int = 0) -> list[dict[str, Any]]:
    """Accuracy 0.3 at s=0 and 0.6 at s=10; traces with more 'wait' under steering."""
    rng = np.random.default_rng(seed)
    return [record(f"30939|{s!r}|p{i}", 30939, None, s, f"p{i}", bool(rng.random() < p),
                   ("Wait, " * waits) + "we try " + "x " * (20 - waits), 50 + int(s) + int(rng.integers(0, 9)))
            for i in range(n_problems) for s, p, waits in ((0.0, 0.3, 1), (10.0, 0.6, 4))]


def control_records(n_problems: int = 60, seed: int = 0) -> list[dict[str, Any]]:
    """Two control features on the same problems; the conversational one 0.3 more often right."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_problems):
        base = rng.random() * 0.6
        for f, group, bump in ((1, "conversational", 0.3), (2, "non_conversational", 0.0)):
            out.append(record(f"{f}|5.0|p{i}", f, group, 5.0, f"p{i}", bool(rng.random() < base + bump),
                              "text " + "wait " * int(rng.integers(0, 3)), int(rng.integers(20, 200)), answer=None))
    return out


def cognitive_codings(records: Sequence[dict[str, Any]], failed: Sequence[str] = ()) -> list[BehaviourCoding]:
    """A judge's cognitive-behaviour codings of ``records`` (2 verifications each; ``failed`` keys: a failed call)."""
    counts = {"verification": 2, "backtracking": 1, "subgoal_setting": 0, "backward_chaining": 0}
    return [BehaviourCoding(r["key"], "cognitive", "behaviours_cognitive@1", "fake",
                            None if r["key"] in failed else counts, "bad" if r["key"] in failed else None)
            for r in records]


def coherence_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Measure-stage coherence lines: mean log-prob -1 - s/10, the last trace degenerate."""
    return [{"key": r["key"], "mean_logprob": -1.0 - r["strength"] / 10, "n_tokens": 5, "repeat_share": 0.0,
             "symbol_share": 0.0, "degenerate": r is records[-1]} for r in records]


def write_run(run: Path, records: Sequence[dict[str, Any]], *, stage: str = "steer",
              codings: Sequence[BehaviourCoding] | None = None, measured: bool = False) -> Path:
    """A finished ``stage`` run in ``run`` (``sweep.jsonl`` / ``controls.jsonl``, codings, a finished measure)."""
    name = "controls.jsonl" if stage == "controls" else "sweep.jsonl"
    run.mkdir(parents=True)
    append_jsonl(run / name, list(records))
    files = [name]
    if codings:
        append_jsonl(run / "behaviours.jsonl", [c.to_dict() for c in codings])
        files.append("behaviours.jsonl")
    finish_stage(run, stage, files)
    if measured:
        begin_stage(run / MEASURES_DIR, "measure", {"layer": 15})
        append_jsonl(run / "coherence.jsonl", coherence_rows(records))
        finish_stage(run / MEASURES_DIR, "measure", ["../coherence.jsonl"])
    return run
