"""One ``interp-sot browse``: load a feature source and write the site, a Neuronpedia export or a FeatureStats import.

:class:`BrowseRequest` declares each setting once (its fields' docstrings are the flags' help); :func:`browse`
does the work and returns what the command prints. Importing this module loads no torch or pandas (``--help``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from interp_sot.errors import FlagError

if TYPE_CHECKING:
    import pandas as pd

OUTPUTS = ("out", "neuronpedia_out", "stats_out")
"""The fields naming a folder to write."""


@dataclass(frozen=True)
class BrowseRequest:
    """What to read (``stats`` or ``neuronpedia``, plus a screen and sweeps) and what to write (``out``: the
    browser, ``neuronpedia_out``: an export of the stats, ``stats_out``: the export imported as FeatureStats)."""

    stats: str | None = None
    """FeatureStats folder (interp-sot stats --out)."""
    neuronpedia: str | None = None
    """A Neuronpedia v1 export folder (features/, activations/, explanations/)."""
    screen: str | None = None
    """Screen run folder (screen.parquet, judge scores) or a screening table file."""
    out: str | None = None
    """Site folder to write (replaced whole)."""
    tokenizer: str | None = None
    """Tokenizer to decode contexts (none: the one the stats name)."""
    contexts: int = 20
    """Top contexts per feature page."""
    sweep: tuple[str, ...] = ()
    """Steer/controls run folder with *.jsonl records (repeatable)."""
    window: tuple[int, int] = (24, 8)
    """Tokens shown around the activating token."""
    judge_window: tuple[int, int] = (32, 8)
    """The --window the screen's judge saw, to find each context's score."""
    neuronpedia_out: str | None = None
    """Write the stats as a Neuronpedia export into this folder."""
    model_id: str | None = None
    """Neuronpedia modelId (none: the stats' model)."""
    source_id: str | None = None
    """Neuronpedia source id, e.g. 15-res-8k (none: LAYER-interp-sot)."""
    stats_out: str | None = None
    """With --neuronpedia: save the import as a FeatureStats folder."""
    n_tokens: int | None = None
    """With --stats-out on a foreign export: tokens its frac_nonzero was measured over."""

    def check(self) -> None:
        """Raise FlagError, naming the flag, for an output folder that is a file or flags that cannot go together."""
        for name in OUTPUTS:
            path = getattr(self, name)
            if path is not None and Path(path).exists() and not Path(path).is_dir():
                raise FlagError(f"--{name.replace('_', '-')} {Path(path)} is a file, not a folder")
        if not any(getattr(self, name) for name in OUTPUTS):
            raise FlagError("nothing to write: give --out, --neuronpedia-out or --stats-out")
        if self.neuronpedia and self.neuronpedia_out:
            raise FlagError("--neuronpedia-out needs --stats (the input is already an export)")
        if self.stats and self.stats_out:
            raise FlagError("--stats-out needs --neuronpedia (it imports an export)")
        if min(self.contexts, *self.window, *self.judge_window) < 0:
            raise FlagError("--contexts, --window and --judge-window take counts >= 0")


class BrowseResult(NamedTuple):
    """What :func:`browse` wrote (None: not asked for)."""

    site: Path | None
    """``out/index.html``."""
    export: Path | None
    """The Neuronpedia export folder."""
    stats: Path | None
    """The imported FeatureStats folder."""
    lines: tuple[str, ...]
    """What ``interp-sot browse`` prints: the sources' notes, then one line per output."""


def browse(request: BrowseRequest) -> BrowseResult:
    """Check the request, load its sources and write its outputs (each folder replaced whole)."""
    request.check()
    from interp_sot.browser.data import BrowserOptions, load_sources
    from interp_sot.browser.site import write_site

    tokenizer = None
    if request.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(request.tokenizer)
    src = load_sources(request.stats, neuronpedia=request.neuronpedia, screen=request.screen, sweep=request.sweep,
                       tokenizer=tokenizer)
    lines = [f"note: {note}" for note in src.notes]
    site = export_dir = stats_dir = None
    before, after = request.window
    if request.neuronpedia_out and src.stats is not None:  # stats given (checked above)
        from interp_sot.features.neuronpedia import from_stats, write_export

        info = src.stats.info
        model_id = request.model_id or str(info.get("model", "model"))
        source_id = request.source_id or f"{info.get('layer', 0)}-interp-sot"
        export = from_stats(src.stats, model_id, source_id, tokenizer=src.tokenizer, labels=_labels(src.screen),
                            before=before, after=after)
        export_dir = write_export(export, request.neuronpedia_out)
        lines.append(f"Neuronpedia export ({len(export.features)} features, {len(export.activations)} contexts, "
                     f"{len(export.explanations)} labels): {export_dir}")
    if request.stats_out:
        from interp_sot.features.neuronpedia import to_feature_stats

        stats = to_feature_stats(src.neuronpedia, n_tokens=request.n_tokens)
        stats_dir = stats.save(request.stats_out)
        lines.append(f"FeatureStats ({stats.d_sae} features): {stats_dir}")
    if request.out:
        options = BrowserOptions(contexts=request.contexts, before=before, after=after,
                                 judge_window=request.judge_window)
        site = write_site(src, Path(request.out), options)
        lines.append(f"feature browser: {site}")
    return BrowseResult(site, export_dir, stats_dir, tuple(lines))


def _labels(screen: pd.DataFrame | None) -> dict[int, str]:
    """Feature -> its screen label (features without one left out)."""
    if screen is None or "label" not in screen.columns:
        return {}
    return {int(f): str(v) for f, v in zip(screen["feature"], screen["label"], strict=True)
            if isinstance(v, str) and v}
