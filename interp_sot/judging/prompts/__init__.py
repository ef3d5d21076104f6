"""Versioned prompt templates.

Each template is a module-level :class:`PromptTemplate` constant. Its ``version`` is part of every cache key
that stores replies to it, so editing a prompt's wording or its expected reply format means bumping
``version`` — stale cached replies are then never reused.
"""

from interp_sot.judging.prompts.template import PromptTemplate

__all__ = ["PromptTemplate"]
