"""Feature categories: personality-related, expertise-related or other, judged from feature descriptions.

The paper classified every feature with an LLM (scores thresholded at 50) and reports 5,455 personality and
15,436 expertise features. The judge gives two independent 0-100 scores per description; a feature is
personality-related when its personality score >= ``threshold`` and likewise for expertise (both may hold).
``category`` collapses that to one value: the flag that holds, the higher score when both hold (personality on a
tie), else ``"other"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from interp_sot.judging.base import Judge, Message
from interp_sot.judging.prompts.categories import FEATURE_CATEGORY, format_descriptions
from interp_sot.judging.prompts.template import PromptTemplate
from interp_sot.screening.batch_scoring import score_in_batches
from interp_sot.screening.score_store import ScoreStore


def parse_category_items(obj: object, n: int) -> list[list[float]]:
    """Validate ``{"items": [{"personality": p, "expertise": e}, ...]}`` with ``n`` items, scores in [0, 100]."""
    items = obj.get("items") if isinstance(obj, dict) else obj
    if not isinstance(items, list) or len(items) != n:
        raise ValueError(f'expected {{"items": [...]}} with exactly {n} objects')
    out: list[list[float]] = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError(f"each item must be an object with personality and expertise, got {item!r}")
        pair = []
        for key in ("personality", "expertise"):
            s = item.get(key)
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s <= 100:
                raise ValueError(f"{key} must be a number from 0 to 100, got {s!r}")
            pair.append(float(s))
        out.append(pair)
    return out


def category_messages(descriptions: list[str], template: PromptTemplate = FEATURE_CATEGORY) -> list[Message]:
    return template.render(n=str(len(descriptions)), descriptions=format_descriptions(descriptions))


def classify_categories(
    labels: pd.Series,
    judge: Judge,
    store_path: str | Path | None = None,
    threshold: float = 50.0,
    batch_size: int = 20,
    retries: int = 2,
    on_invalid: Literal["raise", "skip"] = "skip",
    template: PromptTemplate = FEATURE_CATEGORY,
) -> pd.DataFrame:
    """Per feature (``labels``: feature id -> description): scores, flags and category; one judgment per
    distinct description, persisted in ``store_path`` so reruns are free. Unjudged features get NaN scores and
    category ``"other"`` with ``judged=False``. ``template`` replaces the shipped prompt (placeholders ``n`` and
    ``descriptions``); its key scopes the stored scores."""
    if not 0 <= threshold <= 100:
        raise ValueError(f"threshold must be in [0, 100], got {threshold}")
    texts = [" ".join(str(d).split()) for d in labels.fillna("").to_numpy()]
    store = ScoreStore(store_path, judge.name, template.key)
    result = score_in_batches(
        [t for t in texts if t], judge, store, lambda batch: category_messages(batch, template), parse_category_items,
        batch_size=batch_size, retries=retries, on_invalid=on_invalid, desc="feature categories",
    )
    scores = np.array([result.values.get(t, [np.nan, np.nan]) if t else [np.nan, np.nan] for t in texts],
                      dtype=np.float64).reshape(-1, 2)
    personality, expertise = scores[:, 0], scores[:, 1]
    is_p, is_e = personality >= threshold, expertise >= threshold
    category = np.where(
        is_p & (~is_e | (personality >= expertise)), "personality", np.where(is_e, "expertise", "other")
    )
    return pd.DataFrame(
        {
            "personality_score": personality,
            "expertise_score": expertise,
            "is_personality": is_p,
            "is_expertise": is_e,
            "category": category,
            "judged": ~np.isnan(personality),
        },
        index=pd.Index(labels.index.to_numpy(), name="feature_id"),
    )
