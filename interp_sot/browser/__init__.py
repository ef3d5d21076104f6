"""A static, offline HTML feature browser over the statistics, screen and sweeps of a run.

``write_browser(stats_dir, screen=screen_dir, sweep=steer_dir, out=site_dir)`` writes ``site_dir/index.html``
(a sortable, filterable table of every feature) and ``feature.html#N`` pages (top contexts shaded by
activation, activation histogram, judge verdicts, steering samples). See :mod:`interp_sot.browser.site`.
``browse(BrowseRequest(...))`` is ``interp-sot browse``: the browser, a Neuronpedia export or its import.
"""

# Exports resolve on first use (PEP 562): `interp-sot --help` reads BrowseRequest without loading the browser.

from __future__ import annotations

from typing import TYPE_CHECKING

from interp_sot.lazy import lazy_exports

if TYPE_CHECKING:  # the real names, for type checkers
    from interp_sot.browser.data import BrowserOptions
    from interp_sot.browser.run import BrowseRequest, BrowseResult, browse
    from interp_sot.browser.site import write_browser

_EXPORTS: dict[str, str] = {
    "BrowserOptions": "interp_sot.browser.data",
    "BrowseRequest": "interp_sot.browser.run",
    "BrowseResult": "interp_sot.browser.run",
    "browse": "interp_sot.browser.run",
    "write_browser": "interp_sot.browser.site",
}

__all__ = ["BrowseRequest", "BrowseResult", "BrowserOptions", "browse", "write_browser"]


__getattr__ = lazy_exports(__name__, _EXPORTS)
