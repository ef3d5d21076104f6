"""Tiny randomly initialised HF models built from configs (no download) and a matching character tokenizer.

Plain functions, importable from tests, benchmarks and child processes alike; ``conftest.py`` wraps them in
fixtures. (Benchmarks cannot import the tests' ``conftest``: pytest registers each folder's conftest under that
same module name.)
"""

from __future__ import annotations

from typing import Any

import torch

VOCAB = 96
D_MODEL = 32
N_LAYERS = 3


def _common(**extra: Any) -> dict[str, Any]:
    base = dict(
        vocab_size=VOCAB,
        hidden_size=D_MODEL,
        intermediate_size=64,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    base.update(extra)
    return base


def _build(family: str) -> torch.nn.Module:
    import transformers as tf

    if family == "llama":
        cfg = tf.LlamaConfig(**_common())
        cls = tf.LlamaForCausalLM
    elif family == "mistral":
        cfg = tf.MistralConfig(**_common(sliding_window=None))
        cls = tf.MistralForCausalLM
    elif family == "qwen2":
        cfg = tf.Qwen2Config(**_common())
        cls = tf.Qwen2ForCausalLM
    elif family == "qwen3":
        cfg = tf.Qwen3Config(**_common(head_dim=8))
        cls = tf.Qwen3ForCausalLM
    elif family == "gemma":
        cfg = tf.GemmaConfig(**_common(head_dim=8))
        cls = tf.GemmaForCausalLM
    elif family == "gemma2":
        cfg = tf.Gemma2Config(**_common(head_dim=8, sliding_window=16))
        cls = tf.Gemma2ForCausalLM
    elif family == "gemma3":
        cfg = tf.Gemma3TextConfig(**_common(head_dim=8, sliding_window=16))
        cls = tf.Gemma3ForCausalLM
    elif family == "gpt2":
        cfg = tf.GPT2Config(
            vocab_size=VOCAB, n_embd=D_MODEL, n_layer=N_LAYERS, n_head=4, n_positions=1024,
            bos_token_id=1, eos_token_id=2, pad_token_id=0,
        )
        cls = tf.GPT2LMHeadModel
    elif family == "gpt_neox":
        cfg = tf.GPTNeoXConfig(
            vocab_size=VOCAB, hidden_size=D_MODEL, intermediate_size=64, num_hidden_layers=N_LAYERS,
            num_attention_heads=4, max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        )
        cls = tf.GPTNeoXForCausalLM
    else:  # pragma: no cover
        raise KeyError(family)
    torch.manual_seed(0)
    model = cls(cfg)
    model.eval()
    return model


CHARS = "0123456789+-*/()<>=?.,:! \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'[]\"#$%&;@^_{}"


def char_tokenizer() -> Any:
    """A 96-token character tokenizer (pad 0, bos 1, eos 2, unk 3) matching conftest's tiny models."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
    assert len(vocab) == 96
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.padding_side = "left"
    return fast


FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gpt2", "gpt_neox"]
