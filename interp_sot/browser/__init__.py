"""A static, offline HTML feature browser over the statistics, screen and sweeps of a run.

``write_browser(stats_dir, screen=screen_dir, sweep=steer_dir, out=site_dir)`` writes ``site_dir/index.html``
(a sortable, filterable table of every feature) and ``feature.html#N`` pages (top contexts shaded by
activation, activation histogram, judge verdicts, steering samples). See :mod:`interp_sot.browser.site`.
"""

from interp_sot.browser.data import BrowserOptions
from interp_sot.browser.site import write_browser

__all__ = ["BrowserOptions", "write_browser"]
