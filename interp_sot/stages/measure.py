"""Stage ``measure``: per-trace coherence and SAE feature totals of a finished steer / controls run.

Reads: the run directory's records (``sweep.jsonl`` or ``controls.jsonl``), a model + tokenizer and, for the
diversity outcome, the SAE. Writes next to the records, one line per trace keyed by the record key:
``coherence.jsonl`` (unsteered mean log-prob of the generated tokens + degenerate-text flag,
``experiments.coherence``) and ``trace_features.jsonl`` (the SAE's sparse per-feature totals over the generated
tokens, forwarded WITHOUT steering by default, ``experiments.trace_features``). Appends per chunk, so an
interrupted run resumes where it stopped. Its own bookkeeping (``stage.json``, ``manifest.json``) lives in
``<run>/measures/``, so the run's steer / controls identity stays untouched. The ``analyze`` stage joins both.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from interp_sot.analysis.measures import COHERENCE_FILE, FEATURES_FILE
from interp_sot.analysis.sweep_table import RECORD_FILES
from interp_sot.errors import InterpSotError, shorten
from interp_sot.experiments.coherence import CoherenceConfig, score_traces
from interp_sot.experiments.records import FeatureId, SweepRecord
from interp_sot.experiments.trace_features import SparseTotals, Stream, trace_feature_totals
from interp_sot.io import append_jsonl, read_jsonl, truncate_torn_tail
from interp_sot.stages.identity import file_digest, object_inputs
from interp_sot.stages.rundir import begin_stage, check_identity, finish_stage, is_complete, require_complete
from interp_sot.tasks.countdown.prompts import adds_special_tokens

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM, SparseAutoencoder, Tokenizer

logger = logging.getLogger(__name__)

STAGE = "measure"
MEASURES_DIR = "measures"


def require_measured_completely(run: str | Path) -> None:
    """Refuse to read a run's measures (``coherence.jsonl``, ``trace_features.jsonl``) when a measure stage started
    and never finished: a killed pass leaves a subset of the traces scored, and a table over that subset would lie.
    A run never measured passes (it simply has no measures)."""
    require_complete(Path(run) / MEASURES_DIR, f"the measures of {run} (rerun `interp-sot measure` to finish them)")


@dataclass(frozen=True)
class MeasureConfig:
    """What is measured per trace and how."""

    layer: int
    """Decoder layer whose resid_post the SAE reads (the steered layer)."""
    coherence: CoherenceConfig = field(default_factory=CoherenceConfig)
    """Scoring batch and the degenerate-text thresholds."""
    diversity: bool = True
    """Re-encode each trace with the SAE (``trace_features.jsonl``); needs an SAE."""
    stream: Stream = "unsteered"
    """``unsteered``: encode the stream without s·d (the default: the steered stream contains the steering vector by
    construction); ``steered``: add it back (needs the run's directions)."""
    threshold: float = 0.0
    """A feature counts as active on a token when its activation exceeds this."""
    batch_size: int = 8
    """Traces per forward pass of the re-encoding."""

    def __post_init__(self) -> None:
        if self.layer < 0 or self.batch_size < 1:
            raise ValueError(f"MeasureConfig needs layer >= 0 and batch_size >= 1, got {self.layer}, {self.batch_size}")
        if self.stream not in ("unsteered", "steered"):
            raise ValueError(f"MeasureConfig.stream must be 'unsteered' or 'steered', got {self.stream!r}")
        if not math.isfinite(self.threshold) or self.threshold < 0:
            raise ValueError(f"MeasureConfig.threshold must be finite and >= 0, got {self.threshold}")


class MeasureResult(NamedTuple):
    run: Path
    n_traces: int
    files: list[Path]


def records_file(run_dir: Path) -> Path:
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{shorten(run_dir)}: no such run directory (measure a finished steer or controls run)")
    for name in RECORD_FILES:
        if (run_dir / name).is_file():
            return run_dir / name
    raise FileNotFoundError(f"{run_dir}: no {' or '.join(RECORD_FILES)} (measure a finished steer or controls run)")


def _done_keys(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    truncate_torn_tail(path)
    return {d["key"] for d in read_jsonl(path)}


def _token_ids(tokenizer: Tokenizer, records: Sequence[SweepRecord]) -> tuple[list[list[int]], list[list[int]]]:
    prompts, completions = [], []
    for r in records:
        style = r.settings.get("prompt_style", "tinyzero")
        prompts.append(list(tokenizer(r.prompt, add_special_tokens=adds_special_tokens(style))["input_ids"]))
        completions.append(list(tokenizer(r.completion, add_special_tokens=False)["input_ids"]))
    return prompts, completions


def _coherence_rows(model: CausalLM, tokenizer: Tokenizer, records: Sequence[SweepRecord], cfg: MeasureConfig
                    ) -> list[dict[str, Any]]:
    p_ids, c_ids = _token_ids(tokenizer, records)
    scores = score_traces(model, tokenizer, p_ids, c_ids, cfg.coherence, texts=[r.completion for r in records])
    return [{"key": r.key, **{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                              for k, v in sc._asdict().items()}} for r, sc in zip(records, scores, strict=True)]


def _feature_rows(model: CausalLM, tokenizer: Tokenizer, sae: SparseAutoencoder, records: Sequence[SweepRecord],
                  cfg: MeasureConfig, directions: Mapping[FeatureId, torch.Tensor] | None) -> list[dict[str, Any]]:
    p_ids, c_ids = _token_ids(tokenizer, records)
    keep = [i for i, c in enumerate(c_ids) if c]
    totals: dict[int, SparseTotals] = {}
    if keep:
        if cfg.stream == "steered":
            if directions is None:
                raise ValueError("MeasureConfig.stream='steered' needs the run's directions")
            missing = {r.feature for r in records} - set(directions)
            if missing:
                raise ValueError(f"no direction for feature(s) {sorted(map(str, missing))}")
            # one direction per call: group the kept traces by feature
            for feat in {records[i].feature for i in keep}:
                idx = [i for i in keep if records[i].feature == feat]
                out = trace_feature_totals(model, sae, cfg.layer, [p_ids[i] for i in idx], [c_ids[i] for i in idx],
                                           threshold=cfg.threshold, batch_size=cfg.batch_size, stream="steered",
                                           direction=directions[feat], strengths=[records[i].strength for i in idx])
                totals.update(zip(idx, out, strict=True))
        else:
            out = trace_feature_totals(model, sae, cfg.layer, [p_ids[i] for i in keep], [c_ids[i] for i in keep],
                                       threshold=cfg.threshold, batch_size=cfg.batch_size)
            totals.update(zip(keep, out, strict=True))
    d_sae = next(iter(totals.values())).d_sae if totals else int(_d_sae(sae))
    empty = {"indices": [], "mass": [], "count": [], "n_tokens": 0, "d_sae": d_sae}
    return [{"key": r.key, **(totals[i].to_dict() if i in totals else empty)} for i, r in enumerate(records)]


def _d_sae(sae: SparseAutoencoder | torch.Tensor) -> int:
    w = sae if isinstance(sae, torch.Tensor) else sae.W_dec
    return int(w.shape[0])


def _identity_inputs(source: Path, inputs: Mapping[str, object]) -> dict[str, object]:
    return {"records": {"file": source.name, "sha256": file_digest(source)}, **inputs}


def check_measure(run: str | Path, config: MeasureConfig, inputs: Mapping[str, object]) -> bool:
    """Everything about a measure that is known before the model loads: ``run`` is a finished steer / controls run
    with records, and its ``measures/`` folder is free and holds no measure made with other settings or inputs
    (claimed, nothing written). True when it holds this measure (a resume)."""
    run = Path(run)
    source = records_file(run)
    require_complete(run, "the measured run")
    return check_identity(run / MEASURES_DIR, STAGE, config, _identity_inputs(source, inputs))


def _check_context(tokenizer: Tokenizer, model: CausalLM, records: Sequence[SweepRecord]) -> None:
    """Refuse (naming the first record and its length) a trace whose prompt + completion exceed the model's context:
    scoring it would read positions the model never saw. Before any scoring, so nothing is half measured."""
    from interp_sot.stages.bounds import context_length

    limit = context_length(model)
    if limit is None or not records:
        return
    prompts, completions = _token_ids(tokenizer, records)
    lengths = [len(p) + len(c) for p, c in zip(prompts, completions, strict=True)]
    bad = [i for i, n in enumerate(lengths) if n > limit]
    if bad:
        r = records[bad[0]]
        raise InterpSotError(f"trace {shorten(r.key, 120)} is {lengths[bad[0]]:,} tokens (prompt + completion), "
                             f"longer than the model's context of {limit:,} tokens ({len(bad)} of {len(records)} "
                             "traces are): it cannot be scored by this model")


def measure_stage(
    model: CausalLM,
    tokenizer: Tokenizer,
    sae: SparseAutoencoder | None,
    run: str | Path,
    config: MeasureConfig,
    *,
    directions: Mapping[FeatureId, torch.Tensor] | None = None,
    inputs: Mapping[str, object] | None = None,
    chunk: int = 32,
    progress: bool = True,
) -> MeasureResult:
    """Measure every trace of the finished run ``run`` that has no measure yet (see the module docstring).

    ``sae``: needed when ``config.diversity``; ``chunk``: traces per appended block (resume granularity).
    ``inputs``: the model's (and SAE's) identity; computed from the objects when not given. A trace longer than the
    model's context is refused before anything is scored.
    """
    from tqdm.auto import tqdm

    run = Path(run)
    if config.diversity and sae is None:
        raise ValueError("MeasureConfig.diversity needs the SAE (or set diversity=False)")
    if inputs is None:
        inputs = object_inputs(model, sae if config.diversity else None)
    check_measure(run, config, inputs)
    source = records_file(run)
    records = [SweepRecord.from_dict(d) for d in read_jsonl(source)]
    out = run / MEASURES_DIR
    resuming = begin_stage(out, STAGE, config, _identity_inputs(source, inputs))
    coh_path, feat_path = run / COHERENCE_FILE, run / FEATURES_FILE
    files = [coh_path, *([feat_path] if config.diversity else [])]
    if resuming and is_complete(out, STAGE):
        return MeasureResult(run, len(records), files)
    _check_context(tokenizer, model, records)
    done_coh = _done_keys(coh_path)
    done_feat = _done_keys(feat_path) if config.diversity else {r.key for r in records}
    todo = [r for r in records if r.key not in done_coh or r.key not in done_feat]
    logger.info("measure %s: %d of %d traces to score", run, len(todo), len(records))
    chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
    with torch.inference_mode():
        for block in tqdm(chunks, desc="measure traces", disable=not progress):
            need_coh = [r for r in block if r.key not in done_coh]
            if need_coh:
                append_jsonl(coh_path, _coherence_rows(model, tokenizer, need_coh, config))
            need_feat = [r for r in block if r.key not in done_feat]
            if need_feat:
                assert sae is not None  # diversity without an SAE is refused above; only diversity leaves need_feat
                append_jsonl(feat_path, _feature_rows(model, tokenizer, sae, need_feat, config, directions))
    for path in files:  # an empty run: still leave the (empty) sidecars
        path.touch(exist_ok=True)
    finish_stage(out, STAGE, [Path("..") / f.name for f in files], {"traces": len(records)})
    return MeasureResult(run, len(records), files)
