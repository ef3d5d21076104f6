"""``interp-sot eval``: a steering spec at several strengths on lm-evaluation-harness tasks (the ``eval`` extra).

Example (offline, SmolLM2, the shipped local tasks; run from the repository root, where their data files lie)::

    interp-sot eval --spec runs/dose1107/steering.json --strengths=-0.15,0,0.2 \\
        --tasks interp_sot_addition_mc,interp_sot_addition_gen --include-path tests/data/lm_eval_tasks \\
        --out runs/eval1107

Writes ``eval.csv`` (task, metric, strength, value, stderr, n), one ``eval_<metric>.png`` per metric, and lm-eval's
result JSON + per-document samples per strength (:mod:`interp_sot.stages.eval`); rerun the same command to resume.
``--strengths auto:N --dose DIR`` spreads N strengths over a dose run's coherent range.
"""

from __future__ import annotations

import argparse

from interp_sot.errors import FlagError, bad_input
from interp_sot.flags import add_flags, from_flags
from interp_sot.stages.sources import ModelSource


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("eval", help="steered evaluation on lm-eval tasks (needs the eval extra)")
    p.add_argument("--spec", required=True, help="a steering.json (or a run directory holding one)")
    p.add_argument("--feature", type=int, default=None, help="the feature to steer, for a spec of several features")
    p.add_argument("--strengths", required=True,
                   help="comma-separated strengths in the spec's units (use --strengths=-0.1,...), "
                        "or auto:N with --dose")
    p.add_argument("--dose", default=None, help="a finished `interp-sot dose` run of the feature (for auto:N)")
    p.add_argument("--tasks", required=True, help="comma-separated lm-eval task names (e.g. gsm8k,mmlu)")
    p.add_argument("--include-path", default=None, help="folder of local lm-eval task YAML files")
    p.add_argument("--limit", type=int, default=None, help="documents per task (the first N)")
    p.add_argument("--batch-size", type=int, default=None, help="lm-eval batch size (default: the eval stage's)")
    p.add_argument("--num-fewshot", type=int, default=None, help="few-shot examples (default: each task's own)")
    add_flags(p, ModelSource, defaults={"model": None}, help={"model": "None: the spec's model."})
    p.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from interp_sot.evaluation.harness import check_include_path, check_tasks, require_lm_eval, task_manager
    from interp_sot.stages.eval import EvalConfig, eval_stage
    from interp_sot.stages.identity import model_identity
    from interp_sot.steering.spec import read_spec

    require_lm_eval()  # every check below is cheap; the task index and the model come after them
    spec = read_spec(args.spec, args.feature)
    from interp_sot.stages.run_options import read_dose_flag, strength_values

    # auto:N refuses a dose run of other units or another feature
    strengths = strength_values(args.strengths, read_dose_flag(args.dose), spec.units, spec.direction.feature,
                                args.dose)
    check_include_path(args.include_path)
    with bad_input(""):
        config = EvalConfig(tasks=tuple(args.tasks.split(",")), strengths=tuple(strengths),
                            include_path=args.include_path, limit=args.limit, num_fewshot=args.num_fewshot,
                            **({"batch_size": args.batch_size} if args.batch_size is not None else {}))
    manager = task_manager(config.include_path, config.tasks)
    check_tasks(config.tasks, manager)
    if args.model is None:
        args.model = spec.model
    if args.model == "unknown":
        raise FlagError("the spec does not name its model: give --model")
    model, tokenizer = from_flags(ModelSource, args).load()
    result = eval_stage(model, tokenizer, spec, config, args.out, manager=manager,
                        inputs={"model": model_identity(args.model)})
    print(f"{'task':<28} {'metric':<28} {'strength':>9} {'value':>7} {'stderr':>7} {'n':>5}")
    for r in result.rows:
        print(f"{r.task:<28} {r.metric:<28} {r.strength:>9.4g} {r.value:>7.3f} {r.stderr:>7.3f} {r.n:>5}")
    print(f"eval: {result.out}")
    return 0
