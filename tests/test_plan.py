"""The generation plan against numbers computed by hand for DeepSeek-R1-Distill-Llama-8B."""

from __future__ import annotations

import pytest
from transformers import LlamaConfig

from interp_sot.plan import (
    GIB,
    ModelShape,
    PlanError,
    device_memory,
    largest_batch,
    largest_batch_tokens,
    plan_generation,
    plan_stats,
    require_fit,
)

R1_DISTILL_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False, head_dim=128)

# By hand: per layer q, o 4096^2 each; k, v 4096 x (8 x 128) each; MLP 3 x 4096 x 14336; two RMSNorms 4096 each.
PER_LAYER = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096
PARAMS_8B = 32 * PER_LAYER + 2 * 128256 * 4096 + 4096  # + untied embedding and lm_head + final norm


@pytest.fixture(scope="module")
def shape_8b() -> ModelShape:
    return ModelShape.from_config(LlamaConfig(**R1_DISTILL_8B))


def test_shape_from_the_8b_config(shape_8b: ModelShape) -> None:
    assert PARAMS_8B == 8_030_261_248
    assert shape_8b == ModelShape(n_layers=32, n_kv_heads=8, head_dim=128, hidden_size=4096,
                                  intermediate_size=14336, vocab_size=128256, n_params=PARAMS_8B)


def test_paper_sweep_plan_by_hand(shape_8b: ModelShape) -> None:
    plan = plan_generation(shape_8b, rows=5 * 1024, batch_size=64, prompt_tokens=150, max_new_tokens=4096,
                           dtype="bfloat16", seconds_per_step=0.04)
    assert (plan.batches, plan.seq_len, plan.decode_steps) == (80, 4246, 80 * 4096)
    assert plan.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2 == 128 * 1024
    assert plan.kv_cache_bytes == 131072 * 64 * 4246 == 35_618_029_568  # 33.17 GiB
    assert plan.weights_bytes == PARAMS_8B * 2
    assert plan.workspace_bytes == 64 * 128256 * 4 + 64 * 150 * 14336 * 2 * 2
    assert plan.total_bytes == plan.kv_cache_bytes + plan.weights_bytes + plan.workspace_bytes
    assert plan.hours == pytest.approx(80 * 4096 * 0.04 / 3600)
    assert plan.fits and plan.device_bytes is None
    text = plan.describe()
    assert "80 batches of 64" in text and "KV cache 33.17 GiB (128 KiB/token)" in text and "3.6 h" in text
    odd = plan_generation(shape_8b, rows=9600, batch_size=64, prompt_tokens=150, max_new_tokens=4096)
    assert odd.batches == 150


def test_refuses_a_batch_that_cannot_fit(shape_8b: ModelShape) -> None:
    kwargs = dict(rows=1024, prompt_tokens=150, max_new_tokens=4096, dtype="bfloat16", device_bytes=40 * GIB)
    plan = plan_generation(shape_8b, batch_size=64, **kwargs)  # type: ignore[arg-type]
    assert not plan.fits
    best = largest_batch(plan)
    assert plan_generation(shape_8b, batch_size=best, **kwargs).fits  # type: ignore[arg-type]
    assert not plan_generation(shape_8b, batch_size=best + 1, **kwargs).fits  # type: ignore[arg-type]
    with pytest.raises(PlanError, match=rf"batch 64 x 4,246 tokens needs 48\.\d\d GiB \(KV cache 33\.17 \+ .* "
                                        rf"device has 40\.00 GiB available: use a batch size of at most {best}$"):
        require_fit(plan)
    tiny = plan_generation(shape_8b, batch_size=1, **{**kwargs, "device_bytes": 10 * GIB})  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="not even one row fits"):
        require_fit(tiny)
    require_fit(plan_generation(shape_8b, batch_size=8, **kwargs))  # type: ignore[arg-type]


def test_shape_of_a_loaded_model_and_cpu_memory(tiny_llama: object) -> None:
    shape = ModelShape.from_model(tiny_llama)
    cfg = tiny_llama.config  # type: ignore[attr-defined]
    assert (shape.n_layers, shape.n_kv_heads, shape.head_dim) == (
        cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads)
    assert shape.n_params == sum(p.numel() for p in tiny_llama.parameters())  # type: ignore[attr-defined]
    assert shape.n_params == ModelShape.from_config(cfg).n_params  # meta-device count agrees
    assert device_memory("cpu") is None  # CPU: the caller passes device_bytes
    with pytest.raises(ValueError, match="headroom"):
        device_memory("cpu", headroom=1.5)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        plan_generation(shape, rows=1, batch_size=0, prompt_tokens=1, max_new_tokens=1)
    with pytest.raises(ValueError, match="unknown dtype"):
        plan_generation(shape, rows=1, batch_size=1, prompt_tokens=1, max_new_tokens=1, dtype="float8")


def test_stats_plan_by_hand(shape_8b: ModelShape) -> None:
    plan = plan_stats(shape_8b, tokens=10_000_000, batch_tokens=8192, d_sae=32_768, chunk_size=1024, dtype="bfloat16")
    assert plan.batches == 1221  # ceil(10M / 8192)
    assert plan.weights_bytes == PARAMS_8B * 2
    assert plan.sae_bytes == 2 * 4096 * 32_768 * 4 == GIB
    assert plan.activation_bytes == 8192 * (4 * 4096 + 3 * 14336) * 2
    assert plan.encode_bytes == 1024 * 32_768 * (4 + 1)
    assert plan.fits and "1,221 batches" in plan.describe()
    kwargs = dict(tokens=10_000_000, d_sae=32_768, chunk_size=1024, dtype="bfloat16", device_bytes=17 * GIB)
    small = plan_stats(shape_8b, batch_tokens=8192, **kwargs)  # type: ignore[arg-type]
    assert not small.fits
    best = largest_batch_tokens(small)
    assert plan_stats(shape_8b, batch_tokens=best, **kwargs).fits  # type: ignore[arg-type]
    assert not plan_stats(shape_8b, batch_tokens=best + 1, **kwargs).fits  # type: ignore[arg-type]
    with pytest.raises(PlanError, match=rf"batches of 8,192 tokens needs 17\.\d\d GiB \(weights 14\.96 \+ SAE 1\.00 .*"
                                        rf"device has 17\.00 GiB available: use --batch-tokens of at most {best:,}$"):
        require_fit(small)


def test_kv_formula_matches_transformers_cache(tiny_llama: object, prompt_batch: dict[str, object]) -> None:
    """The cache transformers really holds after generate: layers x (K, V) x [batch, kv_heads, seq, head_dim]."""
    import torch

    ids = prompt_batch["input_ids"]
    batch, prompt = ids.shape  # type: ignore[attr-defined]
    new = 5
    with torch.no_grad():
        out = tiny_llama.generate(**prompt_batch, max_new_tokens=new, min_new_tokens=new, do_sample=False,  # type: ignore[attr-defined]
                                  return_dict_in_generate=True, use_cache=True, pad_token_id=0)
    cache = out.past_key_values
    held = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    plan = plan_generation(ModelShape.from_model(tiny_llama), rows=batch, batch_size=batch, prompt_tokens=prompt,
                           max_new_tokens=new, dtype=str(next(tiny_llama.parameters()).dtype))  # type: ignore[attr-defined]
    # The last sampled token is never fed back, so the cache ends one short of prompt + max_new_tokens.
    assert held == plan.kv_bytes_per_token * batch * (plan.seq_len - 1)
    assert plan.kv_cache_bytes >= held
