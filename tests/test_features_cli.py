"""``interp-sot stats`` end to end on a saved tiny Llama, char tokenizer, saved SAE and JSONL/TXT corpora."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest
from features_helpers import assert_stats_equal, collect_setup

from interp_sot.cli import stats as cli
from interp_sot.features.collect import CollectConfig, collect
from interp_sot.features.stats import FeatureStats

TEXTS = ["Hi there. Oh, I see!", "Wait\nyes no maybe.", "We think so. Right? Hmm ok.", "Oh no", "So. Well."]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model, tok, sae = collect_setup(1)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    sae.save_model(root / "sae")
    with open(root / "corpus.jsonl", "w") as fh:
        for i, t in enumerate(TEXTS):
            fh.write(json.dumps({"body": t, "conversational": i % 2 == 0}) + "\n")
    (root / "corpus.txt").write_text("\n".join(TEXTS) + "\n")
    return root, model, tok, sae


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["stats", *argv])
    return args.run(args)


def common(root, out) -> list[str]:
    return ["--model", str(root / "model"), "--sae", str(root / "sae"), "--layer", "1", "--out", str(out),
            "--top-k", "3", "--batch-tokens", "128", "--no-progress", "--device", "cpu"]


def test_jsonl_run_writes_stats_contexts_and_table(saved, tmp_path, capsys) -> None:
    root, model, tok, sae = saved
    out = tmp_path / "out"
    argv = [*common(root, out), "--corpus", str(root / "corpus.jsonl"), "--text-field", "body",
            "--metadata-field", "conversational"]
    assert run(argv) == 0
    assert "tokens" in capsys.readouterr().out
    stats = FeatureStats.load(out)
    expected = collect(model, tok, TEXTS, 1, sae, CollectConfig(top_k=3, batch_tokens=128, progress=False))
    assert_stats_equal(stats, expected)
    table = pd.read_parquet(out / "features.parquet")
    assert len(table) == 40 and table["fire_count"].tolist() == expected.fire_count.tolist()
    assert stats.contexts is not None and stats.info["corpus"] == str(root / "corpus.jsonl")
    labels = stats.contexts.sequence_labels("conversational")
    assert all(labels[s] == (s % 2 == 0) for s in stats.contexts.seq_ids())
    f = int(stats.fire_count.argmax())
    assert "<<" in stats.contexts.render(int(stats.topk_seq[f, 0]), int(stats.topk_pos[f, 0]))  # tokenizer from disk
    assert run(argv) == 0  # rerun: the complete checkpoint is reused
    assert_stats_equal(FeatureStats.load(out), stats)


def test_txt_corpus_one_document_per_line(saved, tmp_path) -> None:
    root, model, tok, sae = saved
    assert run([*common(root, tmp_path / "o"), "--corpus", str(root / "corpus.txt")]) == 0
    lines = [line for t in TEXTS for line in t.split("\n")]
    expected = collect(model, tok, lines, 1, sae, CollectConfig(top_k=3, batch_tokens=128, progress=False))
    assert_stats_equal(FeatureStats.load(tmp_path / "o"), expected)


def test_missing_corpus_is_reported(saved, tmp_path) -> None:
    root, *_ = saved
    with pytest.raises(FileNotFoundError, match="no such file"):
        run([*common(root, tmp_path / "o"), "--corpus", str(tmp_path / "nope.jsonl")])
    (tmp_path / "bad.xyz").write_text("x")
    with pytest.raises(ValueError, match="unknown file type"):
        run([*common(root, tmp_path / "o"), "--corpus", str(tmp_path / "bad.xyz")])


def test_run_stats_is_the_command_without_the_printing(saved, tmp_path) -> None:
    """The library call behind the command: the result, or with --plan the plan (nothing written)."""
    from interp_sot.errors import FlagError
    from interp_sot.plan import StatsPlan
    from interp_sot.stages.planning import Planned, PlanOptions
    from interp_sot.stages.stats_run import StatsRequest, run_stats

    root, model, tok, sae = saved
    request = StatsRequest(model=str(root / "model"), sae=str(root / "sae"), layer=1, corpus=str(root / "corpus.txt"),
                           out=str(tmp_path / "o"), device="cpu")
    collect_config = CollectConfig(top_k=3, batch_tokens=128, progress=False)
    with pytest.raises(FlagError, match="--plan needs --max-tokens"):
        run_stats(request, collect_config, PlanOptions(plan=True))
    planned = run_stats(request, CollectConfig(top_k=3, batch_tokens=128, max_tokens=1000), PlanOptions(plan=True))
    assert isinstance(planned, Planned) and isinstance(planned.plan, StatsPlan) and planned.plan.tokens == 1000
    assert "SAE with 40 features" in planned.what and not (tmp_path / "o").exists()
    result = run_stats(request, collect_config)
    assert result is not None and not isinstance(result, Planned) and result.table.parent == tmp_path / "o"
    lines = [line for t in TEXTS for line in t.split("\n")]
    assert_stats_equal(result.stats, collect(model, tok, lines, 1, sae, collect_config))


def test_bad_layer_names_the_flag(saved, tmp_path) -> None:
    from interp_sot.errors import FlagError

    root, *_ = saved
    argv = [*common(root, tmp_path / "o"), "--corpus", str(root / "corpus.txt")]
    argv[argv.index("--layer") + 1] = "-1"
    with pytest.raises(FlagError, match="--layer must be an int >= 0"):
        run(argv)
    assert not (tmp_path / "o").exists()
