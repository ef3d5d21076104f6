"""Fixtures over scripts/make_hub_standins.py: the paper's Hub assets as tiny stand-ins in a temporary HF_HOME.

The builder lives in scripts/ (users run it to check their own setup before renting a GPU); tests import it from
there so test and script build the very same cache. Import ``hub_standins_fixture`` / ``standin_cache_fixture``
into a test module to use the fixtures ``hub_standins`` / ``standin_cache``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_hub_standins.py"


def _load_builder() -> ModuleType:
    name = "make_hub_standins"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


builder = _load_builder()


@pytest.fixture(scope="session", name="hub_standins")
def hub_standins_fixture(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``Standins`` for a session-wide stand-in HF_HOME (built once, ~10 s: SmolLM2's tokenizer, 32k-feature SAE)."""
    return builder.build_standins(tmp_path_factory.mktemp("standin_hf_home"))


def use_hub_cache(monkeypatch: pytest.MonkeyPatch, hf_home: Path) -> None:
    """Point this process's huggingface_hub at ``hf_home`` offline (it reads the env only at import)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(name="standin_cache")
def standin_cache_fixture(hub_standins: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stand-in HF_HOME made this process's offline hub cache for one test."""
    use_hub_cache(monkeypatch, hub_standins.hf_home)
    yield hub_standins
