"""Flags and input loading shared by ``interp-sot steer`` and ``interp-sot controls``: model and direction
flags, problem and sampling flags, and turning them into the objects and configs the stages take; and the
``--plan`` flags (also used by ``interp-sot stats``): print the time/memory plan, or refuse a run that cannot fit."""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from interp_sot.errors import FlagError, InterpSotError, shorten
from interp_sot.tasks.countdown.answers import ANSWER_RULES
from interp_sot.tasks.countdown.loader import TINYZERO_SPLITS
from interp_sot.tasks.countdown.presets import PRESETS
from interp_sot.tasks.countdown.prompts import PROMPT_STYLES

DTYPES = ("auto", "float32", "bfloat16", "float16")
HEADROOM = 0.1
"""Share of the device memory a plan keeps free for the allocator and kernels."""
UNITS = ("unit", "sae", "max_act", "resid")
"""Strength units (``steering.strength_units``; listed here so that ``--help`` never imports torch)."""


@contextlib.contextmanager
def bad_input(what: str) -> Iterator[None]:
    """Turn a ``ValueError`` raised while a command reads what the user named (a flag's file, a config built from
    flags) into an :class:`InterpSotError` prefixed by ``what``: there it can only mean bad input. Used around input
    reading alone, never around the work itself, where a ``ValueError`` is a bug and keeps its traceback."""
    try:
        yield
    except InterpSotError:
        raise
    except ValueError as err:
        raise InterpSotError(f"{what}: {err}" if what else str(err)) from err


def parse_floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise FlagError(f"{flag}: {shorten(err)}") from err
    if not values:
        raise FlagError(f"{flag}: give at least one value")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise FlagError(f"{flag}: values must be finite numbers, got {shorten(bad)}")
    if len(set(values)) != len(values):
        raise FlagError(f"{flag}: values are listed twice: {shorten(values)}")
    return values


def parse_strengths(args: argparse.Namespace, flag: str = "--strengths") -> list[float]:
    """``--strengths`` as numbers, or ``auto:N``: N strengths (0 included) over the coherent range that a finished
    ``interp-sot dose`` run (``--dose DIR``) measured; ``--units`` defaults to that run's units."""
    text = str(args.strengths).strip()
    if not text.startswith("auto:"):
        return parse_floats(text, flag)
    try:
        n = int(text.removeprefix("auto:"))
    except ValueError as err:
        raise FlagError(f"{flag}: 'auto:N' needs an integer N, got {text!r}") from err
    if not getattr(args, "dose", None):
        raise FlagError(f"{flag} {text} needs --dose DIR (a finished `interp-sot dose` run of the feature)")
    from interp_sot.stages.dose import dose_strengths, read_dose

    with bad_input(f"--dose {shorten(args.dose)}"):
        dose = read_dose(args.dose)
        if args.units is None:
            args.units = dose.units
        features = [x for x in str(getattr(args, "features", "") or "").split(",") if x.strip()]
        return dose_strengths(dose, n, args.units, feature=int(features[0]) if len(features) == 1 else None)


def check_dose_held_out(args: argparse.Namespace, problems: list[Any]) -> None:
    """With ``--dose DIR``: refuse evaluation problems the dose run was tuned on (same id or same task)."""
    if not getattr(args, "dose", None):
        return
    from interp_sot.experiments.dose import check_held_out
    from interp_sot.stages.dose import read_dose

    with bad_input(f"--dose {shorten(args.dose)}"):
        check_held_out(read_dose(args.dose), problems)


def check_stats_flag(args: argparse.Namespace, units: str | None) -> None:
    """With ``--units max_act``: ``--stats`` names a finished stats folder (checked before anything loads)."""
    if units != "max_act":
        return
    if not args.stats:
        raise FlagError("--units max_act needs --stats DIR (the screening statistics: each feature's max activation)")
    from interp_sot.features.stats import STATS_FILE
    from interp_sot.stages.rundir import require_complete

    folder = Path(args.stats).expanduser()
    if not (folder / STATS_FILE).is_file():
        raise InterpSotError(f"--stats {shorten(args.stats)}: no {STATS_FILE} there (give the folder of a finished "
                             "`interp-sot stats` run)")
    require_complete(folder, "--stats")


def load_feature_stats(args: argparse.Namespace) -> Any:
    """``FeatureStats`` from ``--stats`` (max activations for ``--units max_act``)."""
    check_stats_flag(args, "max_act")
    from interp_sot.features.stats import FeatureStats

    with bad_input(f"--stats {shorten(args.stats)}"):
        return FeatureStats.load(Path(args.stats))


def scaled_directions(args: argparse.Namespace, sae: Any, model: Any, tokenizer: Any, problems: list[Any],
                      features: list[int], units: str) -> tuple[dict[Any, Any], dict[int, Any]]:
    """Directions per unit of s in ``units`` and their ``StrengthScale``s, judged against the median residual
    norm at ``--layer`` on the run's first prompts (what every run records about its strengths)."""
    from interp_sot.stages.strengths import directions_of, feature_scales, residual_norm, run_prompts

    if units not in UNITS:
        raise FlagError(f"--units: {units!r} is not one of {', '.join(UNITS)}")
    stats = load_feature_stats(args) if units == "max_act" else None
    r = residual_norm(model, tokenizer, run_prompts(problems, prompt_spec(args), tokenizer), args.layer)
    with bad_input("--features"):
        scales = feature_scales(sae, features, units, residual=r, stats=stats)  # type: ignore[arg-type]
    return directions_of(scales), scales


def check_features(args: argparse.Namespace, sae: Any, features: list[int], units: str) -> None:
    """Refuse a feature the SAE lacks (or with an all-zero decoder row, or no max activation in ``--stats``) right
    after the SAE loads, before the model does (the residual norm is only a scale here)."""
    from interp_sot.stages.strengths import feature_scales

    stats = load_feature_stats(args) if units == "max_act" else None
    with bad_input("--features"):
        feature_scales(sae, features, units, residual=1.0, stats=stats)  # type: ignore[arg-type]


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and directions")
    g.add_argument("--model", default="smollm2", help="hub id, local folder, or 'smollm2' (offline)")
    g.add_argument("--dtype", choices=DTYPES, default="auto", help="weights dtype (bfloat16 on GPU)")
    g.add_argument("--device", default=None,
                   help="e.g. cuda, cuda:0, cpu (default: where the model loads); under torchrun cuda = cuda:LOCAL_RANK")
    g.add_argument("--layer", type=int, required=True, help="decoder layer to steer (paper: 15)")
    g.add_argument("--allow-layer-mismatch", action="store_true",
                   help="steer --layer with an SAE whose config names another layer's hook")
    g.add_argument("--site", choices=["resid_post", "resid_pre"], default="resid_post")
    g.add_argument("--scope", choices=["all", "generated"], default="all", help="steer prompt too, or only new tokens")
    g.add_argument("--layers-path", default=None, help="dotted path of the decoder layers for unknown architectures")
    g.add_argument("--sae-release", default=None, help="sae-lens release (paper: llama_scope_r1_distill)")
    g.add_argument("--sae-id", default=None, help="sae-lens SAE id (paper: l15r_800m_slimpajama)")
    g.add_argument("--sae-path", default=None, help="local sae-lens SAE folder (SAE.load_from_disk)")
    g.add_argument("--decoder", default=None, help="decoder matrix W_dec [d_sae, d_model] (.safetensors/.pt/.npy)")
    g.add_argument(
        "--units",
        "--norm",
        dest="units",
        choices=list(UNITS),
        default=None,
        help="strength units: 'unit' = norm of the added vector, 'sae' = SAE activation units, 'max_act' = "
        "multiples of the feature's max activation (needs --stats), 'resid' = share of the median residual norm "
        "on the run's prompts (default: unit for steer, sae for controls; --norm is the old name)",
    )
    g.add_argument("--stats", default=None, help="stats folder (`interp-sot stats`): max activations for --units max_act")


def add_generation_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("problems, prompting and sampling")
    g.add_argument(
        "--problems",
        default="generate",
        help="'generate' (seeded generator), a .jsonl/.json/.parquet/.csv file, or an HF dataset id",
    )
    g.add_argument("--split", default="train", help="dataset split for an HF dataset id")
    g.add_argument("--tinyzero-split", choices=TINYZERO_SPLITS, default=None,
                   help="TinyZero's train or test set of the dataset's train split ('test': rows 327,680-328,703, "
                   "the paper's 1,024 problems)")
    g.add_argument("--n-problems", type=int, default=1024, help="problems drawn (seeded) from the source")
    g.add_argument("--problem-seed", type=int, default=0)
    g.add_argument("--task", choices=sorted(PRESETS), default="paper",
                   help="task preset (interp_sot.tasks.countdown.presets): its problem generator, prompt style and "
                   "shots, answer rule and stop strings. 'paper': the paper's Countdown; 'arith2': two numbers 1-9 "
                   "with a few-shot prompt a 135M model can solve. --prompt-style/--stop/--scorer override it")
    g.add_argument("--prompt-style", choices=PROMPT_STYLES, default=None,
                   help="default: the task's ('fewshot' needs a task with shots)")
    g.add_argument("--question-template", default=None, metavar="FILE",
                   help="prompting arm: a text file with a {problem} placeholder that replaces each question "
                   "(e.g. interp_sot/data/prompts/society_of_thought.txt); part of the run identity")
    g.add_argument("--temperature", type=float, default=0.6)
    g.add_argument("--top-p", type=float, default=0.95)
    g.add_argument("--top-k", type=int, default=0, help="0 disables top-k")
    g.add_argument("--max-new-tokens", type=int, default=4096)
    g.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--stop", default=None, help="stop string ('' for none; default: the task's)")
    g.add_argument("--batch-size", type=int, default=16, help="rows per generate call")
    g.add_argument("--boxed-fallback", action="store_true", help="score \\boxed{} when no <answer> tag exists")
    g.add_argument("--scorer", choices=ANSWER_RULES, default=None,
                   help="answer extraction (default: the task's): 'last_tag' (last complete <answer> anywhere), "
                   "'tinyzero' (TinyZero's rule: the last <answer> on the completion's last line) or 'answer_line' "
                   "(the text after the last 'Answer:')")
    g.add_argument("--perspectives", action="store_true",
                   help="with --judge: also analyse each trace's perspectives (BFI-10, expertise)")
    g.add_argument("--prompt-file", action="append", default=[], metavar="KIND=PATH",
                   help="with --judge: replace a judge prompt by a text file (repeatable); KIND: "
                        "behaviours_conversational, behaviours_bales_ipa, behaviours_cognitive, perspectives")
    g.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    g.add_argument("--no-report", action="store_true")
    g.add_argument("--no-measure", action="store_true",
                   help="skip the measure stage before the report (coherence of every trace, and SAE diversity when "
                        "the directions come from an SAE; `interp-sot measure` runs it later)")
    g.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for the report")


def load_problems(args: argparse.Namespace) -> list[Any]:
    from interp_sot.tasks.countdown import load_tinyzero, sample_problems
    from interp_sot.tasks.countdown.presets import get_preset

    if args.n_problems < 1:
        raise FlagError("--n-problems must be >= 1")
    if args.problems == "generate":
        if args.tinyzero_split is not None:
            raise FlagError("--tinyzero-split selects rows of a Countdown dataset: give --problems "
                             "Jiayi-Pan/Countdown-Tasks-3to4 (or a file holding its train split)")
        return get_preset(args.task).problems(args.n_problems, seed=args.problem_seed)
    with bad_input(f"--problems {shorten(args.problems)}"):
        pool = load_tinyzero(args.problems, split=args.split, tinyzero_split=args.tinyzero_split)
    return sample_problems(pool, min(args.n_problems, len(pool)), seed=args.problem_seed)


def check_sae_flags(args: argparse.Namespace) -> None:
    """Exactly one SAE source, and a local one that exists (checked before anything loads)."""
    sources = [x for x in (args.sae_release, args.sae_path, args.decoder) if x]
    if len(sources) != 1 or (args.sae_release and not args.sae_id):
        raise FlagError("name the SAE once: --sae-release with --sae-id, --sae-path, or --decoder")
    for flag, value in (("--sae-path", args.sae_path), ("--decoder", args.decoder)):
        if value and not Path(value).expanduser().exists():
            raise FileNotFoundError(f"{flag} {shorten(value)}: no such file or folder")


def load_decoder(args: argparse.Namespace) -> Any:
    """W_dec [d_sae, d_model] or an SAE object, from whichever source the flags name (exactly one)."""
    check_sae_flags(args)
    if args.decoder:
        from interp_sot.steering import load_direction

        with bad_input(f"--decoder {shorten(args.decoder)}"):
            w = load_direction(args.decoder)
        if w.ndim != 2:
            raise FlagError(f"--decoder {args.decoder}: expected [d_sae, d_model], got shape {tuple(w.shape)}")
        return w
    from interp_sot.features.sae import check_sae_layer, load_sae

    with bad_input("--sae-path" if args.sae_path else "--sae-release"):
        sae = load_sae(Path(args.sae_path)) if args.sae_path else load_sae(args.sae_release, args.sae_id)
        check_sae_layer(sae, args.layer, allow_mismatch=args.allow_layer_mismatch)
    return sae


def load_run_model(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from interp_sot.experiments.sharding import rank_device
    from interp_sot.models import load_model

    dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
    with bad_input("--device"):
        device = rank_device(args.device)  # under torchrun, --device cuda is cuda:LOCAL_RANK
    try:
        return load_model(args.model, dtype=dtype, device=device)
    except OSError as err:
        raise model_not_found(args.model, err) from err


@functools.cache
def _config_and_tokenizer(name: str) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoTokenizer

    from interp_sot.models import model_source

    try:
        source = model_source(name)
        return AutoConfig.from_pretrained(source), AutoTokenizer.from_pretrained(source)
    except OSError as err:
        raise model_not_found(name, err) from err


def model_config_and_tokenizer(args: argparse.Namespace) -> tuple[Any, Any]:
    """``--model``'s config and tokenizer, read without its weights (milliseconds, where the weights take minutes):
    what the checks that need the model's size run on before anything heavy loads."""
    return _config_and_tokenizer(str(args.model))


def check_prompt_context(args: argparse.Namespace, problems: list[Any]) -> int:
    """Refuse a problem whose prompt does not fit ``--model``'s context (naming its id and token count) from the
    config and tokenizer alone; the longest prompt in tokens."""
    from interp_sot.stages.bounds import check_prompts_fit, context_length

    config, tokenizer = model_config_and_tokenizer(args)
    return check_prompts_fit(problems, prompt_spec(args), tokenizer, context_length(config))


def coding_config(args: argparse.Namespace) -> Any:
    """LLM behaviour coding from --judge/--schemes (None without --judge); checked before any generation."""
    if not args.judge:
        if args.perspectives or args.prompt_file:
            raise FlagError("--perspectives and --prompt-file need --judge (an LLM judge reads the traces)")
        return None
    from interp_sot.judging.prompts.files import load_prompt_files
    from interp_sot.stages.steer import CODING_PROMPTS, CodingConfig

    try:
        prompts = tuple(load_prompt_files(args.prompt_file, CODING_PROMPTS).values())
    except ValueError as err:
        raise FlagError(f"--prompt-file: {err}") from err
    try:
        return CodingConfig(args.judge, tuple(args.schemes.split(",")), perspectives=args.perspectives,
                            prompts=prompts)
    except ValueError as err:
        raise FlagError(f"--judge/--schemes: {err}") from err


def report_config(args: argparse.Namespace) -> Any:
    from interp_sot.stages.report import ReportConfig

    try:
        import matplotlib  # noqa: F401

        plot = True
    except ImportError:
        print("matplotlib not installed: report without plot (pip install 'interp-sot[plot]')")
        plot = False
    return ReportConfig(n_boot=args.n_boot, plot=plot)


def measure_inputs(args: argparse.Namespace, with_sae: bool) -> dict[str, Any]:
    """The measure stage's input identity (model, and the SAE when it re-encodes traces), for every command."""
    from interp_sot.stages.identity import model_identity, sae_identity

    sae = sae_identity(args.sae_path or args.sae_release, args.sae_id) if with_sae else None
    return {"model": model_identity(args.model), "sae": sae}


def measure_and_report(args: argparse.Namespace, model: Any, tokenizer: Any, sae: Any, result: Any) -> None:
    """The end of ``steer`` / ``controls``: measure every trace of the finished run (coherence; SAE re-encoding too
    when ``sae`` is an SAE, not a bare decoder matrix) so the report shows coherence by strength, then the report.
    ``--no-measure`` skips the first, ``--no-report`` both."""
    if args.no_report:
        return
    from interp_sot.stages.measure import MeasureConfig, measure_stage
    from interp_sot.stages.report import report_stage

    if not args.no_measure:  # a refused or failing measure is an error (exit 2), never a warning
        has_sae = sae is not None and hasattr(sae, "encode")
        try:
            measure_stage(model, tokenizer, sae if has_sae else None, result.out,
                          MeasureConfig(layer=args.layer, diversity=has_sae), inputs=measure_inputs(args, has_sae))
        except InterpSotError as err:
            raise InterpSotError(f"the run's records are complete, but measuring its traces failed: {err} (rerun with "
                                 "--no-measure for a report without coherence)") from err
    files = report_stage(result.records, report_config(args), result.out / "report", codings=result.codings,
                         run_dir=result.out)
    print(files.summary.read_text())
    print(f"report: {files.summary.parent}")


def sweep_config(args: argparse.Namespace) -> Any:
    with bad_input(""):  # the configs check the sampling and batching flags
        return _sweep_config(args)


def _sweep_config(args: argparse.Namespace) -> Any:
    """The task preset's sweep config with every flag the user gave on top of it."""
    from dataclasses import replace

    from interp_sot.experiments import GenerationSettings, SweepConfig

    base = SweepConfig.for_task(args.task, layer=args.layer)
    stops = base.generation.stop_strings if args.stop is None else ((args.stop,) if args.stop else ())
    gen = GenerationSettings(
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        max_new_tokens=args.max_new_tokens,
        do_sample=not args.greedy,
        seed=args.seed,
        stop_strings=stops,
    )
    return replace(
        base,
        generation=gen,
        site=args.site,
        scope=args.scope,
        layers_path=args.layers_path,
        prompt_style=args.prompt_style or base.prompt_style,
        batch_size=args.batch_size,
        boxed_fallback=args.boxed_fallback,
        answer_rule=args.scorer or base.answer_rule,
        question_template=question_template(args),
    )


def question_template(args: argparse.Namespace) -> str | None:
    """The text of ``--question-template`` (checked for its ``{problem}`` placeholder), or None."""
    from interp_sot.tasks.countdown.prompts import read_question_template

    if args.question_template is None:
        return None
    with bad_input("--question-template"):
        return read_question_template(args.question_template)


def prompt_spec(args: argparse.Namespace) -> Any:
    """What builds this run's prompts (the same ``PromptSpec`` the sweep uses)."""
    return sweep_config(args).prompt_spec


def add_plan_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("plan (time and memory)")
    g.add_argument("--plan", action="store_true",
                   help="print rows, batches, decode steps and the memory plan, then exit (no weights loaded, "
                   "nothing written)")
    g.add_argument("--device-memory-gib", type=float, default=None,
                   help="device memory to plan for in GiB, e.g. 80 to plan an H100 run from a laptop (default: "
                   "CUDA's free memory; not checked on CPU/MPS); 10%% is kept free")


def model_not_found(name: str, err: OSError) -> FileNotFoundError:
    """The error for a model transformers could not read (its offline message names neither id nor cache)."""
    from huggingface_hub import constants, is_offline_mode, try_to_load_from_cache

    if isinstance(err, FileNotFoundError):  # already names what is missing (a folder, the SmolLM2 package)
        return err
    if is_offline_mode() and not isinstance(try_to_load_from_cache(name, "config.json"), str):
        return FileNotFoundError(
            f"model {name!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE=1 forbids "
            f"downloading it: run `huggingface-cli download {name}` where the Hub is reachable (same HF_HOME), or "
            "unset HF_HUB_OFFLINE")
    return FileNotFoundError(f"model {name!r} could not be read: {err}")


def model_shape(name: str, dtype: str | None) -> tuple[Any, str]:
    """(ModelShape from the config alone, the weights' dtype name: ``dtype``, or the config's for auto/None)."""
    from transformers import AutoConfig

    from interp_sot.models import model_source
    from interp_sot.plan import ModelShape

    try:
        config = AutoConfig.from_pretrained(model_source(name))
    except OSError as err:
        raise model_not_found(name, err) from err
    if dtype in (None, "auto"):
        dtype = str(getattr(config, "dtype", None) or "float32").removeprefix("torch.")
    return ModelShape.from_config(config), dtype


def device_bytes(args: argparse.Namespace, device: str, resident_bytes: int = 0) -> int | None:
    """Memory a run may plan on: ``--device-memory-gib`` minus the headroom, else CUDA's free memory (plus
    ``resident_bytes`` this run already holds there); None when unknown (CPU, MPS)."""
    from interp_sot.plan import GIB, device_memory

    if args.device_memory_gib is not None:
        if not args.device_memory_gib > 0:
            raise FlagError(f"--device-memory-gib must be > 0, got {args.device_memory_gib}")
        return int(args.device_memory_gib * GIB * (1 - HEADROOM))
    return device_memory(device, headroom=HEADROOM, resident_bytes=resident_bytes)


def max_prompt_tokens(problems: list[Any], style: Any, tokenizer: Any) -> int:
    """The longest prompt in tokens, exactly as the sweep tokenizes it (``style``: a style name or PromptSpec)."""
    from interp_sot.stages.bounds import prompt_lengths

    return max(prompt_lengths(problems, style, tokenizer))


def plan_generation_run(args: argparse.Namespace, rows: int, problems: list[Any]) -> bool:
    """With ``--plan``: print the plan of generating ``rows`` completions and return True (the command then exits).
    Otherwise raise PlanError when a batch cannot fit the device memory, before any weights are loaded or anything
    is written (so the rerun with the suggested ``--batch-size`` starts clean); False when the run may go on."""
    from interp_sot.plan import plan_generation

    available = device_bytes(args, args.device or "cpu")
    if not args.plan and available is None:
        return False  # nothing to check against
    from transformers import AutoTokenizer

    from interp_sot.models import model_source

    shape, dtype = model_shape(args.model, args.dtype)
    tokenizer = AutoTokenizer.from_pretrained(model_source(args.model))
    prompt = max_prompt_tokens(problems, prompt_spec(args), tokenizer)
    plan = plan_generation(shape, rows=rows, batch_size=args.batch_size, prompt_tokens=prompt,
                           max_new_tokens=args.max_new_tokens, dtype=dtype, device_bytes=available)
    return show_or_require_fit(args, plan, f"{args.model} ({shape.n_params:,} parameters, {dtype}), prompts up to "
                               f"{prompt:,} tokens")


def show_or_require_fit(args: argparse.Namespace, plan: Any, what: str) -> bool:
    """``--plan``: print ``what`` and the plan, True (the command exits 0); else PlanError if it cannot fit, False."""
    from interp_sot.plan import require_fit

    if args.plan:
        print(f"plan: {what}")
        print(plan.describe())
        return True
    require_fit(plan)
    return False
