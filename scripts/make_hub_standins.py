"""Tiny offline stand-ins for the paper's Hub assets, written into a Hugging Face cache (``HF_HOME``).

Why: the paper's setting (DeepSeek-R1-Distill-Llama-8B, the Llama Scope R1 layer-15 SAE, Countdown, SlimPajama,
Neuronpedia labels) only ever runs on a rented GPU, where a crash at hour two costs money. Every one of those code
paths reads through the hub cache, so a cache that holds small stand-ins under the *real* ids and file layouts runs
the real code (transformers' ``from_pretrained``, sae-lens's Llama Scope loader, the dataset readers) end to end on
a laptop with ``HF_HUB_OFFLINE=1``: run the README's GPU runbook against it with ``--device cpu --dtype float32``
and small sizes before renting the GPU.

What is written (``hub/`` exactly as ``huggingface_hub`` leaves it: ``{models,datasets}--org--name/`` with
``blobs/``, ``snapshots/<rev>/`` symlinks and ``refs/main``):

- model ``deepseek-ai/DeepSeek-R1-Distill-Llama-8B``: the real Llama config (32 layers, 4:1 grouped-query attention,
  llama3 RoPE, untied embeddings, bf16) shrunk in width, random weights, SmolLM2's tokenizer;
- ``fnlp/Llama-Scope-R1-Distill``, folder ``800M-Slimpajama-0-OpenR1-Math-220k/L15R/``: ``config.json`` with the
  Language-Model-SAEs fields sae-lens reads (``d_model``, ``expansion_factor``, ``hook_point_in``) and the rest of
  the original trainer's config (``sparsity_include_decoder_norm`` ...), and ``sae_weights.safetensors`` with the
  real keys (``encoder.weight [d_sae, d_model]``, ``decoder.weight [d_model, d_sae]``, ``encoder.bias``,
  ``decoder.bias``, ``log_jumprelu_threshold``, ``dataset_average_activation_norm.in/.out``) at the real
  d_sae = 32,768, so feature 30939 exists; thresholds are set so each feature fires on ~1% of the stand-in model's
  layer-15 tokens after sae-lens's normalisation fold;
- dataset ``Jiayi-Pan/Countdown-Tasks-3to4`` (``data/train-00000-of-00001.parquet``, ``target`` + ``nums``), long
  enough that TinyZero's test split (rows 327,680..328,703) exists, kept small by cycling a pool of solvable problems;
- dataset ``DKYoon/SlimPajama-6B`` (a public SlimPajama sample; ``text`` + ``meta``) holding passages of the
  project's shipped screening corpus, for the statistics step;
- a Neuronpedia bulk export (``neuronpedia/v1/deepseek-r1-distill-llama-8b/15-llamascope-slimpj-res-32k/
  {explanations,features}/batch-N.jsonl.gz``, outside ``HF_HOME``'s hub folder) for batches 0 and 30 (30939's).

Usage::

    python scripts/make_hub_standins.py --hf-home /tmp/standin-hf [--check]
    HF_HOME=/tmp/standin-hf HF_HUB_OFFLINE=1 interp-sot steer --model deepseek-ai/DeepSeek-R1-Distill-Llama-8B ...

Random weights: outputs are meaningless, only the plumbing (ids, layouts, shapes, loaders, run directories) is real.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAPER_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
SAE_REPO = "fnlp/Llama-Scope-R1-Distill"
SAE_FOLDER = "800M-Slimpajama-0-OpenR1-Math-220k/L15R"
SAE_RELEASE, SAE_ID = "llama_scope_r1_distill", "l15r_800m_slimpajama"
COUNTDOWN = "Jiayi-Pan/Countdown-Tasks-3to4"
CORPUS = "DKYoon/SlimPajama-6B"
NEURONPEDIA_MODEL, NEURONPEDIA_SOURCE = "deepseek-r1-distill-llama-8b", "15-llamascope-slimpj-res-32k"
PAPER_FEATURE = 30939
D_SAE = 32_768
LAYER = 15
NORM_SCALING_FACTOR = 5.529329506982431
"""sae-lens's ``norm_scaling_factor`` for ``l15r_800m_slimpajama`` (pretrained_saes.yaml): sqrt(4096) / 11.5746."""


@dataclass(frozen=True)
class StandinConfig:
    """Sizes of the stand-ins (the ids, layer count, d_sae and layouts are always the real ones)."""

    d_model: int = 64
    """Residual width of the stand-in model and SAE (real: 4096); d_sae / d_model must be an integer."""
    countdown_rows: int = 327_680 + 1_024 + 512
    """Rows of the Countdown train split; TinyZero's test split needs at least 328,704."""
    corpus_docs: int = 64
    """Passages in the SlimPajama stand-in."""
    fire_rate: float = 0.01
    """Share of the stand-in model's layer-15 tokens on which each SAE feature fires (sets the thresholds)."""
    seed: int = 0
    """Seed of every random weight and draw."""

    def __post_init__(self) -> None:
        if self.d_model < 8 or self.d_model % 4 or D_SAE % self.d_model:
            raise ValueError(f"d_model must be a multiple of 4 dividing {D_SAE}, got {self.d_model}")
        if self.countdown_rows < 1:
            raise ValueError(f"countdown_rows must be positive, got {self.countdown_rows}")
        if self.corpus_docs < 1:
            raise ValueError(f"corpus_docs must be positive, got {self.corpus_docs}")
        if not 0.0 < self.fire_rate < 1.0:
            raise ValueError(f"fire_rate must be in (0, 1), got {self.fire_rate}")


@dataclass(frozen=True)
class Standins:
    """Where the stand-ins were written."""

    hf_home: Path
    """Set ``HF_HOME`` to this (with ``HF_HUB_OFFLINE=1``)."""
    neuronpedia: Path
    """The Neuronpedia export's source folder (holds ``explanations/`` and ``features/``)."""
    snapshots: dict[str, Path]
    """Repository id -> its snapshot folder in the hub cache."""


# -- the hub cache layout ----------------------------------------------------------------------------------------
def _revision(repo_id: str) -> str:
    return hashlib.sha1(f"interp_sot stand-in {repo_id}".encode()).hexdigest()


def _blob_name(name: str, data: bytes) -> str:
    """The blob's etag as the Hub names it: sha256 for LFS files, the git blob sha1 for small text files."""
    if name.endswith((".safetensors", ".parquet", ".gz", ".bin")):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def put_repo(hf_home: Path, repo_type: str, repo_id: str, files: dict[str, bytes]) -> Path:
    """Write ``files`` (path in repo -> bytes) as ``huggingface_hub`` caches a downloaded revision; the snapshot."""
    org, name = repo_id.split("/")
    root = hf_home / "hub" / f"{repo_type}s--{org}--{name}"
    revision = _revision(repo_id)
    snapshot = root / "snapshots" / revision
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        blob = root / "blobs" / _blob_name(rel, data)
        if not blob.exists():
            blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return snapshot


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _readme(repo_id: str, yaml: str = "") -> bytes:
    head = f"---\n{yaml}---\n" if yaml else ""
    return (f"{head}# {repo_id} (stand-in)\n\nTiny random stand-in written by interp_sot's "
            "scripts/make_hub_standins.py for offline dry runs; not the real repository.\n").encode()


# -- the model --------------------------------------------------------------------------------------------------
def smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer: from interp_sot's dequantised cache when present, else read from the GGUF."""
    from transformers import AutoTokenizer

    from interp_sot.models import cache_root, smollm2_gguf_path

    cached = cache_root() / "smollm2-135m-instruct"
    if (cached / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(cached))
    gguf = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def model_config(cfg: StandinConfig, tokenizer: Any) -> Any:
    """DeepSeek-R1-Distill-Llama-8B's config.json with the width shrunk and SmolLM2's vocabulary."""
    from transformers import LlamaConfig

    heads = 4
    return LlamaConfig(
        architectures=["LlamaForCausalLM"],
        attention_bias=False,
        attention_dropout=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        hidden_act="silu",
        hidden_size=cfg.d_model,
        initializer_range=0.02,
        intermediate_size=2 * cfg.d_model,
        max_position_embeddings=131072,
        mlp_bias=False,
        num_attention_heads=heads,
        num_hidden_layers=32,
        num_key_value_heads=heads // 4,  # real: 32 query heads over 8 KV heads
        head_dim=cfg.d_model // heads,
        pretraining_tp=1,
        rms_norm_eps=1e-5,
        rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        rope_theta=500000.0,
        tie_word_embeddings=False,
        use_cache=True,
        vocab_size=len(tokenizer),
    )


def build_model(cfg: StandinConfig, tokenizer: Any) -> Any:
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(model_config(cfg, tokenizer)).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, do_sample=True,
        temperature=0.6, top_p=0.95,
    )
    return model


def _model_files(model: Any, tokenizer: Any) -> dict[str, bytes]:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        model.to(torch.bfloat16).save_pretrained(tmp)
        model.to(torch.float32)
        tokenizer.save_pretrained(tmp)
        files = _folder_files(Path(tmp))
    files["README.md"] = _readme(PAPER_MODEL)
    return files


# -- the SAE ----------------------------------------------------------------------------------------------------
def sae_config(cfg: StandinConfig, avg_norm: float) -> dict[str, Any]:
    """The Language-Model-SAEs ``config.json`` of a Llama Scope R1 SAE at the stand-in width."""
    hook = f"blocks.{LAYER}.hook_resid_post"
    return {
        "sae_type": "sae",
        "d_model": cfg.d_model,
        "expansion_factor": D_SAE // cfg.d_model,
        "hook_point_in": hook,
        "hook_point_out": hook,
        "use_decoder_bias": True,
        "use_glu_encoder": False,
        "act_fn": "jumprelu",
        "jump_relu_threshold": 0.0,
        "apply_decoder_bias_to_pre_encoder": False,
        "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": avg_norm, "out": avg_norm},
        "sparsity_include_decoder_norm": True,
        "top_k": 50,
    }


def _layer_activations(model: Any, tokenizer: Any, texts: list[str], max_tokens: int = 1024) -> Any:
    """Residual stream after decoder layer 15 (sae-lens's blocks.15.hook_resid_post): ``[tokens, d_model]``."""
    import torch

    rows = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=256)["input_ids"]
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[LAYER + 1]
            rows.append(hidden[0])
            if sum(r.shape[0] for r in rows) >= max_tokens:
                break
    return torch.cat(rows)[:max_tokens].float()


def sae_weights(cfg: StandinConfig, acts: Any) -> dict[str, Any]:
    """Random Llama Scope weights whose JumpReLU thresholds make each feature fire on ``fire_rate`` of ``acts``.

    sae-lens folds ``NORM_SCALING_FACTOR`` into W_enc, so the thresholds are quantiles of the pre-activations of
    ``acts * NORM_SCALING_FACTOR``; decoder rows get random norms (not 1) so unit and SAE conventions differ.
    """
    import torch

    g = torch.Generator().manual_seed(cfg.seed + 1)
    d = cfg.d_model
    enc = torch.randn(D_SAE, d, generator=g) / d**0.5
    enc_b = -0.05 * torch.rand(D_SAE, generator=g)
    dec = torch.randn(d, D_SAE, generator=g) / d**0.5 * (0.5 + torch.rand(1, D_SAE, generator=g))
    dec_b = 0.01 * torch.randn(d, generator=g)
    pre = (acts * NORM_SCALING_FACTOR) @ enc.T + enc_b
    k = max(1, round((1.0 - cfg.fire_rate) * pre.shape[0]))
    threshold = pre.kthvalue(k, dim=0).values.clamp_min(1e-3)
    avg = d**0.5 / NORM_SCALING_FACTOR
    return {
        "encoder.weight": enc.contiguous(),
        "encoder.bias": enc_b,
        "decoder.weight": dec.contiguous(),
        "decoder.bias": dec_b,
        "log_jumprelu_threshold": threshold.log(),
        "dataset_average_activation_norm.in": torch.tensor(avg),
        "dataset_average_activation_norm.out": torch.tensor(avg),
    }


def _sae_files(cfg: StandinConfig, weights: dict[str, Any]) -> dict[str, bytes]:
    from safetensors.torch import save

    avg = float(weights["dataset_average_activation_norm.in"])
    return {
        f"{SAE_FOLDER}/config.json": json.dumps(sae_config(cfg, avg), indent=2).encode(),
        f"{SAE_FOLDER}/sae_weights.safetensors": save(weights),
        "README.md": _readme(SAE_REPO),
    }


# -- datasets ---------------------------------------------------------------------------------------------------
def _parquet(table: Any) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def countdown_files(cfg: StandinConfig) -> dict[str, bytes]:
    """Rows cycle through 61 solvable problems (a prime period, so neighbouring rows always differ)."""
    import pyarrow as pa

    from interp_sot.tasks.countdown import generate_problems

    pool = generate_problems(61, seed=cfg.seed, id_prefix="standin")
    picks = [pool[i % len(pool)] for i in range(cfg.countdown_rows)]
    table = pa.table({
        "target": pa.array([p.target for p in picks], pa.int64()),
        "nums": pa.array([list(p.nums) for p in picks], pa.list_(pa.int64())),
    })
    yaml = ("configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n")
    return {"data/train-00000-of-00001.parquet": _parquet(table), "README.md": _readme(COUNTDOWN, yaml)}


def corpus_texts(cfg: StandinConfig) -> list[str]:
    from interp_sot.data import read_screening_corpus

    texts = []
    for rec in read_screening_corpus():
        texts.append(str(rec["text"]))
        if len(texts) == cfg.corpus_docs:
            break
    return texts


def corpus_files(texts: list[str]) -> dict[str, bytes]:
    import pyarrow as pa

    table = pa.table({
        "text": texts,
        "meta": [{"redpajama_set_name": "RedPajamaCommonCrawl"}] * len(texts),
        "__index_level_0__": list(range(len(texts))),
    })
    yaml = ("configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n")
    return {"data/train-00000-of-00001.parquet": _parquet(table), "README.md": _readme(CORPUS, yaml)}


# -- Neuronpedia ------------------------------------------------------------------------------------------------
def _gz_jsonl(rows: list[dict[str, Any]]) -> bytes:
    return gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode(), mtime=0)


def neuronpedia_export(folder: Path, batches: tuple[int, ...] = (0, PAPER_FEATURE // 1024)) -> Path:
    """Write explanation and feature batches (1,024 features each) of the paper's source; its folder."""
    source = folder / "v1" / NEURONPEDIA_MODEL / NEURONPEDIA_SOURCE
    for kind in ("explanations", "features"):
        (source / kind).mkdir(parents=True, exist_ok=True)
    for b in batches:
        expl, feats = [], []
        for index in range(b * 1024, (b + 1) * 1024):
            desc = ("discourse marker for surprise, realization, or acknowledgment" if index == PAPER_FEATURE
                    else f"stand-in feature {index}")
            common = {"modelId": NEURONPEDIA_MODEL, "layer": NEURONPEDIA_SOURCE, "index": str(index)}
            expl.append({"id": f"standin-{index}", **common, "authorId": "standin", "description": desc,
                         "embedding": None, "typeName": "oai_token-act-pair",
                         "explanationModelName": "gpt-4o-mini", "umap_x": None, "umap_y": None,
                         "umap_cluster": None, "umap_log_feature_sparsity": None})
            feats.append({**common, "maxActApprox": 1.0 + (index % 7), "frac_nonzero": 1.6e-4,
                          "hookName": f"blocks.{LAYER}.hook_resid_post", "pos_str": [" Oh", " Wait"],
                          "pos_values": [0.5, 0.4], "neg_str": [" the"], "neg_values": [-0.3],
                          "topkCosSimIndices": [index], "topkCosSimValues": [1.0]})
        (source / "explanations" / f"batch-{b}.jsonl.gz").write_bytes(_gz_jsonl(expl))
        (source / "features" / f"batch-{b}.jsonl.gz").write_bytes(_gz_jsonl(feats))
    return source


# -- all of it --------------------------------------------------------------------------------------------------
def build_standins(hf_home: Path, neuronpedia_dir: Path | None = None, config: StandinConfig | None = None) -> Standins:
    """Write every stand-in into ``hf_home`` (and the Neuronpedia export into ``neuronpedia_dir``)."""
    cfg = config or StandinConfig()
    hf_home = Path(hf_home)
    tokenizer = smollm2_tokenizer()
    model = build_model(cfg, tokenizer)
    texts = corpus_texts(cfg)
    weights = sae_weights(cfg, _layer_activations(model, tokenizer, texts))
    snapshots = {
        PAPER_MODEL: put_repo(hf_home, "model", PAPER_MODEL, _model_files(model, tokenizer)),
        SAE_REPO: put_repo(hf_home, "model", SAE_REPO, _sae_files(cfg, weights)),
        COUNTDOWN: put_repo(hf_home, "dataset", COUNTDOWN, countdown_files(cfg)),
        CORPUS: put_repo(hf_home, "dataset", CORPUS, corpus_files(texts)),
    }
    neuronpedia = neuronpedia_export(Path(neuronpedia_dir) if neuronpedia_dir else hf_home / "neuronpedia")
    return Standins(hf_home, neuronpedia, snapshots)


def check_standins() -> list[str]:
    """Load each stand-in through the toolkit's real paths (needs HF_HOME set and HF_HUB_OFFLINE=1 before import)."""
    from interp_sot.features.sae import load_sae
    from interp_sot.models import load_model
    from interp_sot.tasks.countdown import load_tinyzero

    model, _ = load_model(PAPER_MODEL, dtype="float32")
    sae = load_sae(SAE_RELEASE, SAE_ID)
    test = load_tinyzero(COUNTDOWN, tinyzero_split="test")
    return [
        f"model {PAPER_MODEL}: {model.config.num_hidden_layers} layers, d_model {model.config.hidden_size}",
        f"SAE {SAE_RELEASE}/{SAE_ID}: d_sae {sae.cfg.d_sae}, hook {sae.cfg.metadata.hook_name}",
        f"dataset {COUNTDOWN}: TinyZero test split {len(test)} problems ({test[0].problem_id} ...)",
    ]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hf-home", required=True, help="HF_HOME to write into (its hub/ folder gets the stand-ins)")
    p.add_argument("--neuronpedia-dir", default=None, help="where the Neuronpedia export goes (HF_HOME/neuronpedia)")
    p.add_argument("--d-model", type=int, default=StandinConfig.d_model, help="stand-in residual width (64)")
    p.add_argument("--check", action="store_true", help="then load each stand-in through the real loaders")
    p.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.check_only:  # a fresh process: huggingface_hub reads HF_HOME / HF_HUB_OFFLINE at import
        for line in check_standins():
            print(f"ok: {line}")
        return
    out = build_standins(Path(args.hf_home), args.neuronpedia_dir, StandinConfig(d_model=args.d_model))
    for repo, snap in out.snapshots.items():
        print(f"{repo}: {snap}")
    print(f"Neuronpedia export: {out.neuronpedia}")
    print(f"use: HF_HOME={out.hf_home} HF_HUB_OFFLINE=1 interp-sot ...")
    if args.check:
        env = {**os.environ, "HF_HOME": str(out.hf_home), "HF_HUB_OFFLINE": "1"}
        env.pop("HF_HUB_CACHE", None)
        subprocess.run([sys.executable, __file__, "--hf-home", str(out.hf_home), "--check-only"], env=env, check=True)


if __name__ == "__main__":
    main()
