"""The two groups of random control features, named once for sampling, steering records and the analysis.

Kept free of heavy imports: the command line's help text reads these names.
"""

from __future__ import annotations

from typing import Literal

ControlGroup = Literal["conversational", "non_conversational"]
"""A control feature's group: sampled from the conversational pool or from the rest."""
CONVERSATIONAL_GROUP: ControlGroup = "conversational"
NON_CONVERSATIONAL_GROUP: ControlGroup = "non_conversational"
CONTROL_GROUPS: tuple[ControlGroup, ControlGroup] = (CONVERSATIONAL_GROUP, NON_CONVERSATIONAL_GROUP)
