"""Feature screening: conversation ratio, the screening table and filter, labels, categories and controls.

Data path: ``features.FeatureStats`` (+ contexts) -> ``conversation_ratio`` -> ``screen`` -> ``controls``.
Import the modules directly (``from interp_sot.screening.screen import screen``); nothing heavy loads here.
"""
