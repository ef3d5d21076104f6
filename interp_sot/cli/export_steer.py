"""``interp-sot export-steer``: a steering spec at one strength in another tool's format.

``--format lm-eval`` writes the ``.pt`` that ``lm_eval --model steered --model_args pretrained=MODEL,steer_path=X.pt``
loads; ``lm-eval-csv`` lm-eval's sae-lens CSV (for an SAE that is a sae-lens release); ``neuronpedia`` the body of a
Neuronpedia steer request. :mod:`interp_sot.steering.export` states the convention each differs in. Example:
``interp-sot export-steer --spec runs/dose1107/steering.json --strength 0.2 --format lm-eval --out steer.pt``.
"""

from __future__ import annotations

import argparse

from interp_sot.errors import bad_input

FORMATS = ("lm-eval", "lm-eval-csv", "neuronpedia")
"""``steering.export.EXPORT_FORMATS`` (listed here so that ``--help`` never imports torch)."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("export-steer", help="export a steering spec (lm-eval .pt/CSV, Neuronpedia JSON)")
    p.add_argument("--spec", required=True, help="a steering.json (or a run directory holding one)")
    p.add_argument("--feature", type=int, default=None, help="the feature, for a spec of several features")
    p.add_argument("--strength", required=True, help="the strength, in the spec's units")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="lm-eval")
    p.add_argument("--model", default=None,
                   help="model whose config names the lm-eval hookpoint (default: the spec's model)")
    p.add_argument("--prompt", default="", help="the prompt of a Neuronpedia steer request")
    p.add_argument("--neuronpedia-id", default=None,
                   help="the SAE on Neuronpedia as MODEL/SOURCE (e.g. gpt2-small/0-res-jb), if the spec lacks it")
    p.add_argument("--out", required=True, help="output file (.pt for lm-eval)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from interp_sot.steering.export import export_spec, model_skeleton
    from interp_sot.steering.spec import check_strength, read_spec

    spec = read_spec(args.spec, args.feature)
    strength = check_strength(args.strength, "--strength")
    if args.model is not None:
        spec = replace(spec, model=args.model)
    if args.neuronpedia_id is not None:
        spec = replace(spec, direction=replace(spec.direction, neuronpedia_id=args.neuronpedia_id))
    model = model_skeleton(spec.model) if args.fmt != "neuronpedia" else None
    with bad_input(""):
        out = export_spec(spec, strength, args.fmt, args.out, model=model, prompt=args.prompt)
    print(f"{args.fmt}: {out} (feature {spec.direction.feature}, s={strength:g} {spec.units}, layer {spec.layer})")
    return 0
