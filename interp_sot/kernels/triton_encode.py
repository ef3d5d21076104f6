"""Encoder GEMM + bias + threshold with a per-feature count / sum / max epilogue, in one Triton kernel.

The pre-activations ``x @ W_enc + b_enc`` never reach memory: each program computes one ``[BLOCK_M tokens,
BLOCK_N features]`` tile in registers, applies the JumpReLU/ReLU gate (``gate < pre < inf`` fires) and adds the
tile's per-feature firing count, activation sum and maximum to global ``[d_sae]`` tables with atomics. That is the
first-pass statistics (frequency, mean, max) at the cost of the GEMM alone; the full statistics (top-k contexts,
onset shares) need the firings themselves and go through :mod:`interp_sot.features.encode`.

Optional: needs ``triton`` (the ``triton`` extra; a CUDA GPU, or ``TRITON_INTERPRET=1`` on CPU for tests). The
interpreter computes bf16 ``tl.dot`` wrongly, so CPU tests use fp32/fp16 inputs. Atomic float adds make the sums'
last bits depend on the order tiles finish on a GPU; counts and maxima are exact.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch


class EncodeCounts(NamedTuple):
    """Per-feature ``[d_sae]`` results of :func:`encode_counts`."""

    fire_count: torch.Tensor
    """int32: tokens whose pre-activation passed the gate (and is finite)."""
    act_sum: torch.Tensor
    """float32: sum of those pre-activations (= activations, for ReLU/JumpReLU)."""
    act_max: torch.Tensor
    """float32: largest of them; 0.0 if the feature never fired."""


def _kernel() -> Any:
    import triton
    import triton.language as tl

    # Unannotated on purpose: Triton reads a kernel parameter's annotation as its kernel type (``int`` would
    # force i32 and ``const`` a constant pointer), so only the tile sizes carry one (tl.constexpr).
    @triton.jit
    def encode_counts_kernel(  # type: ignore[no-untyped-def]
        x_ptr, w_ptr, b_ptr, gate_ptr, count_ptr, sum_ptr, max_ptr, M, N, K,
        stride_xm, stride_xk, stride_wk, stride_wn,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            kk = k0 + rk
            a = tl.load(x_ptr + rm[:, None] * stride_xm + kk[None, :] * stride_xk,
                        mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
            w = tl.load(w_ptr + kk[:, None] * stride_wk + rn[None, :] * stride_wn,
                        mask=(kk[:, None] < K) & (rn[None, :] < N), other=0.0)
            acc += tl.dot(a, w)
        col = rn < N
        pre = acc + tl.load(b_ptr + rn, mask=col, other=0.0)[None, :]
        gate = tl.load(gate_ptr + rn, mask=col, other=float("inf"))[None, :]
        fire = (pre > gate) & (pre < float("inf")) & (rm[:, None] < M)
        vals = tl.where(fire, pre, 0.0)
        tl.atomic_add(count_ptr + rn, tl.sum(fire.to(tl.int32), axis=0), mask=col)
        tl.atomic_add(sum_ptr + rn, tl.sum(vals, axis=0), mask=col)
        tl.atomic_max(max_ptr + rn, tl.max(vals, axis=0), mask=col)

    return encode_counts_kernel


_KERNEL: Any = None


def encode_counts(x: torch.Tensor, w_enc: torch.Tensor, b_enc: torch.Tensor, gate: torch.Tensor,
                  out: EncodeCounts | None = None, block: tuple[int, int, int] = (64, 64, 32),
                  num_warps: int = 4) -> EncodeCounts:
    """Add the firing counts, sums and maxima of ``x @ w_enc + b_enc`` to ``out`` (new zero tables if None).

    x: ``[M, K]``; w_enc: ``[K, N]`` (same dtype as x: fp16/bf16 on a GPU, fp32/fp16 in the interpreter);
    b_enc, gate: ``[N]`` float32 (gate = ``max(threshold, 0)`` for JumpReLU, zeros for ReLU).
    block: (BLOCK_M, BLOCK_N, BLOCK_K) tile sizes; ``num_warps`` per program (a GPU setting).
    """
    global _KERNEL
    import triton

    if x.dim() != 2 or w_enc.dim() != 2 or x.shape[1] != w_enc.shape[0]:
        raise ValueError(f"x [M, K] and w_enc [K, N] do not fit: {tuple(x.shape)}, {tuple(w_enc.shape)}")
    if x.dtype != w_enc.dtype:
        raise ValueError(f"x ({x.dtype}) and w_enc ({w_enc.dtype}) must share a dtype")
    m, k = x.shape
    n = w_enc.shape[1]
    if b_enc.shape != (n,) or gate.shape != (n,):
        raise ValueError(f"b_enc and gate must be [{n}], got {tuple(b_enc.shape)}, {tuple(gate.shape)}")
    if out is None:
        out = EncodeCounts(torch.zeros(n, dtype=torch.int32, device=x.device),
                           torch.zeros(n, dtype=torch.float32, device=x.device),
                           torch.zeros(n, dtype=torch.float32, device=x.device))
    if _KERNEL is None:
        _KERNEL = _kernel()
    bm, bn, bk = block
    grid = (triton.cdiv(m, bm), triton.cdiv(n, bn))
    _KERNEL[grid](x, w_enc, b_enc.to(torch.float32).contiguous(), gate.to(torch.float32).contiguous(),
                  out.fire_count, out.act_sum, out.act_max, m, n, k,
                  x.stride(0), x.stride(1), w_enc.stride(0), w_enc.stride(1),
                  BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=num_warps)
    return out
