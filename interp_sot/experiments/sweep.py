"""Steering sweeps on Countdown: many (feature, strength, problem) rows per ``generate`` call, resumable.

Rows are ordered problem-major (all strengths and features of a problem next to each other), so a batch holds
prompts of the same length (little padding) and every strength of a problem is sampled side by side. Each row
gets its own direction and strength through one steering hook (``steer`` with ``[B, d_model]`` directions and a
``[B]`` strength vector), so a whole sweep costs what unsteered batched generation costs.

Resuming: every finished batch is appended to a JSONL log (one fsynced write). A rerun with the same settings
skips the rows already there; batches are always formed on the original boundaries (a batch cut short by a torn
last line is generated again in full and only its missing rows are kept), and each batch is seeded from its first
row's key, so a resumed run reproduces the uninterrupted one (bitwise on the same hardware). A logged row whose
problem numbers or direction differ from the row asked for is an error. The ``steer``/``controls`` stages also
refuse a changed ``batch_size`` (it changes which rows share a batch, hence the sampled traces).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_sot.experiments.records import FeatureId, RowSpec, SweepRecord, direction_fingerprint
from interp_sot.experiments.settings import GenerationSettings, SweepConfig
from interp_sot.io import append_jsonl, read_jsonl, truncate_torn_tail
from interp_sot.protocols import decode_text
from interp_sot.tasks.countdown.presets import check_disjoint
from interp_sot.tasks.countdown.problems import CountdownProblem
from interp_sot.tasks.countdown.prompts import adds_special_tokens, build_prompt
from interp_sot.tasks.countdown.scoring import score_completion

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM, Tokenizer

logger = logging.getLogger(__name__)


def sweep_rows(
    problems: Sequence[CountdownProblem], features: Sequence[FeatureId], strengths: Sequence[float]
) -> list[RowSpec]:
    """The full grid, problem-major: for each problem, each feature, each strength."""
    if not problems or not features or not strengths:
        raise ValueError("a sweep needs at least one problem, one feature and one strength")
    for name, seq in (("features", features), ("strengths", [float(s) for s in strengths])):
        if len(set(seq)) != len(seq):
            raise ValueError(f"{name} contain duplicates: {list(seq)}")
    ids = [p.problem_id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError("problem ids are not unique; sweep rows are keyed on them")
    return [RowSpec(f, float(s), p) for p in problems for f in features for s in strengths]


def _batch_seed(seed: int, first_key: str) -> int:
    return int(hashlib.sha256(f"{seed}|{first_key}".encode()).hexdigest()[:8], 16)


def _generation_config(model: CausalLM, tokenizer: Tokenizer, g: GenerationSettings) -> Any:
    from transformers import GenerationConfig

    kwargs: dict[str, Any] = dict(
        do_sample=g.do_sample,
        max_new_tokens=g.max_new_tokens,
        stop_strings=list(g.stop_strings) or None,
        pad_token_id=tokenizer.pad_token_id,
        repetition_penalty=1.0,
    )
    if g.do_sample:
        kwargs.update(temperature=g.temperature, top_p=g.top_p, top_k=g.top_k)
    return GenerationConfig(**kwargs)


def _finish(tokenizer: Tokenizer, row: list[int], end_ids: set[int], stops: Sequence[str]) -> tuple[str, int, str]:
    """(completion, n_new_tokens, finish_reason) of one generated row (padding after its end ignored)."""
    end = next((i for i, t in enumerate(row) if t in end_ids), len(row))
    text = decode_text(tokenizer, row[:end], skip_special_tokens=True)
    cuts = [(i + len(s)) for s in stops if (i := text.find(s)) >= 0]
    if cuts:
        return text[: min(cuts)], end, "stop"
    if end < len(row):
        return text, end + 1, "eos"
    return text, len(row), "length"


def generate_batch(
    model: CausalLM,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    directions: Any,
    strengths: Any,
    config: SweepConfig,
    seed: int,
) -> list[tuple[str, int, int, str]]:
    """One steered ``generate`` over ``prompts``; -> (completion, n_prompt_tokens, n_new_tokens, finish_reason).

    directions: [B, d_model]; strengths: [B] (row i is steered by strengths[i] * directions[i]).
    """
    import torch

    from interp_sot.steering import steer

    enc = tokenizer(
        list(prompts),
        return_tensors="pt",
        padding=True,
        padding_side="left",
        add_special_tokens=adds_special_tokens(config.prompt_style),
    )
    device = next(model.parameters()).device
    enc = enc.to(device)
    gen_cfg = _generation_config(model, tokenizer, config.generation)
    torch.manual_seed(seed)
    with (
        torch.inference_mode(),
        steer(
            model,
            config.layer,
            directions,
            strength=strengths,
            site=config.site,
            scope=config.scope,
            layers_path=config.layers_path,
        ),
    ):
        out = model.generate(**enc, generation_config=gen_cfg, tokenizer=tokenizer)
    new = out[:, enc["input_ids"].shape[1] :].tolist()
    eos = model.generation_config.eos_token_id if gen_cfg.eos_token_id is None else gen_cfg.eos_token_id
    end_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    if tokenizer.pad_token_id is not None:
        end_ids.add(int(tokenizer.pad_token_id))
    n_prompt = enc["attention_mask"].sum(dim=1).tolist()
    results = []
    for row, n_p in zip(new, n_prompt, strict=True):
        text, n_new, reason = _finish(tokenizer, row, end_ids, config.generation.stop_strings)
        results.append((text, int(n_p), n_new, reason))
    return results


def _check_resumable(existing: list[dict[str, Any]], settings: dict[str, Any], path: Path) -> None:
    for rec in existing:
        if rec.get("settings") != settings:
            raise ValueError(
                f"{path} holds rows made with different settings ({rec.get('settings')} vs {settings}); "
                "use a new output path or the original settings"
            )


def _check_done_row(rec: SweepRecord, row: RowSpec, sha: str, path: Path | None) -> None:
    """A logged row must be this row: same direction, and the same problem content (not only the same id)."""
    if rec.direction_sha != sha:
        raise ValueError(f"{path}: row {row.key} was made with a different direction for feature {row.feature}")
    if list(rec.nums) != list(row.problem.nums) or rec.target != row.problem.target:
        raise ValueError(
            f"{path}: row {row.key} was made for problem {row.problem.problem_id} = {rec.nums} -> {rec.target}, but "
            f"that problem is now {list(row.problem.nums)} -> {row.problem.target}; the problems changed since "
            "the run started: use a new output path"
        )


def run_rows(
    model: CausalLM,
    tokenizer: Tokenizer,
    rows: Sequence[RowSpec],
    directions: Mapping[FeatureId, Any],
    config: SweepConfig,
    *,
    out_path: str | Path | None = None,
    progress: bool = True,
) -> list[SweepRecord]:
    """Generate, score and (if ``out_path``) log every row not already logged; returns records in ``rows`` order.

    directions: feature -> [d_model] (e.g. ``feature_direction(sae, i, units)``); every row's feature needs one.
    """
    import torch
    from tqdm.auto import tqdm

    keys = [r.key for r in rows]
    check_disjoint(list({r.problem.problem_id: r.problem for r in rows}.values()), config.shots, "few-shot examples")
    if len(set(keys)) != len(keys):
        raise ValueError("rows are not unique (same feature, strength and problem twice)")
    missing = sorted({str(r.feature) for r in rows if r.feature not in directions})
    if missing:
        raise ValueError(f"no direction given for features {missing}")
    dirs = {f: torch.as_tensor(directions[f]).detach().to(torch.float32).cpu() for f in {r.feature for r in rows}}
    bad = [str(f) for f, d in dirs.items() if d.ndim != 1]
    if bad:
        raise ValueError(f"directions must be [d_model] vectors; features {bad} are not")
    shas = {f: direction_fingerprint(d) for f, d in dirs.items()}
    settings = config.settings()

    done: dict[str, SweepRecord] = {}
    path = Path(out_path) if out_path is not None else None
    if path is not None:
        truncate_torn_tail(path)
        existing = read_jsonl(path)
        _check_resumable(existing, settings, path)
        for d in existing:
            rec = SweepRecord.from_dict(d)
            done.setdefault(rec.key, rec)
    for r in rows:
        if r.key in done:
            _check_done_row(done[r.key], r, shas[r.feature], path)
    n_todo = sum(r.key not in done for r in rows)
    logger.info("sweep: %d rows, %d already done, %d to generate", len(rows), len(rows) - n_todo, n_todo)

    # Batches on the original boundaries, so a resumed run (even after a torn last line) samples every row with
    # the batch and seed it had in the uninterrupted run; a partly logged batch is generated again in full and
    # only its missing rows are kept.
    all_batches = [list(rows[i : i + config.batch_size]) for i in range(0, len(rows), config.batch_size)]
    batches = [b for b in all_batches if any(r.key not in done for r in b)]
    for batch in tqdm(batches, desc="sweep batches", disable=not progress):
        seed = _batch_seed(config.generation.seed, batch[0].key)
        prompts = [build_prompt(r.problem, config.prompt_spec, tokenizer) for r in batch]
        direction_rows = torch.stack([dirs[r.feature] for r in batch])
        strengths = torch.tensor([r.strength for r in batch], dtype=torch.float32)
        t0 = time.perf_counter()
        outputs = generate_batch(model, tokenizer, prompts, direction_rows, strengths, config, seed)
        dt = time.perf_counter() - t0
        new_records = []
        for r, prompt, (text, n_p, n_new, reason) in zip(batch, prompts, outputs, strict=True):
            score = score_completion(text, r.problem, boxed_fallback=config.boxed_fallback, rule=config.answer_rule)
            new_records.append(
                SweepRecord(
                    key=r.key,
                    feature=r.feature,
                    group=r.group,
                    strength=r.strength,
                    problem_id=r.problem.problem_id,
                    nums=list(r.problem.nums),
                    target=r.problem.target,
                    prompt=prompt,
                    completion=text,
                    finish_reason=reason,
                    n_prompt_tokens=n_p,
                    n_new_tokens=n_new,
                    answer=score.answer,
                    answer_source=score.source,
                    correct=score.correct,
                    reason=score.reason,
                    direction_sha=shas[r.feature],
                    settings=settings,
                    batch_seed=seed,
                    batch_size=config.batch_size,
                    valid_expression=score.valid,
                    abs_error=score.abs_error,
                )
            )
        new_records = [rec for rec in new_records if rec.key not in done]
        if path is not None:
            append_jsonl(path, [rec.to_dict() for rec in new_records])
        for rec in new_records:
            done[rec.key] = rec
        n_tok = sum(o[2] for o in outputs)
        logger.debug("batch of %d rows: %d new tokens in %.2fs (%.1f tok/s)", len(batch), n_tok, dt, n_tok / dt)
    return [done[k] for k in keys]


def run_sweep(
    model: CausalLM,
    tokenizer: Tokenizer,
    problems: Sequence[CountdownProblem],
    directions: Mapping[FeatureId, Any],
    strengths: Sequence[float],
    *,
    config: SweepConfig,
    features: Sequence[FeatureId] | None = None,
    out_path: str | Path | None = None,
    progress: bool = True,
) -> list[SweepRecord]:
    """Every problem under every feature in ``directions`` (or ``features``) at every strength.

    The paper's setting: one direction (feature 30939, layer 15), strengths (-10, -5, 0, 5, 10), 1,024 problems.
    """
    feats = list(directions) if features is None else list(features)
    rows = sweep_rows(problems, feats, strengths)
    return run_rows(model, tokenizer, rows, directions, config, out_path=out_path, progress=progress)
