"""Write the static feature browser: two self-contained HTML pages plus sharded data scripts.

``index.html`` (the feature table) and ``feature.html#N`` (one feature) carry their CSS and JS inline and load
data only through ``<script src>`` tags, because a page opened from disk (``file://``) may not ``fetch`` local
files in Chromium. The table reads ``data/table.js`` (all features, columnar); a feature page reads only the
shard holding its feature (``data/shard-NNNN.js``, :data:`SHARD_SIZE` features each), so 32,768 features cost the
browser one small file per page, not 32,768 files or one huge one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from interp_sot.browser.data import TABLE_COLUMNS, BrowserOptions, Sources, Table, feature_table, load_sources, pages
from interp_sot.io import replaced_dir

if TYPE_CHECKING:
    import pandas as pd

    from interp_sot.features.stats import FeatureStats
    from interp_sot.protocols import Tokenizer

logger = logging.getLogger(__name__)

SHARD_SIZE = 128
"""Features per page-data shard."""


def _asset(name: str) -> str:
    return (resources.files("interp_sot.browser") / "assets" / name).read_text(encoding="utf-8")


def _script(target: str, obj: object) -> str:
    """A data file as JS: ``TARGET = <json>;`` (``</`` escaped so the JSON can never close a script tag)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return f"{target}=" + text.replace("</", "<\\/") + ";\n"


def _page(template: str, title: str, d_sae: int) -> str:
    """An HTML page with the CSS and shared JS inlined (no external asset but the data scripts)."""
    import html

    head = (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{_asset('browser.css')}</style>\n</head>\n")
    body = (_asset(template).replace("/*COMMON*/", _asset("common.js")).replace("{{SHARD_SIZE}}", str(SHARD_SIZE))
            .replace("{{D_SAE}}", str(d_sae)))
    return head + body


def _meta(src: Sources) -> dict[str, object]:
    info: dict[str, object] = dict(src.stats.info) if src.stats is not None else {}
    meta: dict[str, object] = {"d_sae": src.d_sae, "shard_size": SHARD_SIZE, "pages": src.has_contexts,
                            "notes": src.notes, "judge": src.judge_name}
    if src.stats is not None:
        meta.update(n_tokens=src.stats.n_tokens, top_k=src.stats.top_k, onset_n=src.stats.onset_n,
                    source=" · ".join(f"{k} {info[k]}" for k in ("model", "layer", "sae") if k in info))
    else:
        meta["source"] = f"Neuronpedia export {src.neuronpedia.model_id} / {src.neuronpedia.source_id}"
    if src.screen is not None:
        meta["filter"] = src.screen.attrs.get("filter")
    return meta


def write_site(src: Sources, out: str | Path, opts: BrowserOptions | None = None) -> Path:
    """Write the browser for loaded sources into ``out`` (replaced whole); returns ``out/index.html``."""
    opts = opts or BrowserOptions()
    table = feature_table(src, opts)
    meta = _meta(src)
    columns = [{"key": k, "label": label, "kind": kind} for k, label, kind in TABLE_COLUMNS]
    title = f"interp_sot features: {meta['source'] or f'{src.d_sae} features'}"
    with replaced_dir(out) as tmp:
        (tmp / "data").mkdir()
        (tmp / "data" / "table.js").write_text(_script("window.SAE_TABLE", {"meta": meta, "columns": columns,
                                                                     "cells": table}), encoding="utf-8")
        (tmp / "index.html").write_text(_page("index.html", title, src.d_sae), encoding="utf-8")
        (tmp / "feature.html").write_text(_page("feature.html", title, src.d_sae), encoding="utf-8")
        if src.has_contexts:
            _write_shards(src, table, opts, meta, tmp / "data")
    logger.info("feature browser for %d features written to %s", src.d_sae, out)
    return Path(out) / "index.html"


def _write_shards(src: Sources, table: Table, opts: BrowserOptions, meta: dict[str, object], folder: Path) -> None:
    n_shards = (src.d_sae + SHARD_SIZE - 1) // SHARD_SIZE
    shared = {k: meta[k] for k in ("d_sae", "shard_size", "source", "judge", "top_k", "onset_n") if k in meta}
    feature_pages = pages(src, table, opts, range(src.d_sae))
    for shard in tqdm(range(n_shards), desc="feature pages", unit="shard", disable=True if n_shards < 8 else None):
        chunk = [next(feature_pages) for _ in range(min(SHARD_SIZE, src.d_sae - shard * SHARD_SIZE))]
        (folder / f"shard-{shard:04d}.js").write_text(
            _script(f"(window.SAE_SHARDS=window.SAE_SHARDS||{{}})[{shard}]", {"meta": shared, "pages": chunk}),
            encoding="utf-8")


def write_browser(stats: FeatureStats | str | Path | None = None, *, screen: pd.DataFrame | str | Path | None = None,
                  sweep: str | Path | Sequence[str | Path] | None = None, out: str | Path,
                  neuronpedia: str | Path | None = None, tokenizer: Tokenizer | None = None,
                  options: BrowserOptions | None = None) -> Path:
    """The feature browser of a run, in ``out/`` (open ``out/index.html``); returns that path.

    ``stats``: a FeatureStats or its folder (``interp-sot stats --out``); or ``neuronpedia``: an export folder.
    ``screen``: a screen run folder (``screen.parquet`` + judge scores) or a screening table. ``sweep``: steer or
    controls run folder(s) holding ``*.jsonl`` sweep records. ``tokenizer`` decodes the contexts (default: the
    one the context store names).
    """
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"--out {target} is a file, not a folder")
    src = load_sources(stats, neuronpedia=neuronpedia, screen=screen, sweep=sweep, tokenizer=tokenizer)
    return write_site(src, target, options)
