"""Judge prompts from user files: replace any shipped template with your own wording (e.g. the paper's supplement).

A prompt file is plain UTF-8 text in one of two shapes:

- ``[system]`` and ``[user]`` header lines, each followed by that message's text; or
- no headers: the whole file is the user message and no system message is sent.

The user message must contain every placeholder of the template it replaces, written ``{name}``; the system text
is sent verbatim and may contain none. Any other brace is literal, so JSON examples such as ``{"scores": [...]}``
need no escaping, but a ``{word}`` that is not a placeholder of this template is an error (a typo would otherwise
reach the judge unfilled). The reply format the template's validator expects does not change: keep asking for it.
The template keeps its name and gets the version ``file-<sha256 of the file, 12 hex>``, which is part of every
cache and store key: editing the file re-judges everything, reverting it reuses the old replies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from interp_sot.errors import InterpSotError
from interp_sot.judging.prompts.template import PromptTemplate
from interp_sot.judging.store import sha256_hex

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")
_HEADER = re.compile(r"^\[(system|user)\][ \t]*$", re.MULTILINE)


def _to_format_string(text: str, fields: tuple[str, ...]) -> str:
    """``text`` as a ``str.format`` string in which only ``{field}`` placeholders are fields."""
    out: list[str] = []
    last = 0
    for m in _PLACEHOLDER.finditer(text):
        out.append(text[last:m.start()].replace("{", "{{").replace("}", "}}"))
        out.append(m.group(0) if m.group(1) in fields else m.group(0).replace("{", "{{").replace("}", "}}"))
        last = m.end()
    out.append(text[last:].replace("{", "{{").replace("}", "}}"))
    return "".join(out)


def parse_prompt_text(text: str, base: PromptTemplate, source: str = "<text>") -> PromptTemplate:
    """The template ``text`` describes, checked against the placeholders of ``base`` (see module doc)."""
    parts = _HEADER.split(text)
    if len(parts) == 1:
        system, user = "", text
    else:
        if parts[0].strip():
            raise InterpSotError(f"prompt file {source}: text before the first [system]/[user] header")
        sections: dict[str, str] = {}
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in sections:
                raise InterpSotError(f"prompt file {source}: the [{name}] section appears twice")
            sections[name] = body.strip("\n")
        if "user" not in sections:
            raise InterpSotError(f"prompt file {source}: no [user] section")
        system, user = sections.get("system", ""), sections["user"]
    expected = ", ".join("{" + f + "}" for f in base.fields)
    found = set(_PLACEHOLDER.findall(user))
    missing = [f for f in base.fields if f not in found]
    if missing:
        raise InterpSotError(
            f"prompt file {source} for {base.name!r} lacks the placeholder(s) "
            f"{', '.join('{' + f + '}' for f in missing)}; its user message must contain {expected}"
        )
    unknown = sorted(found - set(base.fields))
    if unknown:
        raise InterpSotError(
            f"prompt file {source} for {base.name!r} uses unknown placeholder(s) "
            f"{', '.join('{' + f + '}' for f in unknown)}; the placeholders of {base.name!r} are {expected}"
        )
    in_system = sorted(set(_PLACEHOLDER.findall(system)) & set(base.fields))
    if in_system:
        raise InterpSotError(f"prompt file {source}: placeholders belong in the [user] section, "
                         f"found {in_system} in [system]")
    if not user.strip():
        raise InterpSotError(f"prompt file {source}: the user message is empty")
    return PromptTemplate(
        name=base.name,
        version="file-" + sha256_hex(text)[:12],
        system=system,
        user=_to_format_string(user, base.fields),
    )


def load_prompt_file(path: str | Path, base: PromptTemplate) -> PromptTemplate:
    """Read and validate a prompt file that replaces ``base``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InterpSotError(f"cannot read prompt file {path}: {err}") from err
    return parse_prompt_text(text, base, str(path))


def load_prompt_files(specs: Iterable[str], templates: Mapping[str, PromptTemplate]) -> dict[str, PromptTemplate]:
    """``["KIND=PATH", ...]`` (as ``--prompt-file`` writes them) -> validated templates by kind.

    ``templates`` maps each replaceable kind to its shipped template (see the README's prompt table).
    """
    out: dict[str, PromptTemplate] = {}
    for spec in specs:
        kind, sep, path = spec.partition("=")
        kind = kind.strip()
        if not sep or not kind or not path.strip():
            raise InterpSotError(f"prompt file option {spec!r}: write KIND=PATH, KIND one of {sorted(templates)}")
        if kind not in templates:
            raise InterpSotError(f"unknown prompt kind {kind!r}; known: {sorted(templates)}")
        if kind in out:
            raise InterpSotError(f"prompt kind {kind!r} given twice")
        out[kind] = load_prompt_file(path.strip(), templates[kind])
    return out
