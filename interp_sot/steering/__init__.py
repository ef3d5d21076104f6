"""Residual-stream steering: h' = h + s * d at a decoder layer, per batch row.

The data path reads one way: corpus -> activations -> stats -> screen -> **steer** -> analyze.
"""

from interp_sot.steering.directions import decoder_matrix, feature_direction
from interp_sot.steering.hook import SteeringHandle, build_offset, steer
from interp_sot.steering.layers import decoder_layers, residual_width, resolve_layer, unwrap

__all__ = [
    "SteeringHandle",
    "build_offset",
    "decoder_layers",
    "decoder_matrix",
    "feature_direction",
    "residual_width",
    "resolve_layer",
    "steer",
    "unwrap",
]
