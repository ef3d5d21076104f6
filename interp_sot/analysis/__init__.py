"""The statistics layer (last stage of corpus -> activations -> stats -> screen -> steer -> analyze).

- ``regression``: ``fe_ols`` — OLS with one absorbed fixed effect and CR1 cluster-robust SEs (fixest conventions);
  ``fixed_effects``: the shared sample preparation (missing values, singletons, nesting, within transform).
- ``mediation``: ``mediate`` — parallel-mediator decomposition, delta-method SEs, cluster-bootstrap CIs.
- ``steering_effects``: strength regressions and the s = 0 -> +10 mediation from a sweep table.
- ``multiple_testing``: Holm ``p_holm`` and Benjamini–Hochberg ``q_bh`` per family of contrasts, and the counts.
- ``steerability``: the per-problem anti-steerable fraction (Tan et al.) with a Wilson interval.
- ``diversity``: feature-level coverage and entropy within SAE feature sets, encoded chunk by chunk.
- ``personality``: BFI-10 scoring and per-dimension SD across perspectives.
- ``expertise``: mean 1 - cos to the centroid of perspective expertise embeddings (pluggable embedder).
- ``bales``: Jaccard reciprocity of Bales IPA roles (named variants).
- ``reliability``: ICC(3,1) for judge reliability.
- ``perspectives``: judge-based perspective analysis parsed into tidy tables.

Modules import their heavy dependencies themselves; importing this package imports nothing.
"""
