"""The registry of strength units: what one unit of s adds along a feature's decoder row (the one place a new
unit is declared; ``docs/extending.md``).

A unit multiplies either the unit-norm decoder row ``u_f = W_dec[f] / ||W_dec[f]||`` (``base="unit"``) or the raw
row ``W_dec[f]`` (``base="sae"``) by a factor computed from what the run knows about the feature: the row's norm,
the median residual norm on the run's prompts, and (for units that declare ``needs_max_act``) the feature's max
activation on the screening corpus. :func:`interp_sot.steering.strength_units.strength_scale` applies it; the
command line's ``--units`` choices, the units record of every run and the analysis tables follow from here.

Pure Python (no torch), so the command line can list the units in ``--help``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple


class UnitContext(NamedTuple):
    """What a unit's factor may depend on, for one feature."""

    feature: int
    row_norm: float
    """||W_dec[f]|| (raw residual units; sae-lens folds input normalisation into W_dec at load)."""
    residual_norm: float
    """Median per-token residual norm at the steered layer on the run's prompts."""
    max_act: float | None
    """The feature's max activation on the screening corpus (units with ``needs_max_act`` only)."""


@dataclass(frozen=True)
class StrengthUnit:
    """One convention for what s means in h' = h + s·v."""

    name: str
    """The name ``--units`` takes and every run records."""
    help: str
    """One line for ``--help``: what one unit of s adds."""
    base: Literal["unit", "sae"]
    """The row ``factor`` multiplies: the unit-norm decoder row or the raw one."""
    factor: Callable[[UnitContext], float] = lambda ctx: 1.0
    """The multiple of ``base`` that one unit of s adds (must be finite and > 0)."""
    needs_max_act: bool = False
    """The factor reads the feature's max activation (the run then needs the screening statistics)."""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"a strength unit's name must be an identifier, got {self.name!r}")
        if self.base not in ("unit", "sae"):
            raise ValueError(f"strength unit {self.name!r}: base must be 'unit' or 'sae', got {self.base!r}")


STRENGTH_UNITS: dict[str, StrengthUnit] = {}
"""Registered units by name (the built-ins below, then any :func:`register_strength_unit` adds)."""


def register_strength_unit(unit: StrengthUnit, *, replace: bool = False) -> StrengthUnit:
    """Add ``unit`` to the registry (``replace=True`` to redefine a name); returns it."""
    if unit.name in STRENGTH_UNITS and not replace:
        raise ValueError(f"strength unit {unit.name!r} is already registered (pass replace=True to redefine it)")
    STRENGTH_UNITS[unit.name] = unit
    return unit


def unregister_strength_unit(name: str) -> None:
    STRENGTH_UNITS.pop(name, None)


def get_strength_unit(name: str) -> StrengthUnit:
    """The registered unit called ``name``; a ValueError listing the known ones otherwise."""
    try:
        return STRENGTH_UNITS[name]
    except KeyError:
        raise ValueError(f"unknown strength units {name!r}; registered: {', '.join(STRENGTH_UNITS)}") from None


def units_help() -> str:
    """``--units`` help text: every registered unit and what one unit of s adds."""
    return "; ".join(f"'{u.name}' = {u.help}" for u in STRENGTH_UNITS.values())


def _max_act(ctx: UnitContext) -> float:
    if ctx.max_act is None:
        raise ValueError("'max_act' units need the feature's max activation: pass max_act= or stats=")
    return ctx.max_act


register_strength_unit(StrengthUnit("unit", "the norm of the added vector (Neuronpedia's convention)", "unit"))
register_strength_unit(StrengthUnit("sae", "SAE activation units (s x the decoder row)", "sae"))
register_strength_unit(StrengthUnit("max_act", "multiples of the feature's max activation on the screening corpus "
                                    "(needs --stats)", "unit", _max_act, needs_max_act=True))
register_strength_unit(StrengthUnit("resid", "share of the median residual norm on the run's prompts", "unit",
                                    lambda ctx: ctx.residual_norm))
