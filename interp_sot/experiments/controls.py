"""Control runs: random conversational vs non-conversational features, each steered on N random problems.

The paper steers 300 random conversational features (conversation ratio above the mean, sentence-onset firing)
and 300 random non-conversational ones, each on 16 random problems, at strength = 2 x the feature's max
observed activation, and compares accuracy between the groups (conversational: +4.17 points). Which features
and strengths to use comes from screening (``interp_sot.screening``); this module only needs the list, so it
works with any source: a table with columns ``feature``, ``strength``, ``group``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from interp_sot.experiments.records import FeatureId, RowSpec, SweepRecord, normalize_feature
from interp_sot.experiments.sweep import SweepConfig, run_rows
from interp_sot.tasks.countdown.problems import CountdownProblem

if TYPE_CHECKING:
    import torch

    from interp_sot.protocols import CausalLM, Tokenizer


@dataclass(frozen=True)
class ControlFeature:
    """A feature to steer in a control run."""

    feature: FeatureId
    strength: float
    """Steering strength (paper: 2 x max observed activation, in SAE units: use ``units="sae"`` directions)."""
    group: str
    """``"conversational"`` or ``"non_conversational"`` (other labels are allowed and reported as given)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature", normalize_feature(self.feature))
        s = float(self.strength)
        if s != s or s in (float("inf"), float("-inf")):
            raise ValueError(f"feature {self.feature}: strength {self.strength!r} is not finite")
        object.__setattr__(self, "strength", s)
        if not isinstance(self.group, str) or not self.group:
            raise ValueError(f"feature {self.feature}: group must be a non-empty string")


def control_features(features: Sequence[FeatureId], strengths: Sequence[float] | float, group: str
                     ) -> list[ControlFeature]:
    """``ControlFeature``s for one group from feature ids and one strength each (or one for all)."""
    ss = [strengths] * len(features) if isinstance(strengths, (int, float)) else list(strengths)
    if len(ss) != len(features):
        raise ValueError(f"{len(features)} features but {len(ss)} strengths")
    return [ControlFeature(f, s, group) for f, s in zip(features, ss, strict=True)]


def load_control_features(path: str | Path) -> list[ControlFeature]:
    """Read a control list (``.csv``, ``.parquet``, ``.json`` list of objects, ``.jsonl``) with
    feature/strength/group."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"control feature list not found: {p}")
    suffix = p.suffix.lower()
    if suffix in (".json", ".jsonl"):
        text = p.read_text(encoding="utf-8")
        try:
            records = json.loads(text) if suffix == ".json" else [json.loads(x) for x in text.splitlines() if x.strip()]
        except json.JSONDecodeError as err:
            raise ValueError(f"{p}: not valid JSON ({err.msg})") from err
    elif suffix in (".csv", ".parquet"):
        import pandas as pd

        frame = pd.read_csv(p) if suffix == ".csv" else pd.read_parquet(p)
        records = frame.to_dict(orient="records")
    else:
        raise ValueError(f"{p}: unsupported format {suffix!r} (use .csv, .parquet, .json or .jsonl)")
    out = []
    for i, rec in enumerate(records):
        missing = [k for k in ("feature", "strength", "group") if k not in rec]
        if missing:
            raise ValueError(f"{p}: row {i} lacks column(s) {missing}")
        try:
            out.append(ControlFeature(rec["feature"], rec["strength"], rec["group"]))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{p}: row {i}: {err}") from err
    return out


def control_rows(
    features: Sequence[ControlFeature],
    problems: Sequence[CountdownProblem],
    *,
    problems_per_feature: int = 16,
    seed: int = 0,
) -> list[RowSpec]:
    """Each feature on ``problems_per_feature`` problems drawn without replacement.

    A feature's draw depends only on ``seed`` and the feature id, so adding features never changes the problems of
    the others. Rows are ordered by problem (then by the features' order) so a batch shares a prompt length.
    """
    ids = [(f.feature, f.strength) for f in features]  # a feature may run at several strengths (matched norms)
    if len(set(ids)) != len(ids):
        dup = sorted({f"{f}@{s:g}" for f, s in ids if ids.count((f, s)) > 1})
        raise ValueError(f"features listed more than once at the same strength: {dup}")
    if problems_per_feature < 1:
        raise ValueError(f"problems_per_feature must be >= 1, got {problems_per_feature}")
    if problems_per_feature > len(problems):
        raise ValueError(f"problems_per_feature={problems_per_feature} but only {len(problems)} problems given")
    order = {p.problem_id: i for i, p in enumerate(problems)}
    if len(order) != len(problems):
        raise ValueError("problem ids are not unique")
    rows: list[RowSpec] = []
    for f in features:
        drawn = random.Random(f"{seed}|{f.feature}").sample(list(problems), problems_per_feature)
        rows.extend(RowSpec(f.feature, f.strength, p, f.group) for p in drawn)
    feat_pos = {(f.feature, f.strength): i for i, f in enumerate(features)}
    return sorted(rows, key=lambda r: (order[r.problem.problem_id], feat_pos[(r.feature, r.strength)]))


def run_controls(
    model: CausalLM,
    tokenizer: Tokenizer,
    features: Sequence[ControlFeature],
    problems: Sequence[CountdownProblem],
    directions: Mapping[FeatureId, torch.Tensor],
    *,
    config: SweepConfig,
    problems_per_feature: int = 16,
    seed: int = 0,
    out_path: str | Path | None = None,
    progress: bool = True,
) -> list[SweepRecord]:
    """Generate and score every control row (batched with per-row directions and strengths; resumable)."""
    rows = control_rows(features, problems, problems_per_feature=problems_per_feature, seed=seed)
    return run_rows(model, tokenizer, rows, directions, config, out_path=out_path, progress=progress)
