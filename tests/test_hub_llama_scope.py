"""The paper's SAE and model loaded offline through the real paths (sae-lens's Llama Scope R1 loader, transformers'
``from_pretrained``) from a stand-in hub cache, checked against the raw files by hand.

References: sae-lens ``llama_scope_r1_distill_sae_huggingface_loader`` (W_enc = encoder.weight.T, W_dec =
decoder.weight.T, threshold = exp(log_jumprelu_threshold)) and ``SAE.from_pretrained``'s fold of the release's
``norm_scaling_factor`` (W_enc *= f, W_dec /= f, b_dec /= f), f = 5.5293 for ``l15r_800m_slimpajama``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hub_standins import (  # noqa: F401 - fixtures
    builder,
    hub_standins_fixture,
    standin_cache_fixture,
    use_hub_cache,
)
from safetensors.torch import load_file

from interp_sot.features.encode import FusedEncoder, encode
from interp_sot.features.sae import load_sae
from interp_sot.steering import feature_direction, steer

FACTOR = builder.NORM_SCALING_FACTOR


def _raw(standins: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    folder = standins.snapshots[builder.SAE_REPO] / builder.SAE_FOLDER
    cfg = json.loads((folder / "config.json").read_text())
    return load_file(str(folder / "sae_weights.safetensors")), cfg


@pytest.fixture
def paper_sae(standin_cache: Any) -> Any:
    return load_sae(builder.SAE_RELEASE, builder.SAE_ID)


def test_norm_factor_is_sae_lens_table_value() -> None:
    from sae_lens.loading.pretrained_saes_directory import get_norm_scaling_factor

    assert get_norm_scaling_factor(builder.SAE_RELEASE, builder.SAE_ID) == FACTOR
    assert FACTOR == pytest.approx(4096**0.5 / 11.5746, rel=1e-4)


def test_sae_loads_through_sae_lens_and_folds_normalisation(standin_cache: Any, paper_sae: Any) -> None:
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE

    raw, cfg = _raw(standin_cache)
    sae = paper_sae
    assert type(sae) is JumpReLUSAE
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (cfg["d_model"], 32_768) and sae.cfg.d_sae > builder.PAPER_FEATURE
    assert sae.cfg.metadata.hook_name == "blocks.15.hook_resid_post"
    assert sae.cfg.normalize_activations == "none"  # folded, so encode takes the raw residual
    assert not sae.cfg.apply_b_dec_to_input
    torch.testing.assert_close(sae.W_enc, raw["encoder.weight"].T * FACTOR, rtol=0, atol=0)
    torch.testing.assert_close(sae.W_dec, raw["decoder.weight"].T / FACTOR, rtol=0, atol=0)
    torch.testing.assert_close(sae.b_dec, raw["decoder.bias"] / FACTOR, rtol=0, atol=0)
    torch.testing.assert_close(sae.b_enc, raw["encoder.bias"], rtol=0, atol=0)
    torch.testing.assert_close(sae.threshold, raw["log_jumprelu_threshold"].exp(), rtol=0, atol=0)


def test_fused_encode_matches_sae_lens_and_hand_reference(standin_cache: Any, paper_sae: Any) -> None:
    raw, cfg = _raw(standin_cache)
    g = torch.Generator().manual_seed(0)
    avg = float(raw["dataset_average_activation_norm.in"])
    x = torch.randn(40, cfg["d_model"], generator=g) * avg / cfg["d_model"] ** 0.5 * 3  # raw-residual scale
    ours = encode(paper_sae, x)
    assert torch.equal(ours, paper_sae.encode(x))  # the fused path is op-for-op sae-lens
    # By hand from the raw files: normalise the input dataset-wise (sqrt(d)/avg = the table's factor), JumpReLU.
    pre = (x * FACTOR) @ raw["encoder.weight"].T + raw["encoder.bias"]
    ref = torch.where(pre > raw["log_jumprelu_threshold"].exp(), pre, torch.zeros_like(pre))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert 0 < int((ours > 0).sum()) < ours.numel() // 2
    rows, feats, vals, _ = FusedEncoder(paper_sae, chunk_size=16).firings(x)
    dense = torch.zeros_like(ours)
    dense[rows, feats] = vals
    assert torch.equal(dense, ours)


def test_decoder_norm_gating_flag_is_ignored_by_sae_lens(standin_cache: Any, paper_sae: Any) -> None:
    """The original trainer (Language-Model-SAEs) with ``sparsity_include_decoder_norm: true`` gates JumpReLU on
    ``pre * ||W_dec[f]||`` (in its normalised space) and returns ``pre``; sae-lens reads only d_model,
    expansion_factor and hook_point_in from config.json and gates on ``pre > threshold``. The two agree exactly
    when the released decoder rows have unit norm in the normalised space (Llama Scope's post-processing); here the
    stand-in's rows do not, to show which rule the loaded SAE follows."""
    raw, cfg = _raw(standin_cache)
    assert cfg["sparsity_include_decoder_norm"] is True
    x = torch.randn(64, cfg["d_model"], generator=torch.Generator().manual_seed(1)) * 2
    pre = (x * FACTOR) @ raw["encoder.weight"].T + raw["encoder.bias"]
    theta = raw["log_jumprelu_threshold"].exp()
    dec_norm = raw["decoder.weight"].norm(dim=0)  # ||W_dec[f]|| in the normalised (training) space
    sae_lens_gate, trainer_gate = pre > theta, pre * dec_norm > theta
    assert bool((sae_lens_gate != trainer_gate).any())  # the stand-in separates the two rules
    got = paper_sae.encode(x) > 0
    assert torch.equal(got, sae_lens_gate & (pre > 0))


def test_unit_direction_adds_a_vector_of_norm_s(standin_cache: Any, paper_sae: Any) -> None:
    from interp_sot.models import load_model

    model, tok = load_model(builder.PAPER_MODEL, dtype=torch.float32)
    assert model.config.num_hidden_layers == 32
    d = feature_direction(paper_sae, builder.PAPER_FEATURE, "unit")
    w = paper_sae.W_dec[builder.PAPER_FEATURE]
    torch.testing.assert_close(d, w / w.norm())
    ids = tok(["Using the numbers 3, 5, 7", "Oh, wait"], return_tensors="pt", padding=True)
    with torch.no_grad():
        base = model(**ids, output_hidden_states=True).hidden_states[16]  # output of decoder layer 15
        for s in (-10.0, 5.0):
            with steer(model, 15, d, strength=s):
                out = model(**ids, output_hidden_states=True).hidden_states[16]
            delta = out - base
            torch.testing.assert_close(delta, (s * d).expand_as(delta), rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(delta.norm(dim=-1), torch.full(delta.shape[:2], abs(s)), rtol=1e-5, atol=1e-4)
    # The "sae" convention adds s * W_dec[f] of the *folded* SAE: its norm is ||raw row|| / factor per unit.
    raw, _ = _raw(standin_cache)
    sae_dir = feature_direction(paper_sae, builder.PAPER_FEATURE, "sae")
    raw_norm = float(raw["decoder.weight"][:, builder.PAPER_FEATURE].norm())
    assert float(sae_dir.norm()) == pytest.approx(raw_norm / FACTOR)


def test_feature_index_beyond_d_sae_is_refused(paper_sae: Any) -> None:
    with pytest.raises(ValueError, match=r"feature index 32768 out of range: the SAE has features 0\.\.32767"):
        feature_direction(paper_sae, 32_768, "unit")


def _sae_only_cache(tmp_path: Path, standins: Any, drop: str) -> Path:
    folder = standins.snapshots[builder.SAE_REPO] / builder.SAE_FOLDER
    files = {f"{builder.SAE_FOLDER}/{p.name}": p.read_bytes() for p in folder.iterdir() if p.name != drop}
    builder.put_repo(tmp_path, "model", builder.SAE_REPO, files)
    return tmp_path


def test_release_missing_config_json_names_repo_folder_and_offline(
    tmp_path: Path, hub_standins: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_hub_cache(monkeypatch, _sae_only_cache(tmp_path, hub_standins, "config.json"))
    with pytest.raises(FileNotFoundError) as err:
        load_sae(builder.SAE_RELEASE, builder.SAE_ID)
    msg = str(err.value)
    for part in (builder.SAE_REPO, builder.SAE_FOLDER, "HF_HUB_OFFLINE", "config.json"):
        assert part in msg


def test_local_llama_scope_folder_without_config_is_explained(tmp_path: Path, hub_standins: Any) -> None:
    src = hub_standins.snapshots[builder.SAE_REPO] / builder.SAE_FOLDER
    folder = tmp_path / "L15R"
    folder.mkdir()
    (folder / "sae_weights.safetensors").write_bytes((src / "sae_weights.safetensors").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"no cfg\.json: load Llama Scope SAEs through their sae-lens release"):
        load_sae(folder)
    (folder / "config.json").write_bytes((src / "config.json").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"config\.json is a Language-Model-SAEs \(Llama Scope\) config"):
        load_sae(folder)
