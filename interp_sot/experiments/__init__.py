"""Steering experiments on Countdown: sweeps and control runs (their statistics live in ``interp_sot.analysis``)."""

# Exports resolve on first use (PEP 562): the torch-free submodules (settings, sites) stay importable by the
# command line's --help without loading torch through this package.

from __future__ import annotations

from typing import TYPE_CHECKING

from interp_sot.lazy import lazy_exports

if TYPE_CHECKING:  # the real names, for type checkers
    from interp_sot.experiments.controls import (
        ControlFeature,
        control_features,
        control_rows,
        load_control_features,
        run_controls,
    )
    from interp_sot.experiments.records import RowSpec, SweepRecord, row_key
    from interp_sot.experiments.sweep import GenerationSettings, SweepConfig, run_rows, run_sweep, sweep_rows

_EXPORTS: dict[str, str] = {
    "ControlFeature": "interp_sot.experiments.controls",
    "control_features": "interp_sot.experiments.controls",
    "control_rows": "interp_sot.experiments.controls",
    "load_control_features": "interp_sot.experiments.controls",
    "run_controls": "interp_sot.experiments.controls",
    "RowSpec": "interp_sot.experiments.records",
    "SweepRecord": "interp_sot.experiments.records",
    "row_key": "interp_sot.experiments.records",
    "GenerationSettings": "interp_sot.experiments.sweep",
    "SweepConfig": "interp_sot.experiments.sweep",
    "run_rows": "interp_sot.experiments.sweep",
    "run_sweep": "interp_sot.experiments.sweep",
    "sweep_rows": "interp_sot.experiments.sweep",
}

__all__ = [
    "ControlFeature",
    "GenerationSettings",
    "RowSpec",
    "SweepConfig",
    "SweepRecord",
    "control_features",
    "control_rows",
    "load_control_features",
    "row_key",
    "run_controls",
    "run_rows",
    "run_sweep",
    "sweep_rows",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
