"""SAE features over a corpus: loading, fused encoding, streaming statistics, top-k contexts.

The data path reads one way: corpus -> activations -> **stats** -> screen -> steer -> analyze.
"""

# Exports resolve on first use (PEP 562): the torch-free config modules stay importable by --help.

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from interp_sot.lazy import lazy_exports

if TYPE_CHECKING:  # the real names, for type checkers
    from interp_sot.features.collect import collect, forward_to_layer
    from interp_sot.features.collect_config import CollectConfig
    from interp_sot.features.contexts import ContextStore, TopContext
    from interp_sot.features.encode import FusedEncoder, encode, encode_stats, fused_architecture
    from interp_sot.features.onsets import OnsetRule, OnsetTracker, onset_distances
    from interp_sot.features.sae import load_sae
    from interp_sot.features.stats import FeatureStats, TokenInfo

_EXPORTS: dict[str, str] = {
    "CollectConfig": "interp_sot.features.collect_config",
    "collect": "interp_sot.features.collect",
    "forward_to_layer": "interp_sot.features.collect",
    "ContextStore": "interp_sot.features.contexts",
    "TopContext": "interp_sot.features.contexts",
    "FusedEncoder": "interp_sot.features.encode",
    "encode": "interp_sot.features.encode",
    "encode_stats": "interp_sot.features.encode",
    "fused_architecture": "interp_sot.features.encode",
    "OnsetRule": "interp_sot.features.onsets",
    "OnsetTracker": "interp_sot.features.onsets",
    "onset_distances": "interp_sot.features.onsets",
    "load_sae": "interp_sot.features.sae",
    "FeatureStats": "interp_sot.features.stats",
    "TokenInfo": "interp_sot.features.stats",
}

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


__getattr__ = lazy_exports(__name__, _EXPORTS)


_SHADOWED = frozenset({"collect", "encode"})
"""Exported functions named like a submodule (``collect``, ``encode``)."""


class _Package(types.ModuleType):
    """Keeps ``features.collect`` / ``features.encode`` the functions: importing the submodule of the same name
    would otherwise bind the module over the function on this package (eager imports used to rebind it)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
