"""SAE encoding: exact parity with sae-lens, and the fused chunked pass that feeds :class:`FeatureStats`.

For the architectures below, ``encode(sae, x)`` repeats sae-lens's arithmetic op for op, so it is
bit-identical to ``sae.encode(x)``: ``process_sae_in`` (dtype cast, ``hook_sae_input``, run-time
normalisation, ``b_dec`` subtraction when ``apply_b_dec_to_input``), then ``sae_in @ W_enc + b_enc``, then

* ``standard``: ReLU;
* ``jumprelu``: ``relu(pre) * (pre > threshold)`` (Llama Scope's threshold is ``exp(log_jumprelu_threshold)``,
  already exponentiated by sae-lens's loader; dataset-wise input scaling is folded into ``W_enc``/``b_dec``);
* ``topk``: optional ``pre * ||W_dec||`` (``rescale_acts_by_decoder_norm``), keep the k largest per token, ReLU.

Any other architecture, an SAE with hooks on its activations, or ``hook_z`` reshaping falls back to
``sae.encode`` (correct, just not fused).

The fused pass (:class:`FusedEncoder`, :func:`encode_stats`) runs one GEMM per chunk of tokens into a reused
``[chunk, d_sae]`` buffer, adds the bias in place, and extracts only the firings (``pre > max(threshold, 0)``
via one compare and one ``nonzero``; ``topk`` for TopK SAEs) before handing them to
:meth:`FeatureStats.update_sparse`. Only that one block (plus a bool mask of the same shape) is ever alive.

On CUDA the encoder runs sync-free by default (``sync_free``): ``nonzero`` makes the host wait for the
device once per chunk, so instead each block goes to :meth:`FeatureStats.update_dense`, which uses only
fixed-shape ops (column sums, a per-feature top-k of the block, a fixed-size merge of the top-k table). The
statistics are the same (counts and top-k bit for bit; float64 sums to ~1e-16). On CPU the sparse path is
faster, since it touches only the firings.

Non-finite values: a token whose SAE input is non-finite, or large enough that the GEMM could overflow
(``||x||_1 * max|W_enc| + max|b_enc|`` near the dtype's max), is re-encoded densely; its NaN/inf
activations are counted per feature in ``nonfinite_count`` and left out of every other statistic. The
encoder counts the affected tokens over the whole run, and :meth:`FusedEncoder.report_nonfinite` logs one
warning with the totals (``encode_stats`` calls it when it made the encoder itself).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from interp_sot.features.collect_config import DEFAULT_CHUNK
from interp_sot.features.stats import FeatureStats, TokenInfo, firings
from interp_sot.features.threads import serial_cpu

if TYPE_CHECKING:  # sae-lens has no type information: LensSAE names the class, mypy sees Any
    from sae_lens import SAE as LensSAE

    from interp_sot.protocols import SparseAutoencoder

logger = logging.getLogger(__name__)

FUSED_ARCHITECTURES = ("standard", "jumprelu", "topk")


def fused_architecture(sae: SparseAutoencoder) -> str | None:
    """The architecture name if the fused path reproduces this SAE's ``encode`` exactly, else None (the fused
    path reads sae-lens internals: ``process_sae_in``, ``activation_fn``, ``threshold``, the activation hooks)."""
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE
    from sae_lens.saes.standard_sae import StandardSAE
    from sae_lens.saes.topk_sae import TopKSAE

    arch = {StandardSAE: "standard", JumpReLUSAE: "jumprelu", TopKSAE: "topk"}.get(type(sae))
    if arch is None or getattr(sae.cfg, "reshape_activations", "none") != "none":
        return None
    lens = _lens_sae(sae)
    for hook in (lens.hook_sae_acts_pre, lens.hook_sae_acts_post):
        if hook._forward_hooks or hook._forward_pre_hooks:
            return None
    return arch


def _lens_sae(sae: SparseAutoencoder) -> LensSAE:
    """``sae`` as the sae-lens SAE it is on the fused path, whose internals that path reads."""
    from sae_lens import SAE

    if not isinstance(sae, SAE):
        raise TypeError(f"the fused encoder needs a sae-lens SAE, got {type(sae).__name__}")
    return sae


class FusedEncoder:
    """Chunked SAE encoder that yields firings ``(rows, features, values)`` instead of dense blocks."""

    def __init__(self, sae: SparseAutoencoder, chunk_size: int = DEFAULT_CHUNK,
                 compute_dtype: torch.dtype | None = None,
                 sync_free: bool | None = None):
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.sae = sae
        self.chunk_size = chunk_size
        self.arch = fused_architecture(sae)
        self.d_in, self.d_sae = int(sae.cfg.d_in), int(sae.cfg.d_sae)
        self.sync_free = (sae.W_enc.device.type == "cuda") if sync_free is None else sync_free
        """Dense fixed-shape accumulation without a host-device sync per chunk (default on CUDA)."""
        self._buf: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None
        self._nonfinite_tokens: torch.Tensor | int = 0
        if self.arch is None:
            logger.info("SAE %s is not fused (architecture/hooks); using sae.encode per chunk", type(sae).__name__)
            return
        self.lens = _lens_sae(sae)
        """The same SAE, as the sae-lens class whose internals the fused path reads."""
        with torch.no_grad():
            w = sae.W_enc.detach()
            if not bool(torch.isfinite(w).all()) or not bool(torch.isfinite(sae.b_enc.detach()).all()):
                raise ValueError("SAE encoder weights (W_enc/b_enc) contain NaN or inf")
            self.compute_dtype = compute_dtype or w.dtype
            self.w = w if self.compute_dtype == w.dtype else w.to(self.compute_dtype)
            self.out_dtype = torch.promote_types(w.dtype, torch.float32) if compute_dtype else w.dtype
            self.b = sae.b_enc.detach().to(self.out_dtype)
            self.gate = (self.lens.threshold.detach().clamp_min(0).to(self.out_dtype) if self.arch == "jumprelu"
                         else None)
            self.dec_norm = None
            if self.arch == "topk" and self.lens.cfg.rescale_acts_by_decoder_norm:
                self.dec_norm = sae.W_dec.detach().norm(dim=-1).to(self.out_dtype)
            scale = float(self.dec_norm.max()) if self.dec_norm is not None else 1.0
            self._w_absmax = float(w.abs().max()) * scale
            self._b_absmax = float(self.b.abs().max()) * scale
            self._limit = min(torch.finfo(self.compute_dtype).max, torch.finfo(self.out_dtype).max) / 4

    # -- building blocks -----------------------------------------------------------------------------
    def _buffers(self, rows: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        cap = max(rows, self.chunk_size)
        if self._buf is None or self._buf.shape[0] < rows or self._buf.device != device:
            self._buf = torch.empty(cap, self.d_sae, dtype=self.out_dtype, device=device)
            self._mask = torch.empty(cap, self.d_sae, dtype=torch.bool, device=device)
        assert self._mask is not None
        return self._buf[:rows], self._mask[:rows]

    @torch.no_grad()
    def preacts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x: [c, d_in]`` -> (``sae_in: [c, d_in]``, ``pre: [c, d_sae]``); ``pre`` is a reused buffer."""
        sae_in = self.lens.process_sae_in(x)
        pre, _ = self._buffers(sae_in.shape[0], sae_in.device)
        a = sae_in if sae_in.dtype == self.compute_dtype else sae_in.to(self.compute_dtype)
        if self.compute_dtype == self.out_dtype:
            torch.mm(a, self.w, out=pre)
        elif a.is_cuda:  # bf16/fp16 inputs, fp32 accumulation and output
            pre.copy_(torch.mm(a, self.w, out_dtype=self.out_dtype))
        else:
            pre.copy_(torch.mm(a, self.w))
        pre.add_(self.b)
        if self.dec_norm is not None:
            pre.mul_(self.dec_norm)
        return sae_in, pre

    @torch.no_grad()
    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """Dense activations from pre-activations, exactly as sae-lens computes them."""
        if self.arch == "jumprelu":
            return self.lens.activation_fn(pre) * (pre > self.lens.threshold).to(pre.dtype)
        return self.lens.activation_fn(pre)

    def _risky_rows(self, sae_in: torch.Tensor) -> torch.Tensor | None:
        """Rows whose pre-activations could be non-finite: |pre| <= ||x||_1 max|W| + max|b| must stay finite.

        One cheap whole-chunk test first (max|x| * d_in bounds every row's ||x||_1); rows only if it fails.
        """
        with serial_cpu(sae_in.device):
            chunk_bound = float(torch.linalg.vector_norm(sae_in, float("inf"))) * sae_in.shape[1] * self._w_absmax
        chunk_bound += self._b_absmax
        if chunk_bound < self._limit:  # False for NaN/inf too
            return None
        bound = sae_in.abs().to(torch.float32).sum(1) * self._w_absmax + self._b_absmax
        risky = ~(bound < self._limit)
        return risky.nonzero().squeeze(1) if bool(risky.any()) else None

    # -- the fused chunk -----------------------------------------------------------------------------
    @torch.no_grad()
    def firings(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``x: [c, d_in]`` -> (rows, features, values, nonfinite ``[d_sae]`` or None), rows in order."""
        if self.arch is None:
            acts = self.sae.encode(x)
            out = firings(acts)
            if out[3] is not None:
                self._nonfinite_tokens += int((~torch.isfinite(acts)).any(1).sum())
            return out
        sae_in, pre = self.preacts(x)
        rr = self._risky_rows(sae_in)
        extra = None
        if rr is not None:
            acts = self.activate(pre[rr].clone())
            r_rows, r_feats, r_vals, nonfinite = firings(acts)
            extra = (rr[r_rows], r_feats, r_vals)
            pre[rr] = float("-inf")  # no firings from these rows in the main pass
            if nonfinite is not None:
                self._nonfinite_tokens += int((~torch.isfinite(acts)).any(1).sum())
        else:
            nonfinite = None
        if self.arch == "topk":
            k = int(self.lens.cfg.k)
            vals, idx = torch.topk(pre, k=k, dim=-1, sorted=False)
            with serial_cpu(vals.device):
                vals = vals.relu()
                keep = (vals > 0).view(-1)
                rows = torch.arange(pre.shape[0], device=pre.device).repeat_interleave(k)[keep]
                feats, vals = idx.reshape(-1)[keep], vals.reshape(-1)[keep]
        else:
            _, mask = self._buffers(pre.shape[0], pre.device)
            torch.gt(pre, self.gate if self.gate is not None else 0.0, out=mask)
            flat = mask.view(-1).nonzero().squeeze(1)
            with serial_cpu(flat.device):
                rows = torch.div(flat, self.d_sae, rounding_mode="floor")
                feats, vals = flat - rows * self.d_sae, pre.view(-1)[flat]
        if extra is not None:
            rows, feats, vals = (torch.cat([a, b]) for a, b in zip((rows, feats, vals), extra, strict=True))
            order = torch.argsort(rows * self.d_sae + feats)
            rows, feats, vals = rows[order], feats[order], vals[order]
        return rows, feats, vals, nonfinite

    @torch.no_grad()
    def add_dense(self, x: torch.Tensor, tokens: TokenInfo, stats: FeatureStats) -> None:
        """Encode ``x: [c, d_in]`` and add it to ``stats`` through the sync-free dense path."""
        _, pre = self.preacts(x)
        if self.arch == "topk":
            bad = stats.update_dense(self.activate(pre), tokens)
        else:
            bad = stats.update_dense(pre, tokens, self.gate if self.gate is not None else 0.0, preacts=True)
        self._nonfinite_tokens = self._nonfinite_tokens + bad

    def report_nonfinite(self) -> int:
        """Log one warning for the whole run if any token had NaN/inf activations; returns that token count.

        Call once at the end of a run (it reads the device-side count: one sync); the counts restart from zero.
        """
        tokens = int(self._nonfinite_tokens)
        self._nonfinite_tokens = 0
        if tokens:
            dtype = str(getattr(self, "compute_dtype", "SAE")).replace("torch.", "")
            logger.warning("%d token(s) had NaN/inf SAE activations (non-finite input, or input large enough to "
                           "overflow the %s encoder); their NaN/inf activations are counted in nonfinite_count "
                           "and left out of every other statistic", tokens, dtype)
        return tokens


def encode(sae: SparseAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """``x: [..., d_in]`` -> ``[..., d_sae]``, bit-identical to ``sae.encode(x)`` (see the module docstring)."""
    if fused_architecture(sae) is None:
        return sae.encode(x)
    if x.shape[-1] != int(sae.cfg.d_in):
        raise ValueError(f"activation width {x.shape[-1]} != SAE d_in {sae.cfg.d_in}")
    with torch.no_grad():
        flat = x.reshape(-1, x.shape[-1])
        enc = FusedEncoder(sae, chunk_size=max(flat.shape[0], 1))
        _, pre = enc.preacts(flat)
        return enc.activate(pre).reshape(*x.shape[:-1], enc.d_sae)


def encode_stats(
    sae: SparseAutoencoder,
    x: torch.Tensor,
    tokens: TokenInfo,
    stats: FeatureStats,
    chunk_size: int = DEFAULT_CHUNK,
    encoder: FusedEncoder | None = None,
) -> None:
    """Encode ``x: [n, d_in]`` chunk by chunk and add every firing to ``stats`` (rows are ``tokens``)."""
    if x.dim() != 2 or x.shape[1] != int(sae.cfg.d_in):
        raise ValueError(f"activations must be [n, d_in={sae.cfg.d_in}], got {tuple(x.shape)}")
    if x.shape[0] != tokens.n:
        raise ValueError(f"{x.shape[0]} activation rows but {tokens.n} tokens")
    if stats.d_sae != int(sae.cfg.d_sae):
        raise ValueError(f"stats track {stats.d_sae} features but the SAE has d_sae={sae.cfg.d_sae}")
    enc = encoder or FusedEncoder(sae, chunk_size)
    device = sae.W_enc.device
    dense = enc.sync_free and enc.arch is not None
    with torch.no_grad():
        for start in range(0, x.shape[0], enc.chunk_size):
            stop = min(start + enc.chunk_size, x.shape[0])
            if dense:
                enc.add_dense(x[start:stop].to(device), tokens.slice(start, stop), stats)
                continue
            rows, feats, vals, nonfinite = enc.firings(x[start:stop].to(device))
            stats._add_firings(rows, feats, vals, tokens.slice(start, stop), nonfinite)
    if encoder is None:
        enc.report_nonfinite()
