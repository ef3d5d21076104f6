"""Stage ``pick``: the one feature to steer, chosen from the screening table.

Reads: the ``screen`` stage's table and the statistics (for the picked feature's top contexts). Writes
``pick.json`` into its directory: the :class:`~interp_sot.screening.pick.Pick` fields, the feature's top contexts
as text and the settings that chose it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from interp_sot.features.stats import FeatureStats
from interp_sot.io import atomic_write_json
from interp_sot.screening.conversation_ratio import top_contexts
from interp_sot.screening.pick import Pick, pick_feature
from interp_sot.stages.rundir import begin_stage, finish_stage

if TYPE_CHECKING:
    from interp_sot.protocols import Tokenizer

logger = logging.getLogger(__name__)

STAGE = "pick"
PICK_FILE = "pick.json"


@dataclass(frozen=True)
class PickConfig:
    """How the feature is chosen among those passing the filter."""

    min_contexts: int = 20
    """A feature needs this many judged top contexts (small corpora give many ratios of 1.0 from 3 contexts)."""
    position_column: str = "onset_share"
    """The position share that breaks ties after the ratio's lower bound and the ratio (the filter's column)."""
    n_examples: int = 8
    """Top contexts of the picked feature rendered into ``pick.json``."""

    def __post_init__(self) -> None:
        if self.min_contexts < 1 or self.n_examples < 0:
            raise ValueError("PickConfig needs min_contexts >= 1 and n_examples >= 0")


class PickResult(NamedTuple):
    """The picked feature and its top contexts as text (activating token marked)."""

    pick: Pick
    contexts: list[str]


def pick_stage(
    stats: FeatureStats,
    table: pd.DataFrame,
    config: PickConfig,
    out: str | Path,
    *,
    tokenizer: Tokenizer | None = None,
    inputs: Mapping[str, object] | None = None,
) -> PickResult:
    """Pick the feature (see :func:`~interp_sot.screening.pick.ranked_candidates` for the order) into ``out``."""
    out = Path(out)
    begin_stage(out, STAGE, config, inputs)
    pick = pick_feature(table, config.min_contexts, config.position_column)
    texts: list[str] = []
    if stats.contexts is not None and config.n_examples:
        seq, pos, valid = top_contexts(stats, np.asarray([pick.feature]), config.n_examples)
        texts = [stats.contexts.render(int(s), int(p), before=24, after=4, tokenizer=tokenizer)
                 for s, p, ok in zip(seq[0], pos[0], valid[0], strict=True) if ok]
    atomic_write_json(out / PICK_FILE, {**pick._asdict(), "top_contexts": texts, "min_contexts": config.min_contexts})
    logger.info("picked feature %d (ratio %.2f, Wilson lower bound %.2f, onset share %.2f, %d contexts; %d "
                "candidates)", pick.feature, pick.conversation_ratio, pick.ratio_lo, pick.position_share,
                pick.n_contexts, pick.n_candidates)
    finish_stage(out, STAGE, [PICK_FILE], {"feature": pick.feature})
    return PickResult(pick, texts)
