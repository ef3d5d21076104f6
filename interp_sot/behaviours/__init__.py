"""Coding reasoning traces for behaviours: a heuristic marker coder and LLM-judge coding schemes."""

from interp_sot.behaviours.markers import DEFAULT_MARKERS, MarkerCoder, MarkerCoding, code_markers
from interp_sot.behaviours.prompts import BALES, BALES_GROUPS, COGNITIVE, CONVERSATIONAL, SCHEMES, CodingScheme

__all__ = [
    "BALES",
    "BALES_GROUPS",
    "COGNITIVE",
    "CONVERSATIONAL",
    "DEFAULT_MARKERS",
    "SCHEMES",
    "CodingScheme",
    "MarkerCoder",
    "MarkerCoding",
    "code_markers",
]
