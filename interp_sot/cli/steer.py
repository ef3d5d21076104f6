"""``interp-sot steer``: the Countdown steering sweep (the paper's causal result), resumable, with its report.

Paper setting (one H100): ``interp-sot steer --model deepseek-ai/DeepSeek-R1-Distill-Llama-8B --dtype bfloat16
--sae-release llama_scope_r1_distill --sae-id l15r_800m_slimpajama --features 30939 --layer 15
--strengths=-10,-5,0,5,10 --n-problems 1024 --problems Jiayi-Pan/Countdown-Tasks-3to4 --prompt-style chat
--out runs/steer30939``. The run directory holds ``sweep.jsonl`` (every trace with its settings; rerun the same
command to resume), ``problems.jsonl`` and ``report/``.

The helpers here (model/SAE/problem loading, shared flags) are reused by ``interp-sot controls``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16", "float16")


def parse_floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise SystemExit(f"{flag}: {err}") from err
    if not values:
        raise SystemExit(f"{flag}: give at least one value")
    return values


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and directions")
    g.add_argument("--model", default="smollm2", help="hub id, local folder, or 'smollm2' (offline)")
    g.add_argument("--dtype", choices=DTYPES, default="auto", help="weights dtype (bfloat16 on GPU)")
    g.add_argument("--device", default=None, help="e.g. cuda, cuda:0, cpu (default: where the model loads)")
    g.add_argument("--layer", type=int, required=True, help="decoder layer to steer (paper: 15)")
    g.add_argument("--site", choices=["resid_post", "resid_pre"], default="resid_post")
    g.add_argument("--scope", choices=["all", "generated"], default="all", help="steer prompt too, or only new tokens")
    g.add_argument("--layers-path", default=None, help="dotted path of the decoder layers for unknown architectures")
    g.add_argument("--sae-release", default=None, help="sae-lens release (paper: llama_scope_r1_distill)")
    g.add_argument("--sae-id", default=None, help="sae-lens SAE id (paper: l15r_800m_slimpajama)")
    g.add_argument("--sae-path", default=None, help="local sae-lens SAE folder (SAE.load_from_disk)")
    g.add_argument("--decoder", default=None, help="decoder matrix W_dec [d_sae, d_model] (.safetensors/.pt/.npy)")
    g.add_argument(
        "--norm",
        choices=["unit", "sae"],
        default=None,
        help="strength units: 'unit' = norm of the added vector, 'sae' = SAE activation units "
        "(default: unit for steer, sae for controls)",
    )


def add_generation_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("problems, prompting and sampling")
    g.add_argument(
        "--problems",
        default="generate",
        help="'generate' (seeded generator), a .jsonl/.json/.parquet/.csv file, or an HF dataset id",
    )
    g.add_argument("--split", default="train", help="dataset split for an HF dataset id")
    g.add_argument("--n-problems", type=int, default=1024, help="problems drawn (seeded) from the source")
    g.add_argument("--problem-seed", type=int, default=0)
    g.add_argument("--prompt-style", choices=["tinyzero", "chat"], default="tinyzero")
    g.add_argument("--temperature", type=float, default=0.6)
    g.add_argument("--top-p", type=float, default=0.95)
    g.add_argument("--top-k", type=int, default=0, help="0 disables top-k")
    g.add_argument("--max-new-tokens", type=int, default=4096)
    g.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--stop", default="</answer>", help="stop string ('' for none)")
    g.add_argument("--batch-size", type=int, default=16, help="rows per generate call")
    g.add_argument("--boxed-fallback", action="store_true", help="score \\boxed{} when no <answer> tag exists")
    g.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    g.add_argument("--no-report", action="store_true")
    g.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for the report")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("steer", help="Countdown steering sweep over features x strengths x problems")
    add_model_args(p)
    p.add_argument("--features", default=None, help="comma-separated SAE feature ids (paper: 30939)")
    p.add_argument("--direction", default=None, help="a custom direction file [d_model] instead of SAE features")
    p.add_argument("--strengths", default="-10,-5,0,5,10", help="comma-separated strengths (use --strengths=-10,...)")
    p.add_argument("--judge", default=None, help="judge spec for behaviour coding (e.g. openai:MODEL@URL)")
    p.add_argument("--schemes", default="conversational,bales,cognitive", help="behaviour coding schemes")
    add_generation_args(p)
    p.set_defaults(run=run)


def load_problems(args: argparse.Namespace) -> list[Any]:
    from interp_sot.tasks.countdown import generate_problems, load_tinyzero, sample_problems

    if args.n_problems < 1:
        raise SystemExit("--n-problems must be >= 1")
    if args.problems == "generate":
        return generate_problems(args.n_problems, seed=args.problem_seed)
    pool = load_tinyzero(args.problems, split=args.split)
    return sample_problems(pool, min(args.n_problems, len(pool)), seed=args.problem_seed)


def load_decoder(args: argparse.Namespace) -> Any:
    """W_dec [d_sae, d_model] or an SAE object, from whichever source the flags name (exactly one)."""
    sources = [x for x in (args.sae_release, args.sae_path, args.decoder) if x]
    if len(sources) != 1 or (args.sae_release and not args.sae_id):
        raise SystemExit("name the SAE once: --sae-release with --sae-id, --sae-path, or --decoder")
    if args.decoder:
        from interp_sot.steering import load_direction

        w = load_direction(args.decoder)
        if w.ndim != 2:
            raise SystemExit(f"--decoder {args.decoder}: expected [d_sae, d_model], got shape {tuple(w.shape)}")
        return w
    from interp_sot.features.sae import load_sae

    if args.sae_path:
        return load_sae(Path(args.sae_path))
    return load_sae(args.sae_release, args.sae_id)


def feature_directions(args: argparse.Namespace, features: list[int], norm: str) -> dict[Any, Any]:
    from interp_sot.steering import feature_direction

    decoder = load_decoder(args)
    table = feature_direction(decoder, list(features), norm=norm)  # type: ignore[arg-type]
    return {f: table[i] for i, f in enumerate(features)}


def load_run_model(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from interp_sot.models import load_model

    dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
    return load_model(args.model, dtype=dtype, device=args.device)


def sweep_config(args: argparse.Namespace) -> Any:
    from interp_sot.experiments import GenerationSettings, SweepConfig

    gen = GenerationSettings(
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        max_new_tokens=args.max_new_tokens,
        do_sample=not args.greedy,
        seed=args.seed,
        stop_strings=(args.stop,) if args.stop else (),
    )
    return SweepConfig(
        layer=args.layer,
        generation=gen,
        site=args.site,
        scope=args.scope,
        layers_path=args.layers_path,
        prompt_style=args.prompt_style,
        batch_size=args.batch_size,
        boxed_fallback=args.boxed_fallback,
    )


def save_problems(problems: list[Any], out: Path) -> None:
    import json

    from interp_sot.io import atomic_write_text

    atomic_write_text(out / "problems.jsonl", "".join(json.dumps(p.to_dict()) + "\n" for p in problems))


def make_behaviour_judge(args: argparse.Namespace) -> Any:
    """The judge for behaviour coding (None without ``--judge``), built before any generation so bad specs fail fast."""
    if not args.judge:
        return None
    from interp_sot.behaviours.judge_coding import resolve_scheme
    from interp_sot.judging.spec import make_judge

    for s in args.schemes.split(","):
        if s.strip():
            try:
                resolve_scheme(s.strip())
            except ValueError as err:
                raise SystemExit(f"--schemes: {err}") from err
    if args.judge.strip() in ("labels", "heuristic"):
        raise SystemExit(f"--judge {args.judge!r} cannot code behaviours; use an LLM judge (openai:MODEL@URL, hf:PATH)")
    return make_judge(args.judge)


def code_behaviours(args: argparse.Namespace, judge: Any, records: list[Any], out: Path) -> list[Any] | None:
    if judge is None:
        return None
    from interp_sot.behaviours.judge_coding import TraceToCode, code_traces
    from interp_sot.judging.cache import CachedJudge

    cached = CachedJudge(judge, out / "judge_cache.jsonl", version="behaviours")
    items = [TraceToCode(r.key, r.completion, f"Countdown: reach {r.target} from {r.nums}") for r in records]
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    return code_traces(cached, items, schemes, out_path=out / "behaviours.jsonl")


def finish_run(args: argparse.Namespace, judge: Any, records: list[Any], out: Path) -> None:
    codings = code_behaviours(args, judge, records, out)
    if args.no_report:
        return
    from interp_sot.experiments.report import write_report

    try:
        import matplotlib  # noqa: F401

        plot = True
    except ImportError:
        logger.warning("matplotlib not installed: report without plot (pip install 'interp-sot[plot]')")
        plot = False
    files = write_report(records, out / "report", codings=codings, plot=plot, n_boot=args.n_boot)
    print(files.summary.read_text())
    print(f"report: {files.summary.parent}")


def run(args: argparse.Namespace) -> int:
    from interp_sot.experiments import run_sweep

    strengths = parse_floats(args.strengths, "--strengths")
    norm = args.norm or "unit"
    if bool(args.features) == bool(args.direction):
        raise SystemExit("give SAE --features or one --direction file (not both)")
    if args.direction:
        from interp_sot.steering import load_direction

        d = load_direction(args.direction)
        if d.ndim != 1:
            raise SystemExit(f"--direction {args.direction}: expected [d_model], got shape {tuple(d.shape)}")
        directions: dict[Any, Any] = {Path(args.direction).stem: d}
    else:
        try:
            features = [int(x) for x in args.features.split(",") if x.strip()]
        except ValueError as err:
            raise SystemExit(f"--features: {err}") from err
        directions = feature_directions(args, features, norm)
    config = sweep_config(args)
    judge = make_behaviour_judge(args)
    problems = load_problems(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_problems(problems, out)
    model, tokenizer = load_run_model(args)
    records = run_sweep(model, tokenizer, problems, directions, strengths, config=config, out_path=out / "sweep.jsonl")
    finish_run(args, judge, records, out)
    return 0
