"""Residual-stream steering: h' = h + s * d at a decoder layer, per batch row.

The data path reads one way: corpus -> activations -> stats -> screen -> **steer** -> analyze.
"""

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
