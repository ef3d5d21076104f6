"""The pipeline as stage functions: stats -> screen -> pick -> steer -> controls -> analyze -> report.

One module per stage; each stage is a function taking a small config dataclass (plus the objects it needs) and
returning a typed result, reading and writing one run directory (:mod:`interp_sot.stages.rundir`). The command
line, the demo and scripts call the same functions; see docs/architecture.md. Import the modules directly
(``from interp_sot.stages.stats import stats_stage``); importing this package loads nothing heavy.
"""
