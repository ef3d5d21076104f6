"""Where a steering hook writes: the site (a layer's output or input) and the positions (scope).

Pure Python, so that configs naming a site (and the command line built from them) load without torch.
"""

from __future__ import annotations

from typing import Literal

Site = Literal["resid_post", "resid_pre"]
"""``resid_post``: the output of the steered decoder layer; ``resid_pre``: its input."""
Scope = Literal["all", "generated"]
"""``all``: prompt and generated tokens; ``generated``: only new tokens."""
SITES: tuple[str, ...] = ("resid_post", "resid_pre")
SCOPES: tuple[str, ...] = ("all", "generated")
