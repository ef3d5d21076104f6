"""SAE features over a corpus: loading, fused encoding, streaming statistics, top-k contexts.

The data path reads one way: corpus -> activations -> **stats** -> screen -> steer -> analyze.
"""

from interp_sot.features.collect import CollectConfig, collect, forward_to_layer
from interp_sot.features.contexts import ContextStore, TopContext
from interp_sot.features.encode import FusedEncoder, encode, encode_stats, fused_architecture
from interp_sot.features.onsets import OnsetRule, OnsetTracker, onset_distances
from interp_sot.features.sae import load_sae
from interp_sot.features.stats import FeatureStats, TokenInfo

__all__ = [
    "CollectConfig",
    "ContextStore",
    "FeatureStats",
    "FusedEncoder",
    "OnsetRule",
    "OnsetTracker",
    "TokenInfo",
    "TopContext",
    "collect",
    "encode",
    "encode_stats",
    "forward_to_layer",
    "fused_architecture",
    "load_sae",
    "onset_distances",
]
