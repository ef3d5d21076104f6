"""The Triton encoder-statistics kernel against a float64 brute force, in Triton's CPU interpreter.

Inputs are small multiples of powers of two, so every product and partial sum is exact in float32 and the result
cannot depend on the order of accumulation: counts, sums and maxima must match exactly. fp32 and fp16 only (the
interpreter computes bf16 ``tl.dot`` wrongly).

TRITON_INTERPRET must be set before triton is imported (triton's own ``tl`` helpers are built at import), and
transformers imports triton early in a test session. So on a machine without CUDA, unless this process was started
with TRITON_INTERPRET=1, one test reruns this file in a child process that is, and the others skip here.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

triton = pytest.importorskip("triton")

from interp_sot.kernels import triton_encode  # noqa: E402

INTERPRETED = type(triton.language.zeros).__name__ == "InterpretedFunction"
IN_CHILD = not torch.cuda.is_available() and not INTERPRETED
direct = pytest.mark.skipif(IN_CHILD, reason="runs in the TRITON_INTERPRET=1 child (test_in_the_interpreter)")


@pytest.mark.skipif(not IN_CHILD, reason="this process can run the kernel directly")
def test_in_the_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                           env=env, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-2000:]
    assert "4 passed" in child.stdout


def exact_inputs(m: int, k: int, n: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, (m, k), generator=g).float()
    w = torch.randint(-4, 5, (k, n), generator=g).float() / 4
    b = torch.randint(-4, 5, (n,), generator=g).float() / 2
    gate = torch.randint(0, 12, (n,), generator=g).float() / 4 + 0.125
    gate[:3] = 0.0  # ReLU-like features
    return x, w, b, gate


def brute_force(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, gate: torch.Tensor) -> tuple[torch.Tensor, ...]:
    pre = x.double() @ w.double() + b.double()
    fire = torch.isfinite(pre) & (pre > gate.double())
    vals = torch.where(fire, pre, 0.0)
    return fire.sum(0).int(), vals.sum(0).float(), vals.max(0).values.float()


@direct
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_counts_sums_and_maxima_equal_brute_force(dtype: torch.dtype) -> None:
    x, w, b, gate = exact_inputs(50, 40, 70, seed=0)  # ragged against 16 x 32 x 16 tiles
    x[7] = float("nan")  # a non-finite token fires nothing
    got = triton_encode.encode_counts(x.to(dtype), w.to(dtype), b, gate, block=(16, 32, 16))
    count, total, top = brute_force(x, w, b, gate)
    assert torch.equal(got.fire_count, count)
    assert torch.equal(got.act_sum, total)
    assert torch.equal(got.act_max, top)
    assert 0 < int(count.sum()) < 50 * 70


@direct
def test_accumulates_over_calls_like_one_call() -> None:
    x, w, b, gate = exact_inputs(40, 24, 33, seed=1)
    both = triton_encode.encode_counts(x, w, b, gate, block=(16, 16, 16))
    split = triton_encode.encode_counts(x[:17], w, b, gate, block=(16, 16, 16))
    triton_encode.encode_counts(x[17:], w, b, gate, out=split, block=(16, 16, 16))
    for a, c in zip(both, split, strict=True):
        assert torch.equal(a, c)


@direct
def test_shape_and_dtype_errors() -> None:
    x, w, b, gate = exact_inputs(4, 8, 6, seed=2)
    with pytest.raises(ValueError, match="do not fit"):
        triton_encode.encode_counts(x[:, :7], w, b, gate)
    with pytest.raises(ValueError, match="share a dtype"):
        triton_encode.encode_counts(x.half(), w, b, gate)
    with pytest.raises(ValueError, match=r"must be \[6\]"):
        triton_encode.encode_counts(x, w, b[:5], gate)
