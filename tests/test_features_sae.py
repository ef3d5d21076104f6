"""load_sae: real sae-lens SAEs saved and reloaded, and clear errors for broken folders."""

from __future__ import annotations

import json

import pytest
import torch
from features_helpers import make_sae

from interp_sot.features.encode import encode
from interp_sot.features.sae import load_sae


@pytest.mark.parametrize(("arch", "cfg"), [("jumprelu", {}), ("standard", {}), ("topk", {"k": 3})])
def test_save_and_reload_encodes_identically(tmp_path, arch: str, cfg: dict) -> None:
    sae = make_sae(arch, **cfg)
    sae.save_model(tmp_path / arch)
    loaded = load_sae(tmp_path / arch)
    assert type(loaded) is type(sae) and not loaded.training
    x = torch.randn(30, 32)
    with torch.no_grad():
        assert torch.equal(encode(loaded, x), sae.encode(x))
    assert load_sae(str(tmp_path / arch)).cfg.d_sae == 48


def test_sae_object_is_passed_through() -> None:
    sae = make_sae("jumprelu")
    assert load_sae(sae) is sae


@pytest.fixture
def saved(tmp_path):
    make_sae("jumprelu").save_model(tmp_path / "sae")
    return tmp_path / "sae"


def test_missing_folder_and_files(tmp_path, saved) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_sae(tmp_path / "absent")
    (saved / "cfg.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no cfg\.json"):
        load_sae(saved)


def test_missing_weights(saved) -> None:
    (saved / "sae_weights.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no sae_weights\.safetensors"):
        load_sae(saved)


def test_truncated_weights(saved) -> None:
    path = saved / "sae_weights.safetensors"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_sae(saved)


def test_corrupt_config(saved) -> None:
    (saved / "cfg.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_sae(saved)
    (saved / "cfg.json").write_text(json.dumps({"architecture": "jumprelu"}))
    with pytest.raises(ValueError, match=r"lacks required fields \['d_in', 'd_sae'\]"):
        load_sae(saved)


def test_config_and_weights_disagree(saved) -> None:
    cfg = json.loads((saved / "cfg.json").read_text())
    cfg["d_sae"] = 64
    (saved / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="W_enc has shape"):
        load_sae(saved)


def test_hub_release_needs_an_id() -> None:
    with pytest.raises(ValueError, match="also needs sae_id"):
        load_sae("llama_scope_r1_distill")
    with pytest.raises(TypeError, match="expects an SAE"):
        load_sae(42)
