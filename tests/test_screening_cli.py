"""``interp-sot screen`` (interp_sot.cli.screen) on brute-force stats; inputs loaded through a stand-in."""

from __future__ import annotations

import argparse
import gzip
import json

import numpy as np
import pandas as pd
import pytest
from fault_server import LoopbackServer
from screening_fakes import brute_force_stats, random_corpus, renderer

from interp_sot.cli import screen as cli
from interp_sot.flags import from_flags
from interp_sot.screening.conversation_ratio import ratio_from_labels
from interp_sot.screening.screen import apply_filter, feature_table, load_table
from interp_sot.stages import screen_run
from interp_sot.stages.screen_config import JudgeOptions, ScreenConfig, ScreenInputs, parse_feature_list


class FakeContexts:
    def __init__(self, conv: np.ndarray) -> None:
        self.conv = conv
        self._render = renderer(conv)

    def render(self, seq: int, pos: int, before: int, after: int, tokenizer=None) -> str:
        return self._render(seq, pos)

    def sequence_labels(self, field: str) -> np.ndarray:
        if field != "conversational":
            raise KeyError(field)
        return self.conv


@pytest.fixture
def inputs(monkeypatch, tmp_path):
    # --stats names a folder of its own: its content hash is the run's input identity, so --out must not be inside
    (tmp_path / "stats").mkdir()
    acts, onset, conv = random_corpus(seed=11, n_seq=16, seq_len=8, d=24)
    stats = brute_force_stats(acts, onset, k=5)
    monkeypatch.setattr(screen_run, "load_inputs", lambda inputs: (stats, FakeContexts(conv)))
    return stats, conv


def run(argv: list[str], capsys) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["screen", *argv])
    code = args.run(args)
    return code, capsys.readouterr().out


def test_labels_mode_writes_the_table(inputs, tmp_path, capsys) -> None:
    stats, conv = inputs
    code, out = run(["--stats", str(tmp_path / "stats"), "--out", str(tmp_path / "o"), "--k", "5"], capsys)
    assert code == 0
    table = load_table(tmp_path / "o" / "screen.parquet")
    expected = apply_filter(feature_table(stats, ratio_from_labels(stats, conv, k=5)))
    np.testing.assert_array_equal(table["conversation_ratio"], expected["conversation_ratio"])
    assert table["passes_filter"].tolist() == expected["passes_filter"].tolist()
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["passing_filter"] == int(expected["passes_filter"].sum()) and summary["judge"] == "labels"
    assert '"passing_filter"' in out


def test_heuristic_judge_with_labels_and_categories(inputs, tmp_path, capsys) -> None:
    stats, conv = inputs
    export = tmp_path / "export" / "explanations"
    export.mkdir(parents=True)
    with gzip.open(export / "batch-0.jsonl.gz", "wt") as fh:
        for i, d in [(0, "surprise and realization"), (1, "python code"), (5, "the letter q")]:
            fh.write(json.dumps({"modelId": "m", "layer": "0-res", "index": i, "description": d,
                                "explanationModelName": "m"}) + "\n")
    argv = ["--stats", str(tmp_path / "stats"), "--out", str(tmp_path / "o"), "--judge", "heuristic", "--k", "5",
            "--labels", str(tmp_path / "export"), "--categories", "--features", "0-9,20"]
    code, _ = run(argv, capsys)
    assert code == 0
    table = load_table(tmp_path / "o" / "screen.csv")
    by_labels = ratio_from_labels(stats, conv, features=[*range(10), 20], k=5)
    np.testing.assert_array_equal(table.loc[by_labels.features, "conversation_ratio"], by_labels.ratio)
    assert table.loc[11:19, "conversation_ratio"].isna().all()
    assert table.loc[0, "label"] == "surprise and realization" and pd.isna(table.loc[2, "label"])
    cats = pd.read_csv(tmp_path / "o" / "categories.csv", index_col=0)
    assert cats["category"].to_dict() == {0: "personality", 1: "expertise", 5: "other"}
    scores = tmp_path / "o" / "conversation_scores.jsonl"
    n_lines = len(scores.read_text().splitlines())
    run(argv, capsys)  # a rerun judges nothing new
    assert len(scores.read_text().splitlines()) == n_lines


def test_openai_judge_over_loopback(inputs, tmp_path, capsys) -> None:
    stats, conv = inputs
    with LoopbackServer() as server:
        code, _ = run(["--stats", str(tmp_path / "stats"), "--out", str(tmp_path / "o"), "--k", "5",
                       "--batch-size", "4", "--judge", f"openai:judge-model@{server.base_url}",
                       "--concurrency", "2"], capsys)
        assert code == 0 and server.stats()["completions"] > 0
    table = load_table(tmp_path / "o" / "screen.parquet")
    np.testing.assert_array_equal(table["conversation_ratio"], ratio_from_labels(stats, conv, k=5).ratio)


def test_bad_arguments(inputs, tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match="cannot read 'x'"):
        run(["--stats", str(tmp_path / "stats"), "--out", str(tmp_path / "o"), "--features", "1,x"], capsys)
    with pytest.raises(ValueError, match="--categories needs a judge"):
        run(["--stats", str(tmp_path / "stats"), "--out", str(tmp_path / "o"), "--categories"], capsys)
    with pytest.raises(ValueError, match="unknown judge spec"):
        run(["--stats", str(tmp_path / "stats"), "--out", str(tmp_path / "o"), "--judge", "gpt"], capsys)
    assert parse_feature_list("3, 0-2") == [3, 0, 1, 2] and parse_feature_list(None) is None


def test_flags_are_the_settings_fields() -> None:
    """Every flag sets a field of the screen's settings; left out, each takes the field's default."""
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["screen", "--stats", "s", "--out", "o"])
    assert from_flags(JudgeOptions, args) == JudgeOptions()
    assert from_flags(ScreenInputs, args) == ScreenInputs(stats="s", out="o")
    assert from_flags(ScreenConfig, args, features=None, window=tuple(args.window)) == ScreenConfig()
    args = parser.parse_args(["screen", "--stats", "s", "--out", "o", "--prefer-explainer", "a", "--prefer-explainer",
                              "b", "--prompt-file", "x=y", "--prompt-file", "z=w", "--validate-on", "labels",
                              "--window", "4", "2", "--categories"])
    assert from_flags(ScreenInputs, args).prefer_explainer == ("a", "b")
    assert from_flags(JudgeOptions, args) == JudgeOptions(prompt_file=("x=y", "z=w"), validate_on="labels")
    config = from_flags(ScreenConfig, args, features=parse_feature_list("0-2"), window=tuple(args.window))
    assert config.window == (4, 2) and config.features == (0, 1, 2) and config.categories
    assert JudgeOptions(concurrency=3).backend_options("openai:m@http://127.0.0.1:9/v1") == {
        "api_key_env": "OPENAI_API_KEY", "timeout_s": 120.0, "max_concurrency": 3}
    assert JudgeOptions(concurrency=3).backend_options("heuristic") == {}
