"""Real transformers models/tokenizers and sae-lens SAEs satisfy :mod:`interp_sot.protocols`.

``mypy tests/test_protocols.py`` checks the static side (``_accepts`` called with real classes; ``mypy`` on the
package checks ``models.load_model``, which returns ``AutoModelForCausalLM``/``AutoTokenizer`` results as the
Protocols); the tests check the run-time side (``isinstance`` against the ``runtime_checkable`` Protocols) on tiny
random objects built offline. sae-lens has no type information, so only the run-time check bites for the SAE.
"""

from __future__ import annotations

import subprocess
import sys
from typing import cast

import pytest

from interp_sot.protocols import CausalLM, Judge, SparseAutoencoder, Tokenizer


def _accepts(model: CausalLM, tokenizer: Tokenizer, sae: SparseAutoencoder | None = None) -> None:
    """Typed with the Protocols: mypy rejects the calls below if a real class stops satisfying them."""


def test_transformers_model_and_tokenizer_satisfy_protocols() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers.models import WordLevel
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    config = LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    model: LlamaForCausalLM = LlamaForCausalLM(config)
    raw = RawTokenizer(WordLevel({"<pad>": 0, "<eos>": 1, "a": 2, "b": 3}, unk_token="<pad>"))
    tokenizer: PreTrainedTokenizerFast = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>",
                                                                 eos_token="<eos>")
    _accepts(model, tokenizer)
    assert isinstance(model, CausalLM)
    assert isinstance(tokenizer, Tokenizer)
    out = model(input_ids=torch.tensor([[2, 3]]))
    assert out.logits.shape == (1, 2, 16)
    assert transformers.__version__


def test_sae_lens_sae_satisfies_protocol() -> None:
    pytest.importorskip("sae_lens")
    from sae_lens import SAE as LensSAE
    from sae_lens import StandardSAEConfig

    sae = LensSAE.from_dict(StandardSAEConfig(d_in=4, d_sae=8).to_dict())
    typed: SparseAutoencoder = sae
    assert isinstance(typed, SparseAutoencoder)
    assert isinstance(sae.cfg.architecture(), str)


def test_judge_reexported() -> None:
    from interp_sot.judging.base import Judge as BaseJudge

    assert Judge is BaseJudge


def test_protocols_do_not_import_torch() -> None:
    code = "import sys, interp_sot.protocols; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_helpers_narrow_the_tokenizer_and_generate_unions() -> None:
    import torch

    from interp_sot.protocols import decode_text, generated_ids, render_chat

    class Tok:
        """A test double with only the members the helpers call (``decode`` takes the ids alone)."""

        def decode(self, ids: list[int] | list[list[int]]) -> str | list[str]:
            return ["batch"] if ids and isinstance(ids[0], list) else "text"

        def apply_chat_template(self, messages: list[dict[str, str]], *, tokenize: bool = True,
                                add_generation_prompt: bool = False) -> str | list[int]:
            return "chat" if not tokenize else [1, 2]

    tok = cast(Tokenizer, Tok())
    assert decode_text(tok, [1, 2]) == "text"
    with pytest.raises(TypeError, match="single sequence"):
        decode_text(tok, cast(list[int], [[1], [2]]))
    assert render_chat(tok, [{"role": "user", "content": "hi"}]) == "chat"
    ids = torch.tensor([[1, 2]])
    assert generated_ids(ids) is ids

    class Out:
        sequences = ids

    assert generated_ids(cast(torch.Tensor, Out())) is ids
