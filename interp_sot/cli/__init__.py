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
    "dose": "interp_sot.cli.dose",
    "steer": "interp_sot.cli.steer",
    "controls": "interp_sot.cli.controls",
    "measure": "interp_sot.cli.measure",
    "analyze": "interp_sot.cli.analyze",
    "corpus": "interp_sot.cli.corpus",
    "train-sae": "interp_sot.cli.train_sae",
    "browse": "interp_sot.cli.browse",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interp-sot", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
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
    try:
        return int(args.run(args) or 0)
    except SystemExit as err:  # a flag the command rejected: the same one-line form, still a SystemExit
        if not isinstance(err.code, str) or err.code.startswith("interp-sot "):
            raise
        raise SystemExit(f"interp-sot {args.command}: error: {err.code}") from None
    except EXPECTED_ERRORS as err:
        if args.debug:
            raise
        return _error(args.command, str(err))


EXPECTED_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
"""Bad input, missing files, refused resumes: reported in one line (``--debug`` shows the traceback). Any other
exception is a bug and keeps its traceback."""


def _error(command: str, message: str) -> int:
    print(f"interp-sot {command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
