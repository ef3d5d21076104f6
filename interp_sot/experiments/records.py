"""What a steering sweep runs (a row spec) and what it keeps (a record per generated trace)."""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from interp_sot.tasks.countdown.problems import CountdownProblem

if TYPE_CHECKING:
    import numpy as np
    import torch

FeatureId = int | str
"""An SAE feature index, or any label of a custom direction."""


def normalize_feature(feature: object) -> FeatureId:
    """Integers (numpy ones included) as ``int``, anything else as ``str``: what survives a JSON round trip."""
    if isinstance(feature, bool):
        raise ValueError(f"feature id {feature!r} is a boolean")
    if isinstance(feature, numbers.Integral):
        return int(feature)
    if isinstance(feature, str) and feature:
        return feature
    raise ValueError(f"feature id must be an integer or a non-empty string, got {feature!r}")


def row_key(feature: FeatureId, strength: float, problem_id: str) -> str:
    """``feature|strength|problem``: the identity of a row, used to resume and to join codings."""
    return f"{feature}|{float(strength)!r}|{problem_id}"


@dataclass(frozen=True)
class RowSpec:
    """One generation to run: a problem under one feature at one strength."""

    feature: FeatureId
    """Key into the directions mapping."""
    strength: float
    """s in h' = h + s * d."""
    problem: CountdownProblem
    group: str | None = None
    """Optional label, e.g. ``"conversational"`` / ``"non_conversational"`` for control runs."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature", normalize_feature(self.feature))
        object.__setattr__(self, "strength", float(self.strength))

    @property
    def key(self) -> str:
        return row_key(self.feature, self.strength, self.problem.problem_id)


@dataclass(frozen=True)
class SweepRecord:
    """One generated trace with everything needed to score, code and reproduce it."""

    key: str
    feature: FeatureId
    group: str | None
    strength: float
    problem_id: str
    nums: list[int]
    target: int
    prompt: str
    completion: str
    """The generated text, cut right after the stop string when it was produced."""
    finish_reason: str
    """``"stop"`` (stop string), ``"eos"`` or ``"length"`` (max_new_tokens reached)."""
    n_prompt_tokens: int
    n_new_tokens: int
    answer: str | None
    answer_source: str | None
    correct: bool
    reason: str
    """``"ok"`` or why the answer was judged wrong."""
    direction_sha: str
    """Fingerprint of the steering direction (float32 bytes) so a resumed run cannot silently mix directions."""
    settings: dict[str, Any]
    """Every setting that determines the trace distribution (sampling, layer, site, prompt style, scoring)."""
    batch_seed: int
    """The torch seed the row's batch was generated under."""
    batch_size: int
    valid_expression: bool = False
    """Graded outcome: the answer uses each given number as the rules ask, whatever its value."""
    abs_error: float | None = None
    """Graded outcome: |value - target| of a valid answer; None without one."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> SweepRecord:
        names = {f.name for f in fields(cls)}
        graded = {"valid_expression", "abs_error"}  # records written before the graded outcomes existed lack them
        missing = names - graded - set(d)
        if missing:
            raise ValueError(f"sweep record {d.get('key', '?')!r} lacks fields {sorted(missing)}")
        values: dict[str, Any] = {k: d[k] for k in names if k in d}  # JSON, as to_dict wrote it
        return cls(**values)


def direction_fingerprint(direction: torch.Tensor | np.ndarray | Sequence[float]) -> str:
    """First 16 hex digits of sha256 over the direction's float32 bytes: [d_model] tensor or array."""
    import numpy as np
    import torch

    arr = direction.detach().to(torch.float32).cpu().numpy() if isinstance(direction, torch.Tensor) else direction
    data = np.ascontiguousarray(np.asarray(arr, dtype=np.float32)).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]
