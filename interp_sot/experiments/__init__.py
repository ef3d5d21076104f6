"""Steering experiments on Countdown: sweeps and control runs (their statistics live in ``interp_sot.analysis``)."""

from interp_sot.experiments.controls import (
    ControlFeature,
    control_features,
    control_rows,
    load_control_features,
    run_controls,
)
from interp_sot.experiments.records import RowSpec, SweepRecord, row_key
from interp_sot.experiments.sweep import GenerationSettings, SweepConfig, run_rows, run_sweep, sweep_rows

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
