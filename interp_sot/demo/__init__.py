"""The main job, offline on a CPU: statistics -> screen -> pick -> steer -> controls -> analysis -> report.

``run_demo`` runs the whole pipeline on SmolLM2-135M-Instruct with the shipped SAE and screening corpus
(:mod:`interp_sot.data`) into one run directory; each stage reuses the library's own functions, and a rerun
resumes finished stages. ``interp-sot demo`` is its command line.
"""

from __future__ import annotations

from typing import Any

from interp_sot.demo.config import DemoConfig

__all__ = ["DemoConfig", "DemoResult", "run_demo"]


def __getattr__(name: str) -> Any:
    # The pipeline imports torch and pandas; loading it lazily keeps `interp-sot --help` (which reads
    # DemoConfig's defaults) free of them.
    if name in ("DemoResult", "run_demo"):
        from interp_sot.demo import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
