"""The ``interp-sot`` command line.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` and ``run(args) -> int``;
``SUBCOMMANDS`` lists them so that ``interp-sot --help`` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# name -> module path; each module defines add_parser(subparsers) and run(args).
SUBCOMMANDS: dict[str, str] = {
    "demo": "interp_sot.cli.demo",
    "steer-demo": "interp_sot.cli.steer_demo",
    "stats": "interp_sot.cli.stats",
    "screen": "interp_sot.cli.screen",
    "steer": "interp_sot.cli.steer",
    "controls": "interp_sot.cli.controls",
    "analyze": "interp_sot.cli.analyze",
    "corpus": "interp_sot.cli.corpus",
    "train-sae": "interp_sot.cli.train_sae",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interp-sot", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)
    for module_path in SUBCOMMANDS.values():
        importlib.import_module(module_path).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
