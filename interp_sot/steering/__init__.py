"""Residual-stream steering: h' = h + s * d at a decoder layer, per batch row.

The data path reads one way: corpus -> activations -> stats -> screen -> **steer** -> analyze.
"""

# Exports resolve on first use (PEP 562): the torch-free submodules (settings, sites) stay importable by the
# command line's --help without loading torch through this package.

from __future__ import annotations

from typing import TYPE_CHECKING

from interp_sot.lazy import lazy_exports

if TYPE_CHECKING:  # the real names, for type checkers
    from interp_sot.layers import decoder_layers, residual_width, resolve_layer, unwrap
    from interp_sot.steering.contrast import mean_difference_direction, mean_residual, median_residual_norm
    from interp_sot.steering.directions import (
        decoder_matrix,
        feature_direction,
        feature_directions,
        load_direction,
        save_direction,
    )
    from interp_sot.steering.hook import SteeringHandle, build_offset, steer

_EXPORTS: dict[str, str] = {
    "decoder_layers": "interp_sot.layers",
    "residual_width": "interp_sot.layers",
    "resolve_layer": "interp_sot.layers",
    "unwrap": "interp_sot.layers",
    "mean_difference_direction": "interp_sot.steering.contrast",
    "mean_residual": "interp_sot.steering.contrast",
    "median_residual_norm": "interp_sot.steering.contrast",
    "decoder_matrix": "interp_sot.steering.directions",
    "feature_direction": "interp_sot.steering.directions",
    "feature_directions": "interp_sot.steering.directions",
    "load_direction": "interp_sot.steering.directions",
    "save_direction": "interp_sot.steering.directions",
    "SteeringHandle": "interp_sot.steering.hook",
    "build_offset": "interp_sot.steering.hook",
    "steer": "interp_sot.steering.hook",
}

__all__ = [
    "SteeringHandle",
    "build_offset",
    "decoder_layers",
    "decoder_matrix",
    "feature_direction",
    "feature_directions",
    "load_direction",
    "mean_difference_direction",
    "mean_residual",
    "median_residual_norm",
    "residual_width",
    "resolve_layer",
    "save_direction",
    "steer",
    "unwrap",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
