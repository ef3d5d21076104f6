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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from interp_sot.experiments.records import FeatureId, RowSpec, SweepRecord, direction_fingerprint
from interp_sot.io import append_jsonl, read_jsonl, truncate_torn_tail
from interp_sot.steering.hook import Scope, Site
from interp_sot.tasks.countdown.answers import ANSWER_RULES, AnswerRule
from interp_sot.tasks.countdown.presets import TaskPreset, check_disjoint, get_preset
from interp_sot.tasks.countdown.problems import CountdownProblem
from interp_sot.tasks.countdown.prompts import PromptSpec, PromptStyle, adds_special_tokens, build_prompt
from interp_sot.tasks.countdown.scoring import score_completion

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling settings; the defaults are the paper's temperature and the public reproduction's rest."""

    temperature: float = 0.6
    """Paper: 0.6."""
    top_p: float = 0.95
    """Public reproduction: 0.95 (the paper is silent)."""
    top_k: int = 0
    """0 disables top-k. Set explicitly because transformers otherwise falls back to the model's default (often 50)."""
    max_new_tokens: int = 4096
    """Public reproduction: 4,096."""
    do_sample: bool = True
    """False: greedy decoding (temperature/top_p/top_k ignored); deterministic, used by tests."""
    seed: int = 0
    """Base seed; each batch is seeded from it and its first row's key."""
    stop_strings: tuple[str, ...] = ("</answer>",)
    """Generation of a row stops once it writes one of these (its text is cut right after it)."""

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use do_sample=False for greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if any(not isinstance(s, str) or not s for s in self.stop_strings):
            raise ValueError(f"stop_strings must be non-empty strings, got {self.stop_strings!r}")
        object.__setattr__(self, "stop_strings", tuple(self.stop_strings))


@dataclass(frozen=True)
class SweepConfig:
    """Where and how to steer, prompt and score (everything but the rows themselves)."""

    layer: int
    """Decoder layer whose residual stream is steered (paper: 15, i.e. sae-lens ``blocks.15.hook_resid_post``)."""
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    site: Site = "resid_post"
    """``"resid_post"`` (output of ``layer``) or ``"resid_pre"`` (its input)."""
    scope: Scope = "all"
    """``"all"`` steers prompt and generated tokens (the paper: "every generation step"); ``"generated"`` only new ones."""
    layers_path: str | None = None
    """Dotted path of the decoder layer list for architectures ``steer`` does not recognise."""
    prompt_style: PromptStyle = "tinyzero"
    """``"tinyzero"`` (TinyZero's base prompt), ``"chat"`` (the tokenizer's chat template) or ``"fewshot"``
    (``shots`` then the question; ``tasks.countdown.presets``)."""
    shots: tuple[CountdownProblem, ...] = ()
    """Few-shot examples of the ``fewshot`` style; never among the problems run (checked before generating)."""
    question_template: str | None = None
    """The prompting arm's instruction: text with a ``{problem}`` field that replaces each question (None: none)."""
    batch_size: int = 16
    """Rows per ``generate`` call (mix of strengths/features/problems)."""
    boxed_fallback: bool = False
    """Score the last ``\\boxed{}`` when no ``<answer>`` tag exists (the public reproduction did)."""
    answer_rule: AnswerRule = "last_tag"
    """Answer extraction: ``"last_tag"`` (last complete ``<answer>`` anywhere) or ``"tinyzero"`` (TinyZero's rule:
    last ``<answer>`` on the completion's last line). Part of every record's settings: it decides ``correct``."""

    def __post_init__(self) -> None:
        if self.layer < 0:
            raise ValueError(f"layer must be >= 0, got {self.layer}")
        object.__setattr__(self, "shots", tuple(self.shots))
        PromptSpec(self.prompt_style, self.shots, self.question_template)  # validates the three together
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.answer_rule not in ANSWER_RULES:
            raise ValueError(f"answer_rule must be one of {ANSWER_RULES}, got {self.answer_rule!r}")

    @classmethod
    def for_task(cls, task: TaskPreset | str, **fields: Any) -> SweepConfig:
        """A config asking and scoring ``task`` (a preset or its name): its prompt style, shots, answer rule and stop
        strings; ``fields`` give the rest (``layer``, ``generation``, ``batch_size`` ...). The preset's stop strings
        replace the generation's."""
        from dataclasses import replace

        preset = get_preset(task) if isinstance(task, str) else task
        generation = replace(fields.pop("generation", GenerationSettings()), stop_strings=preset.stop_strings)
        return cls(generation=generation, prompt_style=preset.prompt_style, answer_rule=preset.answer_rule,
                   shots=preset.shots, **fields)

    @property
    def prompt_spec(self) -> PromptSpec:
        """What builds this sweep's prompts (``build_prompt`` accepts it as the style)."""
        return PromptSpec(self.prompt_style, self.shots, self.question_template)

    def settings(self) -> dict[str, Any]:
        """What every record stores and a resumed run must match (``batch_size`` is stored separately)."""
        d = asdict(self)
        d.pop("batch_size")
        d["generation"]["stop_strings"] = list(self.generation.stop_strings)
        d["shots"] = [shot.to_dict() for shot in self.shots]  # JSON's form, so a resumed run compares equal
        return d


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


def _generation_config(model: Any, tokenizer: Any, g: GenerationSettings) -> Any:
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


def _finish(tokenizer: Any, row: list[int], end_ids: set[int], stops: Sequence[str]) -> tuple[str, int, str]:
    """(completion, n_new_tokens, finish_reason) of one generated row (padding after its end ignored)."""
    end = next((i for i, t in enumerate(row) if t in end_ids), len(row))
    text = tokenizer.decode(row[:end], skip_special_tokens=True)
    cuts = [(i + len(s)) for s in stops if (i := text.find(s)) >= 0]
    if cuts:
        return text[: min(cuts)], end, "stop"
    if end < len(row):
        return text, end + 1, "eos"
    return text, len(row), "length"


def generate_batch(
    model: Any,
    tokenizer: Any,
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
    enc = {k: v.to(device) for k, v in enc.items()}
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
    model: Any,
    tokenizer: Any,
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
    model: Any,
    tokenizer: Any,
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
