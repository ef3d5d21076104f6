"""Feature labels (auto-interp explanations) from Neuronpedia: bulk-export files, or its API.

Bulk exports live at ``v1/{modelId}/{sourceId}/explanations/batch-N.jsonl.gz`` (1,024 rows per file); each row
carries ``modelId, layer, index, description, explanationModelName, typeName, ...``. A feature may have several
explanations; :func:`feature_labels` keeps one per feature (a preferred explainer model first, else file order).
The API path uses the ``neuronpedia`` client and needs ``NEURONPEDIA_API_KEY``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from interp_sot.features.neuronpedia import batch_files, read_batch

logger = logging.getLogger(__name__)

EXPLANATION_COLUMNS = ("model_id", "layer", "index", "description", "explanation_model", "type_name")
"""Columns of :func:`read_explanations` (export field names in snake case)."""
_FIELDS = {"modelId": "model_id", "layer": "layer", "index": "index", "description": "description",
           "explanationModelName": "explanation_model", "typeName": "type_name"}


def export_files(path: str | Path) -> list[Path]:
    """The export files under ``path`` (a ``.jsonl[.gz]`` file, an ``explanations/`` folder or its parent)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no Neuronpedia explanation export at {path}")
    folder = path / "explanations" if (path / "explanations").is_dir() else path
    files = batch_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder} holds no batch-N.jsonl.gz explanation files")
    return files


def _read_rows(path: Path) -> list[dict[str, object]]:
    """One batch's explanation rows (read and checked by the one export reader), in snake-case columns."""
    return [{**{col: raw.get(src) for src, col in _FIELDS.items()}, "index": int(raw["index"])}
            for raw in read_batch(path, "explanations")]


def read_explanations(path: str | Path) -> pd.DataFrame:
    """All explanation rows of an export (columns :data:`EXPLANATION_COLUMNS`), in file order."""
    rows = [row for f in export_files(path) for row in _read_rows(f)]
    table = pd.DataFrame(rows, columns=list(EXPLANATION_COLUMNS))
    table["index"] = table["index"].astype("int64")
    return table


def feature_labels(
    explanations: pd.DataFrame, prefer_models: Sequence[str] = (), d_sae: int | None = None
) -> pd.Series:
    """One description per feature (Series indexed by feature id, sorted).

    Among a feature's explanations, the first whose ``explanation_model`` appears earliest in ``prefer_models``
    wins; otherwise the first in file order. With ``d_sae``, indices outside ``[0, d_sae)`` are an error.
    """
    if explanations.empty:
        return pd.Series(dtype=object, name="label")
    if d_sae is not None:
        bad = explanations["index"][(explanations["index"] < 0) | (explanations["index"] >= d_sae)]
        if len(bad):
            raise ValueError(f"explanation for feature {int(bad.iloc[0])} is out of range for d_sae={d_sae}")
    rank = {m: i for i, m in enumerate(prefer_models)}
    ordered = explanations.assign(
        _pref=explanations["explanation_model"].map(lambda m: rank.get(m, len(rank))), _order=range(len(explanations))
    ).sort_values(["index", "_pref", "_order"])
    first = ordered.drop_duplicates("index", keep="first")
    return pd.Series(first["description"].to_numpy(dtype=object), index=first["index"].to_numpy(), name="label")


def fetch_labels(
    model_id: str, source: str, indices: Iterable[int], prefer_models: Sequence[str] = ()
) -> pd.Series:
    """Descriptions fetched one feature at a time through the ``neuronpedia`` client (needs NEURONPEDIA_API_KEY).

    Features with no explanation are absent from the result. For all 32k features prefer the bulk export.
    """
    if not os.environ.get("NEURONPEDIA_API_KEY"):
        raise ValueError("set NEURONPEDIA_API_KEY to fetch labels from Neuronpedia (or use a bulk export folder)")
    from neuronpedia.requests.sae_feature_request import SAEFeatureRequest

    request = SAEFeatureRequest()
    rows: list[dict[str, object]] = []
    for index in tqdm(list(indices), desc="neuronpedia labels", unit="feature"):
        feature = json.loads(request.get(model_id, source, str(int(index))).jsonData)
        for exp in feature.get("explanations") or []:
            rows.append({
                "model_id": model_id, "layer": source, "index": int(index), "description": exp.get("description"),
                "explanation_model": exp.get("explanationModelName"), "type_name": exp.get("typeName"),
            })
    return feature_labels(pd.DataFrame(rows, columns=list(EXPLANATION_COLUMNS)), prefer_models)
