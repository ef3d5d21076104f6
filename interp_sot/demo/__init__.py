"""The main job, offline on a CPU: statistics -> screen -> pick -> steer -> controls -> analysis -> report.

``run_demo`` runs the whole pipeline on SmolLM2-135M-Instruct with the shipped SAE and screening corpus
(:mod:`interp_sot.data`) into one run directory; each stage reuses the library's own functions, and a rerun
resumes finished stages. ``interp-sot demo`` is its command line.
"""

from interp_sot.demo.config import DemoConfig
from interp_sot.demo.pipeline import DemoResult, run_demo

__all__ = ["DemoConfig", "DemoResult", "run_demo"]
