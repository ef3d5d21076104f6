"""The one exception type for expected errors: bad input, missing files, refused resumes.

Why one type: the CLI turns exactly these into one line (``interp-sot <stage>: error: ...``) and exit code 2,
while any other exception is a library bug and keeps its traceback. It subclasses ``ValueError`` so that code
and tests written against the older ``ValueError`` contract keep working.
"""

from __future__ import annotations

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
