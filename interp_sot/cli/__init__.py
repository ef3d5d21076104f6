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
from typing import NoReturn

from interp_sot.errors import InterpSotError, one_line

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
    "eval": "interp_sot.cli.eval",
    "export-steer": "interp_sot.cli.export_steer",
}


class Parser(argparse.ArgumentParser):
    """Flag errors in one line like every other error, ``interp-sot <stage>: error: ...`` with exit code 2
    (argparse would print the whole usage first); ``--help`` shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="interp-sot", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for module_path in SUBCOMMANDS.values():
        importlib.import_module(module_path).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Expected errors (:data:`EXPECTED_ERRORS`) print one line, ``interp-sot <stage>: error:
    ...``, and return 2 (``--debug`` re-raises them with their traceback); any other exception is a bug and keeps
    its traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args) or 0)
    except EXPECTED_ERRORS as err:
        if args.debug:
            raise
        return _error(args.command, str(err))
    except SystemExit as err:  # a bare SystemExit("message") of a command: the same one line and exit code 2
        if not isinstance(err.code, str) or args.debug:
            raise
        return _error(args.command, err.code)


EXPECTED_ERRORS = (InterpSotError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
"""Bad input, missing files, refused resumes: reported in one line. ``InterpSotError`` is the library's one type
for them; the OS errors name the path they could not use, which is as much as the user needs. A ``ValueError`` (or
anything else) from deeper down is a bug and keeps its traceback."""


def _error(command: str, message: str) -> int:
    prefix = f"interp-sot {command}: error: "
    print(prefix + one_line(message.removeprefix(prefix)), file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
