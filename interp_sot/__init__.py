"""interp_sot: mechanistic experiments of "Reasoning Models Generate Societies of Thought".

The data path reads one way: corpus -> activations -> stats -> screen -> steer -> analyze.
Subpackages import their heavy dependencies lazily, so ``import interp_sot`` is cheap.
"""

__version__ = "0.1.0"
