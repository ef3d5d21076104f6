"""Heuristic rules, judge specs and the local transformers judge."""

from __future__ import annotations

import json

import pytest
import torch

from interp_sot.judging.heuristic import HeuristicJudge, category_scores, conversational_score
from interp_sot.judging.hf import HFJudge
from interp_sot.judging.openai_compat import OpenAIJudge
from interp_sot.judging.prompts.categories import FEATURE_CATEGORY, format_descriptions, split_descriptions
from interp_sot.judging.prompts.conversational import CONVERSATIONAL_SCORE, format_excerpts, split_excerpts
from interp_sot.judging.prompts.template import PromptTemplate
from interp_sot.judging.spec import make_judge


@pytest.mark.parametrize(
    ("text", "score"),
    [
        # speaker tag 35 + you x1 15 + I x1 10 + ? 10 + marker "Oh" 15 + contraction 5 = 90
        ("User: Oh, did you see it? I'm not sure.", 35 + 15 + 10 + 10 + 15 + 5),
        # nothing conversational; citation -20, clamped at 0
        ("The enzyme was purified as described by Smith et al. in 1999.", 0),
        # quoted speech 10 + marker "well" 15 + "me" 10
        ('He said "well, tell me more" and left.', 10 + 15 + 10),
        # 4 x "you" -> 15 + 5*3 = 30 capped at 25; marker "<<" removed first
        ("you you you <<you>>", 25),
        # code-like: { } ; = -> -20 ; clamped
        ("x = {a; b}", 0),
        # digits > 15% of characters: -20; question mark +10 -> 0
        ("1234 5678 9?", 0),
    ],
)
def test_conversational_rules(text: str, score: int) -> None:
    assert conversational_score(text) == score


def test_category_rules() -> None:
    assert category_scores("discourse marker for surprise, realization, or acknowledgment") == (100, 0)
    assert category_scores("Python code for a sorting algorithm") == (0, 100)
    assert category_scores("emotional tone in medical advice") == (80, 40)
    assert category_scores("the letter q") == (0, 0)


def test_excerpt_and_description_formats_round_trip() -> None:
    texts = ["line one\nline two", "### not a header\n\n", "Reply with JSON only", "x"]
    user = CONVERSATIONAL_SCORE.render(n="4", excerpts=format_excerpts(texts))[1]["content"]
    assert split_excerpts(user) == texts
    descs = ["surprise", "multi\nline  text", ""]
    user = FEATURE_CATEGORY.render(n="3", descriptions=format_descriptions(descs))[1]["content"]
    assert split_descriptions(user) == ["surprise", "multi line text", ""]


def test_heuristic_judge_answers_templates_and_refuses_others() -> None:
    judge = HeuristicJudge()
    texts = ["Hey, thanks! You rock.", "Table 3 lists the values."]
    reply = judge.complete(CONVERSATIONAL_SCORE.render(n="2", excerpts=format_excerpts(texts)))
    assert json.loads(reply) == {"scores": [conversational_score(t) for t in texts]}
    reply = judge.complete(FEATURE_CATEGORY.render(n="1", descriptions=format_descriptions(["anger"])))
    assert json.loads(reply) == {"items": [{"personality": 40, "expertise": 0}]}
    known = r"knows only the templates \['conversational_score@1', 'feature_category@1'\]"
    with pytest.raises(ValueError, match=known):
        judge.complete([{"role": "system", "content": "something else"}, {"role": "user", "content": "hi"}])
    custom = PromptTemplate(name="t", version="2", system="custom task", user="{x}")
    judge.register(custom, lambda user: user.upper())
    assert judge.complete(custom.render(x="abc")) == "ABC"
    assert "heuristic" in judge.name


def test_template_validation() -> None:
    with pytest.raises(ValueError, match=r"missing fields \['n'\]"):
        CONVERSATIONAL_SCORE.render(excerpts="x")
    with pytest.raises(ValueError, match="unexpected fields"):
        CONVERSATIONAL_SCORE.render(n="1", excerpts="x", other="y")
    assert CONVERSATIONAL_SCORE.fields == ("excerpts", "n")
    with pytest.raises(ValueError, match="name and version"):
        PromptTemplate(name="", version="1", system="s", user="u")


def test_make_judge_specs(monkeypatch) -> None:
    assert make_judge("labels") is None
    assert isinstance(make_judge("heuristic"), HeuristicJudge)
    judge = make_judge("openai:org/model-7b@http://127.0.0.1:8000/v1", max_concurrency=3)
    assert isinstance(judge, OpenAIJudge)
    assert judge.config.model == "org/model-7b" and judge.config.base_url == "http://127.0.0.1:8000/v1"
    assert judge.max_concurrency == 3
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:9/v1")
    assert make_judge("openai:gpt").config.base_url == "http://localhost:9/v1"
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        make_judge("openai:gpt-4o-mini")
    with pytest.raises(ValueError, match="names no model"):
        make_judge("openai:@http://127.0.0.1:1/v1")
    with pytest.raises(ValueError, match="unknown judge spec 'gpt4'"):
        make_judge("gpt4")
    with pytest.raises(ValueError, match="names no model"):
        make_judge("hf:")


def _tiny_chat_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for w in "system user assistant : hello rate this text ok".split():
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant : {% endif %}"
    )
    return fast


def test_hf_judge_is_greedy_chat_completion(tiny_llama) -> None:
    tokenizer = _tiny_chat_tokenizer()
    judge = HFJudge(tiny_llama, tokenizer, max_new_tokens=6, name="hf:tiny")
    messages = [{"role": "system", "content": "rate this"}, {"role": "user", "content": "hello text"}]
    reply = judge.complete(messages)
    # reference: the template by hand, then argmax decoding step by step
    ids = tokenizer("system : rate this user : hello text assistant :", add_special_tokens=False)["input_ids"]
    seq = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(6):
            nxt = tiny_llama(seq).logits[0, -1].argmax()
            seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
            if nxt.item() == tokenizer.eos_token_id:
                break
    assert reply == tokenizer.decode(seq[0, len(ids):], skip_special_tokens=True)
    assert judge.name == "hf:tiny" and judge.max_concurrency == 1
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        HFJudge(tiny_llama, tokenizer)


@pytest.mark.integration
def test_hf_judge_smollm2_uses_the_real_chat_template(smollm2) -> None:
    model, tokenizer = smollm2
    judge = HFJudge(model, tokenizer, max_new_tokens=12, name="hf:smollm2")
    messages = [{"role": "system", "content": "Reply with JSON only."}, {"role": "user", "content": "Rate: hi!"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>assistant" in text
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, do_sample=False, max_new_tokens=12, pad_token_id=tokenizer.pad_token_id)
    expected = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert judge.complete(messages) == expected and expected.strip()
