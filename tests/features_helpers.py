"""Builders and brute-force references for the features tests (real sae-lens SAEs, a char tokenizer)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from interp_sot.features.stats import FeatureStats, TokenInfo

CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?'\n"


def char_tokenizer() -> Any:
    """A one-token-per-character fast tokenizer (vocab 73 < the tiny models' 96) that prepends BOS ``<s>``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for c in CHARS:
        vocab[c] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def make_sae(arch: str, d_in: int = 32, d_sae: int = 48, seed: int = 0, **cfg: Any) -> Any:
    """A real sae-lens inference SAE with random weights tuned to fire on a few percent of random inputs."""
    from sae_lens.saes.gated_sae import GatedSAE, GatedSAEConfig
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    classes = {"jumprelu": (JumpReLUSAE, JumpReLUSAEConfig), "standard": (StandardSAE, StandardSAEConfig),
               "topk": (TopKSAE, TopKSAEConfig), "gated": (GatedSAE, GatedSAEConfig)}
    cls, cfg_cls = classes[arch]
    sae = cls(cfg_cls(d_in=d_in, d_sae=d_sae, **cfg))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (d_in**-0.5 if p.dim() == 2 else 0.3))
        if arch == "jumprelu":
            sae.threshold.copy_(torch.rand(d_sae, generator=g) * 1.5 + 0.5)
            sae.threshold[:3] = -0.5  # negative thresholds: ReLU still zeroes pre in (thr, 0]
        if arch == "standard":
            sae.b_enc.sub_(1.0)
    return sae.eval()


def random_tokens(lengths: list[int], onset_mod: int = 5, first_counted: int = 1) -> TokenInfo:
    """TokenInfo of sequences ``0..len(lengths)-1`` with positions starting at ``first_counted``."""
    seq, pos, start, onset = [], [], [], []
    for s, n in enumerate(lengths):
        seq += [s] * n
        pos += list(range(first_counted, first_counted + n))
        start += list(range(n))
        onset += [(i * 7 + s) % onset_mod for i in range(n)]
    t = torch.tensor
    return TokenInfo(t(seq), t(pos), t(start), t(onset))


def random_acts(n: int, d: int, seed: int = 0, density: float = 0.3, levels: int | None = 6,
                nonfinite: bool = False) -> torch.Tensor:
    """Sparse non-negative activations; ``levels`` quantises values so that ties are common."""
    g = torch.Generator().manual_seed(seed)
    vals = torch.rand(n, d, generator=g) * 5
    if levels:
        vals = torch.ceil(vals * levels / 5) * (5 / levels)
    acts = torch.where(torch.rand(n, d, generator=g) < density, vals, torch.zeros(()))
    if nonfinite:
        acts[3, 1] = float("nan")
        acts[5, 1] = float("inf")
        acts[7, 2] = float("-inf")
        acts[9, :] = float("nan")
    return acts


def brute_force(acts: torch.Tensor, tokens: TokenInfo, k: int, first_n: int = 4, onset_n: int = 4) -> dict:
    """Every statistic from the definitions, one feature and one token at a time."""
    a = acts.double().numpy()
    n, d = a.shape
    seq, pos = tokens.seq_id.numpy(), tokens.pos.numpy()
    start, onset = tokens.start_dist.numpy(), tokens.onset_dist.numpy()
    out = {name: np.zeros(d, np.int64) for name in ("fire_count", "first_n_count", "onset_count", "nonfinite_count")}
    out["act_sum"], out["act_sq_sum"] = np.zeros(d), np.zeros(d)
    out["topk_values"] = np.zeros((d, k), np.float32)
    for name in ("topk_seq", "topk_pos", "topk_onset"):
        out[name] = np.full((d, k), -1, np.int64)
    for f in range(d):
        entries = []
        for i in range(n):
            v = a[i, f]
            if not np.isfinite(v):
                out["nonfinite_count"][f] += 1
                continue
            if v <= 0:
                continue
            out["fire_count"][f] += 1
            out["act_sum"][f] += v
            out["act_sq_sum"][f] += v * v
            out["first_n_count"][f] += start[i] < first_n
            out["onset_count"][f] += onset[i] < onset_n
            entries.append((-np.float32(v), seq[i], pos[i], onset[i]))
        for r, (negv, s, p, o) in enumerate(sorted(entries)[:k]):
            out["topk_values"][f, r], out["topk_seq"][f, r], out["topk_pos"][f, r] = -negv, s, p
            out["topk_onset"][f, r] = o
    return out


INT_FIELDS = ("fire_count", "first_n_count", "onset_count", "nonfinite_count", "topk_seq", "topk_pos", "topk_onset")


def assert_matches(stats: FeatureStats, ref: dict, sums_rtol: float = 1e-12, values_rtol: float = 0.0) -> None:
    """Integer statistics exactly; values exactly unless ``values_rtol`` (a chunked GEMM may round differently)."""
    for name in INT_FIELDS:
        np.testing.assert_array_equal(getattr(stats, name).cpu().numpy(), ref[name], err_msg=name)
    np.testing.assert_allclose(stats.topk_values.cpu().numpy(), ref["topk_values"], rtol=values_rtol, atol=values_rtol,
                               err_msg="topk_values")
    for name in ("act_sum", "act_sq_sum"):
        np.testing.assert_allclose(getattr(stats, name).cpu().numpy(), ref[name], rtol=sums_rtol,
                                   atol=10 * values_rtol, err_msg=name)


def assert_stats_equal(a: FeatureStats, b: FeatureStats, exact_sums: bool = True) -> None:
    assert a.n_tokens == b.n_tokens
    for name in (*INT_FIELDS, "topk_values"):
        assert torch.equal(getattr(a, name).cpu(), getattr(b, name).cpu()), name
    for name in ("act_sum", "act_sq_sum"):
        x, y = getattr(a, name).cpu(), getattr(b, name).cpu()
        assert torch.equal(x, y) if exact_sums else torch.allclose(x, y, rtol=1e-12, atol=0), name


def collect_setup(layer: int = 1) -> tuple[Any, Any, Any]:
    """Tiny Llama (conftest builder), char tokenizer, and a JumpReLU SAE scaled to the model's residual stream."""
    from builders import _build

    model, tok = _build("llama"), char_tokenizer()
    sae = make_sae("jumprelu", d_in=32, d_sae=40, seed=7)
    with torch.no_grad():
        ids = torch.tensor([tok("oh well I see wait yes no maybe we think so right hmm ok")["input_ids"]])
        hidden = model(ids, output_hidden_states=True).hidden_states[layer + 1]
        sae.W_enc /= float(hidden.std())
        sae.b_dec.zero_()
    return model, tok, sae
