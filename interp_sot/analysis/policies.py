"""The choices an analysis makes about awkward samples, as types (pure Python: configs that the command line
reads, such as ``stages.analyze_config.AnalyzeConfig``, name them without loading pandas)."""

from __future__ import annotations

from typing import Literal

MissingPolicy = Literal["error", "drop"]
"""Rows with missing values: fail, or drop them."""
SingletonPolicy = Literal["drop", "keep", "error"]
"""Fixed-effect groups with one row: drop them (fixest's default), keep them, or fail."""
UnfittablePolicy = Literal["error", "skip"]
"""An outcome that is constant or cannot be fitted: fail, or list it with the reason."""
