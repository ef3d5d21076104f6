"""The one exception type for expected errors: bad input, missing files, refused resumes.

Why one type: the CLI turns exactly these into one line (``interp-sot <stage>: error: ...``) and exit code 2,
while any other exception is a library bug and keeps its traceback. It subclasses ``ValueError`` so that code
and tests written against the older ``ValueError`` contract keep working.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

MAX_VALUE_CHARS = 200
"""Values quoted in an error message are cut to this many characters (a 1 MB target must not flood stderr)."""


class InterpSotError(ValueError):
    """An expected, user-facing error; its message names the value or file at fault."""


def shorten(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """``repr``-free text of ``value`` cut to ``limit`` characters, saying how much was cut."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


class FlagError(InterpSotError, SystemExit):
    """A command-line flag (or combination of flags) that cannot work, found by a command's own checks.

    ``interp-sot`` reports it like every :class:`InterpSotError` (one line, exit code 2). It is also a
    ``SystemExit``, like argparse's own flag errors, so code that calls a subcommand's functions directly (tests,
    notebooks) sees the argparse contract: the program ends with the message (status 1 outside ``interp-sot``).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = message  # SystemExit's exit code: the message is printed when it ends a program


def one_line(message: str, limit: int = 2000) -> str:
    """``message`` on one line, cut to ``limit`` characters (a last guard; values should be cut where quoted)."""
    return shorten(" ".join(str(message).split()), limit)


@contextlib.contextmanager
def bad_input(what: str) -> Iterator[None]:
    """Turn a ``ValueError`` raised while reading what the user named (a flag's file, a config built from flags)
    into an :class:`InterpSotError` prefixed by ``what``: there it can only mean bad input. Used around input
    reading alone, never around the work itself, where a ``ValueError`` is a bug and keeps its traceback."""
    try:
        yield
    except InterpSotError:
        raise
    except ValueError as err:
        raise InterpSotError(f"{what}: {err}" if what else str(err)) from err
