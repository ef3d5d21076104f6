"""Command-line flags derived from config dataclasses: each setting is declared once, as a field.

A stage's config dataclass is the single source of a setting: its name, type, default, choices (a ``Literal``)
and help text (the field's docstring). :func:`add_flags` turns the fields into ``argparse`` flags
(``max_new_tokens`` -> ``--max-new-tokens``) and :func:`from_flags` builds the config back from the parsed
flags, so that a flag cannot drift from the field it sets (EleutherAI/sparsify parses its CLI from its config the
same way). Field types a flag can carry: ``bool`` (``--x/--no-x``), ``int``, ``float``, ``str``, ``Literal[...]``
(choices), ``tuple[int|float|str, ...]`` (comma-separated) and ``X | None`` of those (default None). Anything
else (a nested config, a tensor) is left to the caller: name it in ``exclude``.

Pure Python (no torch): ``interp-sot --help`` builds every subcommand's flags from the configs' modules, which
therefore import torch lazily.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import math
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, TypeVar, Union

from interp_sot.errors import FlagError, shorten

T = TypeVar("T")
Parser = argparse.ArgumentParser | argparse._ArgumentGroup
UNSET = object()
"""``defaults=`` value that makes a flag required (no default)."""


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its docstring (the string literal right under the field), from ``cls`` and its bases, with
    whitespace collapsed; the help text of its flag."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, [*body[1:], None], strict=True):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


@functools.cache
def _hints(cls: type) -> dict[str, object]:
    """Resolved field annotations. Names a module imports under ``TYPE_CHECKING`` only cannot be resolved: such a
    field gets ``object`` (it must then be excluded, see :func:`add_flags`)."""
    module = sys.modules.get(cls.__module__)
    namespace = dict(vars(module)) if module is not None else {}
    hints: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        for name, annotation in getattr(klass, "__annotations__", {}).items():
            if isinstance(annotation, str):
                try:
                    # our own source's annotations, never user input
                    annotation = eval(annotation, namespace, dict(vars(typing)))
                except NameError:
                    annotation = object
            hints[name] = annotation
    return hints


class FlagType(typing.NamedTuple):
    """How one field travels as a flag: the parser of one value, choices, list-ness, optionality."""

    base: type
    choices: tuple[object, ...] | None
    many: bool
    optional: bool


def flag_type(annotation: object) -> FlagType | None:
    """The flag shape of a field annotation, or None when no flag can carry it."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            return None
        optional, annotation = True, args[0]
        origin = typing.get_origin(annotation)
    many = False
    if origin is tuple:
        items = typing.get_args(annotation)
        if len(items) != 2 or items[1] is not Ellipsis:
            return None
        many, annotation = True, items[0]
        origin = typing.get_origin(annotation)
    if origin is Literal:
        literals = typing.get_args(annotation)
        return FlagType(type(literals[0]), tuple(literals), many, optional)
    if annotation in (bool, int, float, str):
        return FlagType(typing.cast(type, annotation), None, many, optional)
    return None


def parse_list(text: str, base: type, flag: str) -> tuple[object, ...]:
    """A comma-separated flag value: at least one item (for text, '' is the empty list), each parsed as ``base``;
    numbers finite and none listed twice (a strength or candidate given twice is a typo, never a wish)."""
    if base is str and not text.strip():
        return ()  # e.g. --stop '' : no stop strings
    try:
        values = tuple(base(x.strip()) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise FlagError(f"{flag}: {shorten(err)}") from err
    if not values:
        raise FlagError(f"{flag}: give at least one value")
    if base is float:
        bad = [v for v in values if not math.isfinite(typing.cast(float, v))]
        if bad:
            raise FlagError(f"{flag}: values must be finite numbers, got {shorten(bad)}")
    if len(set(values)) != len(values):
        raise FlagError(f"{flag}: values are listed twice: {shorten(values)}")
    return values


def parse_floats(text: str, flag: str) -> list[float]:
    """Comma-separated finite numbers, none twice (``--strengths=-0.1,0,0.1``)."""
    return [float(typing.cast(float, v)) for v in parse_list(text, float, flag)]


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(_show(v) for v in value) or "none"
    return "none" if value is None else str(value)


def add_flags(parser: Parser, cls: type, *, exclude: Collection[str] = (), only: Collection[str] | None = None,
              defaults: Mapping[str, object] | None = None, help: Mapping[str, str] | None = None,
              aliases: Mapping[str, Collection[str]] | None = None,
              choices: Mapping[str, Collection[object]] | None = None,
              rename: Mapping[str, str] | None = None, repeat: Collection[str] = (),
              metavar: Mapping[str, str] | None = None) -> list[str]:
    """Add one flag per field of the dataclass ``cls`` (in field order) and return the fields added.

    ``defaults``: a command's own default for a field (``UNSET``: required); ``help``: text appended to the
    field's docstring (e.g. what a None default means on this command); ``aliases``: extra flag names;
    ``choices``: the allowed values of a ``str`` field whose values live in a registry (task presets);
    ``rename``: field -> the name its flag and ``args`` attribute take where two configs of one command share a
    field name (pass the same map to :func:`from_flags`); ``repeat``: tuple fields whose flag may be given several
times, each adding its values (``--prompt-file A=x --prompt-file B=y``), where others keep the last;
``metavar``: what ``--help`` shows for a field's value. Raises
    TypeError for a field no flag can carry that is neither excluded nor left out by ``only`` (a programming error:
    the config grew a field the command line cannot set)."""
    defaults, help, aliases = dict(defaults or {}), dict(help or {}), dict(aliases or {})
    choices = dict(choices or {})
    docs, hints = field_docs(cls), _hints(cls)
    added = []
    for f in dataclasses.fields(cls):
        if f.name in exclude or (only is not None and f.name not in only) or not f.init:
            continue
        shape = flag_type(hints.get(f.name, object))
        if shape is None:
            raise TypeError(f"{cls.__name__}.{f.name}: no flag for type {hints.get(f.name)!r}; exclude it")
        if f.name in choices:
            shape = shape._replace(choices=tuple(choices[f.name]))
        default = defaults.get(f.name, _field_default(f))
        text = " ".join(x for x in (docs.get(f.name, ""), help.get(f.name, "")) if x)
        dest = (rename or {}).get(f.name, f.name)
        names = [flag_name(dest), *aliases.get(f.name, ())]
        kwargs: dict[str, Any] = {"dest": dest}
        if default is UNSET:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
            text += f" (default: {_show(default)})"
        if shape.base is bool and not shape.many:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif shape.many:
            kwargs["type"] = _list_parser(shape, names[0])
            kwargs["metavar"] = "A,B,..."
            if f.name in repeat:
                kwargs.update(action="extend", default=list(typing.cast(tuple[object, ...], default)))
        else:
            kwargs["type"] = shape.base
            if shape.choices is not None:
                kwargs["choices"] = shape.choices
        if f.name in (metavar or {}):
            kwargs["metavar"] = (metavar or {})[f.name]
        parser.add_argument(*names, help=text.replace("%", "%%"), **kwargs)
        added.append(f.name)
    return added


def _field_default(f: dataclasses.Field[object]) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return UNSET


def _list_parser(shape: FlagType, flag: str) -> Callable[[str], tuple[object, ...]]:
    def parse(text: str) -> tuple[object, ...]:  # argparse shows an ArgumentTypeError's message as it is
        try:
            values = parse_list(text, shape.base, flag)
        except FlagError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"{flag}: ")) from err
        if shape.choices is not None and any(v not in shape.choices for v in values):
            raise argparse.ArgumentTypeError(f"each value must be one of {', '.join(map(str, shape.choices))}")
        return values

    return parse


def flag_values(cls: type, args: argparse.Namespace, *, exclude: Collection[str] = (),
                rename: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The fields of ``cls`` the parsed ``args`` carry (those :func:`add_flags` added), by field name."""
    dest = {f.name: (rename or {}).get(f.name, f.name) for f in dataclasses.fields(cls) if f.init}
    values = {name: getattr(args, d) for name, d in dest.items() if name not in exclude and hasattr(args, d)}
    return {name: tuple(v) if isinstance(v, list) else v for name, v in values.items()}  # repeated flags


def from_flags(cls: type[T], args: argparse.Namespace, *, exclude: Collection[str] = (),
               rename: Mapping[str, str] | None = None, **given: object) -> T:
    """``cls(**flags, **given)``: the config the flags describe (``given`` wins, for fields without a flag). A
    ``ValueError`` of the config's own validation is bad input: it becomes a FlagError naming the flags."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"from_flags needs a dataclass, got {cls!r}")
    values = flag_values(cls, args, exclude=exclude, rename=rename) | given
    try:
        return cls(**values)
    except ValueError as err:
        raise FlagError(f"{shorten(err)}") from err
