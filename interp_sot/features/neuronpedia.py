"""FeatureStats to and from Neuronpedia's v1 bulk-export layout, the exchange format of SAE feature tooling.

Layout (what Neuronpedia publishes and SAEDashboard converts into)::

    OUT/features/batch-N.jsonl.gz       one row per feature: modelId, layer, index, maxActApprox, frac_nonzero, ...
    OUT/activations/batch-N.jsonl.gz    one row per top context: tokens, values, maxValue, maxValueTokenIndex, ...
    OUT/explanations/batch-N.jsonl.gz   one row per label: index, description, authorId, typeName, ...

Every file holds up to :data:`BATCH_ROWS` rows; ``index`` is written as a string and ``layer`` is the Neuronpedia
source id (e.g. ``15-llamascope-slimpj-res-32k``), as in Neuronpedia's own exports. We also write
``interp_sot.json`` (the token count and top-k size behind the rows), which Neuronpedia ignores and which lets
:func:`to_feature_stats` turn ``frac_nonzero`` back into exact fire counts.

What an activation row means here: the window of ``before``/``after`` tokens around one top-k entry.
``qualifyingTokenIndex`` is that entry's token and ``values`` are exact wherever the window holds one of the
feature's top-k entries; every other token is written as 0.0. FeatureStats keep no activation for those tokens,
only the bound "<= the feature's k-th top value" when its top-k is full (0 exactly when it is not).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_sot.io import replaced_dir
from interp_sot.protocols import Tokenizer, decode_text

if TYPE_CHECKING:
    from interp_sot.features.stats import FeatureStats

logger = logging.getLogger(__name__)

BATCH_ROWS = 1024
"""Rows per batch file, as in Neuronpedia's exports."""
KINDS = ("features", "activations", "explanations")
SIDECAR = "interp_sot.json"
CREATOR = "interp_sot"
REQUIRED: dict[str, tuple[str, ...]] = {
    "features": ("modelId", "layer", "index", "maxActApprox", "frac_nonzero"),
    "activations": ("modelId", "layer", "index", "tokens", "values", "maxValue", "maxValueTokenIndex"),
    "explanations": ("modelId", "layer", "index", "description"),
}
"""Fields each row kind must carry; a batch missing one is rejected with its file and line."""

Row = dict[str, Any]
Decode = Callable[[int], str]
"""Token id -> its text (one token)."""


@dataclass
class NeuronpediaExport:
    """The rows of one source's export, in file order (feature rows sorted by index)."""

    model_id: str
    """Neuronpedia model id (``modelId``)."""
    source_id: str
    """Neuronpedia source id (the rows' ``layer`` field)."""
    features: list[Row]
    """One row per feature, indices 0..d_sae-1."""
    activations: list[Row] = field(default_factory=list)
    explanations: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Contents of ``interp_sot.json`` (``n_tokens``, ``top_k``, ...); empty for foreign exports."""

    @property
    def d_sae(self) -> int:
        return len(self.features)

    def by_feature(self, kind: str) -> dict[int, list[Row]]:
        """``activations`` or ``explanations`` grouped by feature index (file order kept within a feature)."""
        out: dict[int, list[Row]] = {}
        for row in getattr(self, kind):
            out.setdefault(int(row["index"]), []).append(row)
        return out

    def labels(self) -> dict[int, str]:
        """The first explanation of each feature (file order)."""
        out: dict[int, str] = {}
        for row in self.explanations:
            out.setdefault(int(row["index"]), str(row["description"]))
        return out


# -- FeatureStats -> rows ------------------------------------------------------------------------------------
def token_decoder(tokenizer: Tokenizer) -> Decode:
    """``decode(id)`` with a cache: a corpus of millions of context tokens has only vocabulary-many distinct ids."""
    cache: dict[int, str] = {}

    def decode(token_id: int) -> str:
        text = cache.get(token_id)
        if text is None:
            text = cache[token_id] = decode_text(tokenizer, [token_id])
        return text

    return decode


def context_tokenizer(stats: FeatureStats, tokenizer: Tokenizer | None = None) -> Tokenizer:
    """``tokenizer``, else the live one of the stats' context store, else the one its ``tokenizer_source`` names."""
    store = stats.contexts
    if tokenizer is not None:
        return tokenizer
    if store is not None and store.tokenizer is not None:
        return store.tokenizer
    source = store.tokenizer_source if store is not None else None
    if store is None or not source:
        raise ValueError("cannot decode the contexts: the stats do not name their tokenizer; pass one (--tokenizer)")
    from transformers import AutoTokenizer

    try:
        loaded = store.tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load the contexts' tokenizer {source!r} ({err}); pass one (--tokenizer)") from err
    return loaded


def feature_rows(stats: FeatureStats, model_id: str, source_id: str, hook_name: str | None = None) -> list[Row]:
    """One Neuronpedia feature row per feature (``maxActApprox`` = max activation, ``frac_nonzero`` = firing rate)."""
    max_act = stats.max_act.tolist()
    fires = stats.fire_count.tolist()
    n = stats.n_tokens
    return [
        {"modelId": model_id, "layer": source_id, "index": str(i), "creatorId": CREATOR, "hookName": hook_name,
         "maxActApprox": float(max_act[i]), "frac_nonzero": fires[i] / n if n else 0.0,
         "pos_str": [], "pos_values": [], "neg_str": [], "neg_values": [],
         "freq_hist_data_bar_heights": [], "freq_hist_data_bar_values": [],
         "logits_hist_data_bar_heights": [], "logits_hist_data_bar_values": [],
         "topkCosSimIndices": [], "topkCosSimValues": []}
        for i in range(stats.d_sae)
    ]


def feature_windows(stats: FeatureStats, feature: int, decode: Decode, model_id: str, source_id: str,
                    before: int = 24, after: int = 8, limit: int | None = None) -> list[Row]:
    """Activation rows for ``feature``'s top contexts (best first); see the module docstring for ``values``."""
    if stats.contexts is None:
        raise ValueError("these stats carry no context store: collect with keep_contexts=True")
    values = stats.topk_values[feature].tolist()
    seqs = stats.topk_seq[feature].tolist()
    poss = stats.topk_pos[feature].tolist()
    known: dict[tuple[int, int], float] = {(s, p): v for s, p, v in zip(seqs, poss, values, strict=True) if s >= 0}
    rows: list[Row] = []
    for rank, (seq, pos, value) in enumerate(zip(seqs, poss, values, strict=True)):
        if seq < 0 or (limit is not None and rank >= limit):
            break
        ids, mark = stats.contexts.window(seq, pos, max(before, after))
        lo, hi = max(0, mark - before), mark + after + 1
        ids, mark, start = ids[lo:hi], mark - lo, pos - mark
        acts = [known.get((seq, start + j), 0.0) for j in range(len(ids))]
        acts[mark] = value
        top = max(range(len(acts)), key=acts.__getitem__)
        rows.append({"id": f"{source_id}-{feature}-{rank}", "modelId": model_id, "layer": source_id,
                     "index": str(feature), "creatorId": CREATOR, "dataIndex": str(seq),
                     "tokens": [decode(t) for t in ids], "values": acts, "maxValue": acts[top],
                     "maxValueTokenIndex": top, "minValue": min(acts), "qualifyingTokenIndex": mark})
    return rows


def explanation_rows(labels: Mapping[int, str], model_id: str, source_id: str,
                     author: str = CREATOR) -> list[Row]:
    """One explanation row per labelled feature (sorted by index)."""
    return [{"id": f"{source_id}-{i}-label", "modelId": model_id, "layer": source_id, "index": str(int(i)),
             "description": str(text), "authorId": author, "typeName": None, "explanationModelName": None}
            for i, text in sorted(labels.items()) if text is not None and str(text)]


def from_stats(stats: FeatureStats, model_id: str, source_id: str, *, tokenizer: Tokenizer | None = None,
               labels: Mapping[int, str] | None = None, hook_name: str | None = None,
               before: int = 24, after: int = 8) -> NeuronpediaExport:
    """All three row kinds for ``stats``; activation rows need its context store and a tokenizer.

    Stats without contexts (or without a tokenizer to decode them) give features and explanations only, and a
    warning says so.
    """
    bad = [i for i in (labels or {}) if not 0 <= int(i) < stats.d_sae]
    if bad:
        raise ValueError(f"label for feature {bad[0]} is outside d_sae={stats.d_sae}")
    activations: list[Row] = []
    if stats.contexts is None:
        logger.warning("the stats carry no top-k contexts: exporting features and explanations only")
    else:
        decode = token_decoder(context_tokenizer(stats, tokenizer))
        for f in range(stats.d_sae):
            activations += feature_windows(stats, f, decode, model_id, source_id, before, after)
    extra = {"d_sae": stats.d_sae, "n_tokens": stats.n_tokens, "top_k": stats.top_k, "first_n": stats.first_n,
             "onset_n": stats.onset_n, "info": stats.info, "window": [before, after]}
    return NeuronpediaExport(model_id, source_id, feature_rows(stats, model_id, source_id, hook_name), activations,
                             explanation_rows(labels or {}, model_id, source_id), extra)


# -- files ---------------------------------------------------------------------------------------------------
def write_export(export: NeuronpediaExport, out: str | Path) -> Path:
    """Write ``out/{features,activations,explanations}/batch-N.jsonl.gz`` (+ ``interp_sot.json``); returns ``out``."""
    with replaced_dir(out) as tmp:
        for kind in KINDS:
            rows: list[Row] = getattr(export, kind)
            (tmp / kind).mkdir()
            for b in range(0, max(len(rows), 1), BATCH_ROWS):
                payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[b : b + BATCH_ROWS])
                # mtime=0: the same rows always give the same bytes
                (tmp / kind / f"batch-{b // BATCH_ROWS}.jsonl.gz").write_bytes(
                    gzip.compress(payload.encode("utf-8"), mtime=0))
        if export.extra:
            (tmp / SIDECAR).write_text(json.dumps(export.extra, indent=2, sort_keys=True, default=str) + "\n")
    return Path(out)


def batch_files(folder: Path) -> list[Path]:
    """The ``batch-N.jsonl[.gz]`` files of one kind's folder, by batch number (``batch-10`` after ``batch-2``)."""

    def number(p: Path) -> int:
        m = re.fullmatch(r"batch-(\d+)\.jsonl(\.gz)?", p.name)
        return int(m.group(1)) if m else -1

    return sorted((p for p in folder.iterdir() if number(p) >= 0), key=number)


def read_batch(path: Path, kind: str) -> list[Row]:
    """The rows of one ``batch-N.jsonl[.gz]`` file of ``kind``, each checked for that kind's fields."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    rows: list[Row] = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}: line {lineno} is not valid JSON ({err.msg})") from err
                missing = [k for k in REQUIRED[kind] if not isinstance(row, dict) or k not in row]
                if missing:
                    raise ValueError(f"{path}: line {lineno} lacks the {kind} field(s) {missing}")
                try:
                    int(row["index"])
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{path}: line {lineno} has a non-integer index {row['index']!r}") from err
                rows.append(row)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read the Neuronpedia export batch {path}: {err}") from err
    return rows


def read_export(path: str | Path, d_sae: int | None = None) -> NeuronpediaExport:
    """Read and check an export folder (``features/`` required; ``activations/`` and ``explanations/`` optional).

    Checks: every row has its kind's fields; all rows name one ``modelId`` and ``layer``; feature rows cover
    indices ``0..d_sae-1`` once each; activation/explanation indices lie in that range; ``d_sae`` (if given)
    matches. Each violation is a ValueError naming the file or feature.
    """
    path = Path(path)
    if not (path / "features").is_dir():
        raise FileNotFoundError(f"{path} is not a Neuronpedia export: no features/ folder with batch-N.jsonl.gz")
    rows: dict[str, list[Row]] = {}
    origin: dict[str, tuple[str, str] | None] = {}
    for kind in KINDS:
        files = batch_files(path / kind) if (path / kind).is_dir() else []
        rows[kind] = []
        for f in files:
            batch = read_batch(f, kind)
            _check_source(batch, f, origin)
            rows[kind] += batch
    if not rows["features"]:
        raise ValueError(f"{path / 'features'} holds no feature rows")
    features = sorted(rows["features"], key=lambda r: int(r["index"]))
    indices = [int(r["index"]) for r in features]
    if indices != list(range(len(indices))):
        dup = sorted({i for i in indices if indices.count(i) > 1})[:5] if len(set(indices)) < len(indices) else []
        raise ValueError(f"{path}: feature rows must cover indices 0..{len(indices) - 1} once each"
                         + (f" (duplicated: {dup}; batches of two SAEs mixed?)" if dup else
                            f" (they span {min(indices)}..{max(indices)})"))
    n = len(features)
    if d_sae is not None and n != d_sae:
        raise ValueError(f"{path}: the export has d_sae={n} features but {d_sae} were expected")
    for kind in ("activations", "explanations"):
        bad = [int(r["index"]) for r in rows[kind] if not 0 <= int(r["index"]) < n]
        if bad:
            raise ValueError(f"{path}/{kind}: feature index {bad[0]} is outside d_sae={n} of the feature rows")
    extra = json.loads((path / SIDECAR).read_text()) if (path / SIDECAR).is_file() else {}
    if extra.get("d_sae", n) != n:
        raise ValueError(f"{path}: {SIDECAR} says d_sae={extra['d_sae']} but the feature rows hold {n}")
    model_id, source_id = origin["o"] or ("", "")
    return NeuronpediaExport(model_id, source_id, features, rows["activations"], rows["explanations"], extra)


def _check_source(batch: list[Row], path: Path, origin: dict[str, tuple[str, str] | None]) -> None:
    for row in batch:
        key = (str(row["modelId"]), str(row["layer"]))
        if origin.setdefault("o", key) != key:
            raise ValueError(f"{path}: row of {key[0]}/{key[1]} in an export of {origin['o']}; "
                             "batches of different sources are mixed")


# -- rows -> FeatureStats ------------------------------------------------------------------------------------
def to_feature_stats(export: NeuronpediaExport, n_tokens: int | None = None) -> FeatureStats:
    """FeatureStats holding what the format carries: fire counts (``frac_nonzero`` x ``n_tokens``), maxima, and
    the top-k values with their ``dataIndex``/token positions.

    ``n_tokens`` comes from ``interp_sot.json`` when we wrote the export; pass it for a foreign one. What the
    format does not carry (activation sums, onset counts, token ids of contexts) is left NaN / zero and listed
    in ``stats.info["neuronpedia_missing"]``.
    """
    import torch

    from interp_sot.features.stats import FORMAT_VERSION, FeatureStats

    n_tok = export.extra.get("n_tokens", n_tokens)
    if n_tok is None:
        raise ValueError("this export does not record its token count: pass n_tokens (the tokens frac_nonzero "
                         "was measured over)")
    d = export.d_sae
    by_feature = export.by_feature("activations")
    k = int(export.extra.get("top_k") or max((len(v) for v in by_feature.values()), default=1) or 1)
    values = torch.zeros(d, k, dtype=torch.float32)
    seq = torch.full((d, k), -1, dtype=torch.int64)
    pos, onset = seq.clone(), seq.clone()
    for f, rows in by_feature.items():
        entries = sorted(((_entry_value(r), r) for r in rows), key=lambda e: -e[0])[:k]
        for rank, (value, r) in enumerate(entries):
            values[f, rank] = value
            seq[f, rank] = int(r["dataIndex"]) if str(r.get("dataIndex", "")).isdigit() else f * k + rank
            pos[f, rank] = qualifying_index(r)
    fires = torch.tensor([round(float(r["frac_nonzero"]) * n_tok) for r in export.features], dtype=torch.int64)
    nan = torch.full((d,), float("nan"), dtype=torch.float64)
    tensors = {"fire_count": fires, "first_n_count": torch.zeros(d, dtype=torch.int64),
               "onset_count": torch.zeros(d, dtype=torch.int64), "nonfinite_count": torch.zeros(d, dtype=torch.int64),
               "act_sum": nan, "act_sq_sum": nan.clone(), "topk_values": values, "topk_seq": seq, "topk_pos": pos,
               "topk_onset": onset}
    info = {**export.extra.get("info", {}), "neuronpedia": f"{export.model_id}/{export.source_id}",
            "neuronpedia_missing": ["act_sum", "act_sq_sum", "first_n_count", "onset_count", "topk_onset", "contexts"]}
    meta = {"format_version": FORMAT_VERSION, "d_sae": d, "top_k": k, "first_n": export.extra.get("first_n", 4),
            "onset_n": export.extra.get("onset_n", 4), "n_tokens": int(n_tok), "info": info}
    return FeatureStats.from_state(tensors, meta, source=f"neuronpedia export {export.source_id}")


def qualifying_index(row: Row) -> int:
    """The token an activation row was kept for: ``qualifyingTokenIndex`` when set (ours), else its max token."""
    q = row.get("qualifyingTokenIndex")
    return q if isinstance(q, int) and 0 <= q < len(row["values"]) else int(row["maxValueTokenIndex"])


def _entry_value(row: Row) -> float:
    return float(row["values"][qualifying_index(row)])


def export_stats(stats: FeatureStats, out: str | Path, model_id: str, source_id: str, *,
                 tokenizer: Tokenizer | None = None, labels: Mapping[int, str] | None = None,
                 hook_name: str | None = None, before: int = 24, after: int = 8) -> Path:
    """:func:`from_stats` then :func:`write_export` (``out`` checked first, so a bad path costs nothing)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a folder")
    export = from_stats(stats, model_id, source_id, tokenizer=tokenizer, labels=labels, hook_name=hook_name,
                        before=before, after=after)
    return write_export(export, out)

