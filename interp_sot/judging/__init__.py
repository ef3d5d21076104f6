"""Thin, optional adapters for LLM judging (see ``base.Judge``)."""

from interp_sot.judging.base import Judge, Message

__all__ = ["Judge", "Message"]
