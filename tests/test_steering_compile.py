"""Compile-friendly steering: with a static KV cache and ``torch.compile(fullgraph=True)`` the hook's in-place add
is traced into the decode graph (no graph break), and generation gives the same tokens steered as eager does.

This is what lets CUDA graphs (``mode="reduce-overhead"``, transformers' default compile mode for static caches)
capture the steered decode step on a GPU. The default test compiles with the ``eager`` backend (Dynamo alone: the whole
decode step is traced as one graph, so a graph break or a recompile per token fails it; 15-30 s on 2 cores).
The ``inductor`` variant generates and runs C++ kernels with gcc (12-40 s on 2 cores, depending on load); it runs
only with ``INTERP_SOT_SLOW_TESTS=1``. The GPU check (benchmarks/gpu) compiles with inductor + CUDA graphs.
"""

from __future__ import annotations

import os

import pytest
import torch
from builders import D_MODEL, _build, char_tokenizer

from interp_sot.steering import steer

SLOW = os.environ.get("INTERP_SOT_SLOW_TESTS") == "1"


def _generate(model: torch.nn.Module, batch: dict[str, torch.Tensor], **extra: object) -> torch.Tensor:
    return model.generate(**batch, max_new_tokens=8, do_sample=False, cache_implementation="static",
                          pad_token_id=0, **extra)


@pytest.mark.parametrize("backend", [
    "eager",
    pytest.param("inductor", marks=[pytest.mark.slow,
                                    pytest.mark.skipif(not SLOW, reason="set INTERP_SOT_SLOW_TESTS=1 (12-40 s)")]),
])
def test_static_cache_compiled_generation_steers_exactly_like_eager(backend: str) -> None:
    from transformers import CompileConfig

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model, tok = _build("llama"), char_tokenizer()
    batch = dict(tok(["3+4*2=", "(12-5)/7", "9*9"], return_tensors="pt", padding=True))
    d = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(0))
    strengths = torch.tensor([6.0, 0.0, -6.0])  # one strength per row: a sweep in one batch

    with torch.no_grad():
        plain = _generate(model, batch, disable_compile=True)
        with steer(model, 1, d, strengths):
            eager = _generate(model, batch, disable_compile=True)
        # fullgraph=True: any graph break (e.g. Python-side state in the hook) fails instead of silently splitting
        config = CompileConfig(fullgraph=True, backend=backend, mode=None if backend != "inductor" else "default",
                               dynamic=False)
        config._compile_all_devices = True  # transformers compiles on CUDA only unless told otherwise
        with steer(model, 1, d, strengths) as handle:
            compiled = _generate(model, batch, compile_config=config)
            calls = handle.calls
        # a new handle with other strengths reuses the graph (its offset is a graph input, not a baked constant)
        with steer(model, 1, d, -strengths):
            eager_neg = _generate(model, batch, disable_compile=True)
        with steer(model, 1, d, -strengths):
            compiled_neg = _generate(model, batch, compile_config=config)

    # one graph for all decode steps of both runs: nothing in the hook makes Dynamo recompile per token or handle
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert torch.equal(compiled, eager)
    assert torch.equal(compiled_neg, eager_neg) and not torch.equal(eager_neg[0], eager[0])
    assert not torch.equal(eager[0], plain[0]) and not torch.equal(eager[2], plain[2])  # steering changed rows 0, 2
    assert torch.equal(eager[1], plain[1])  # strength 0 leaves row 1 alone
    assert calls == 1  # the eager prefill; compiled steps are not counted (a Python counter would recompile)
