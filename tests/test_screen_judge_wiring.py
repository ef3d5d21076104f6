"""``interp-sot screen`` with an LLM judge, through the command line: the reply cache makes a rerun free, provider
batch files complete a screen with no live call, ``--validate-on labels`` scores the judge, ``--prompt-file``
replaces the prompts (and, through the steer/controls coding config, the behaviour-coding and perspective prompts).

The judge is the OpenAI client against the fault-injection loopback server (answering with the heuristic judge,
which scores these synthetic contexts exactly as their document labels); batch results are written synthetically.
"""

from __future__ import annotations

import argparse
import gzip
import json
from types import SimpleNamespace

import numpy as np
import pytest
from fault_server import LoopbackServer, ServerOptions
from screening_fakes import brute_force_stats, random_corpus, renderer
from test_judging_batch import results_line, write_lines
from test_screening_cli import FakeContexts, run

from interp_sot.analysis.perspectives import PERSPECTIVES_PROMPT
from interp_sot.behaviours.prompts import COGNITIVE
from interp_sot.cli import screen as cli
from interp_sot.flags import from_flags
from interp_sot.judging.batch import estimate_tokens
from interp_sot.judging.prompts.categories import FEATURE_CATEGORY
from interp_sot.judging.prompts.conversational import CONVERSATIONAL_SCORE
from interp_sot.judging.store import sha256_hex
from interp_sot.screening.conversation_ratio import ratio_from_labels, top_contexts
from interp_sot.screening.screen import load_table
from interp_sot.stages import screen_run
from interp_sot.stages.run_options import CodingOptions
from interp_sot.stages.rundir import RunDirError, jsonable
from interp_sot.stages.screen_config import JudgeOptions
from interp_sot.stages.steer import CodingConfig, code_behaviours

K, BATCH = 5, 4
FLIPPED = [0, 3, 5, 8]
"""Documents whose ``noisy`` label disagrees with their ``conversational`` label."""


class LabelledContexts(FakeContexts):
    """Contexts with a second, partly wrong, label field to validate the judge against."""

    def sequence_labels(self, field: str) -> np.ndarray:
        conv = super().sequence_labels("conversational").astype(float)
        if field == "noisy":
            conv[FLIPPED] = 1 - conv[FLIPPED]
            return conv
        return super().sequence_labels(field)


@pytest.fixture
def setup(monkeypatch, tmp_path):
    (tmp_path / "stats").mkdir()
    acts, onset, conv = random_corpus(seed=11, n_seq=16, seq_len=8, d=24)
    stats = brute_force_stats(acts, onset, k=K)
    monkeypatch.setattr(screen_run, "load_inputs", lambda inputs: (stats, LabelledContexts(conv)))
    return stats, conv


def argv(tmp_path, out: str, judge: str, *extra: str) -> list[str]:
    return ["--stats", str(tmp_path / "stats"), "--out", str(tmp_path / out), "--k", str(K), "--batch-size",
            str(BATCH), "--judge", judge, *extra]


def summary_of(tmp_path, out: str) -> dict:
    return json.loads((tmp_path / out / "summary.json").read_text())


def distinct_texts(stats, conv) -> int:
    seq, pos, valid = top_contexts(stats, np.arange(len(stats.fire_count)), K)
    render = renderer(conv)
    return len({render(s, p) for s, p in zip(seq[valid].tolist(), pos[valid].tolist(), strict=True)})


def test_rerun_is_answered_by_the_reply_cache(setup, tmp_path, capsys) -> None:
    stats, conv = setup
    # latency keeps calls in flight long enough for the server to see the client's concurrency
    with LoopbackServer(ServerOptions(latency_s=0.05)) as server:
        cmd = argv(tmp_path, "o", f"openai:judge-model@{server.base_url}")
        assert run(cmd, capsys)[0] == 0
        first = server.stats()
        n_calls = -(-distinct_texts(stats, conv) // BATCH)
        assert first["completions"] == summary_of(tmp_path, "o")["judge_calls"] == n_calls  # each request sent once
        assert first["peak_in_flight"] == 2  # no --concurrency: the client's loopback default, not 8
        table = load_table(tmp_path / "o" / "screen.parquet")
        np.testing.assert_array_equal(table["conversation_ratio"], ratio_from_labels(stats, conv, k=K).ratio)
        lines = (tmp_path / "o" / "judge_cache.jsonl").read_text().splitlines()
        assert len(lines) == n_calls

        # the rerun, even with the scored contexts deleted, is answered by the reply cache alone
        (tmp_path / "o" / "conversation_scores.jsonl").unlink()
        assert run(cmd, capsys)[0] == 0
        assert server.stats()["completions"] == n_calls and summary_of(tmp_path, "o")["judge_calls"] == 0
        again = load_table(tmp_path / "o" / "screen.parquet")
        np.testing.assert_array_equal(again["conversation_ratio"], table["conversation_ratio"])
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))

    def backend_options(*extra: str) -> dict:
        args = parser.parse_args(["screen", *cmd, *extra])
        return from_flags(JudgeOptions, args).backend_options(args.judge)

    assert "max_concurrency" not in backend_options()
    assert backend_options("--concurrency", "3")["max_concurrency"] == 3


def test_batch_files_complete_the_screen_with_no_live_call(setup, tmp_path, capsys) -> None:
    stats, conv = setup
    batch, results = tmp_path / "batch.jsonl", tmp_path / "results.jsonl"
    with LoopbackServer() as server:
        cmd = argv(tmp_path, "o", f"openai:judge-model@{server.base_url}", "--judge-batch-out", str(batch))

        # 1. nothing cached: every request goes to the batch file, every context stays unjudged (NaN, not 0)
        assert run(cmd, capsys)[0] == 0
        lines = [json.loads(x) for x in batch.read_text().splitlines()]
        assert len(lines) == -(-distinct_texts(stats, conv) // BATCH)
        out = summary_of(tmp_path, "o")["judge_batch"]["out"]
        assert out == {"file": str(batch), "requests": len(lines),
                       "prompt_tokens": sum(estimate_tokens(m["content"])
                                            for x in lines for m in x["body"]["messages"]),
                       "max_reply_tokens": sum(x["body"]["max_tokens"] for x in lines)}
        assert load_table(tmp_path / "o" / "screen.parquet")["conversation_ratio"].isna().all()

        # 2. the provider's results: one line failed, one missing; both are written again, the rest is judged
        answered = [results_line(x["custom_id"], x["body"]) for x in lines]
        answered[0] = {"custom_id": lines[0]["custom_id"], "response": None, "error": {"code": "server_error"}}
        del answered[1]
        write_lines(results, answered)
        assert run([*cmd, "--judge-batch-in", str(results)], capsys)[0] == 0
        info = summary_of(tmp_path, "o")["judge_batch"]
        assert info["in"] == {"file": str(results), "stored": len(lines) - 2, "already_cached": 0, "failed": 1,
                              "missing": 1, "unreadable_lines": 0}
        assert info["out"]["requests"] == info["pending_requests"] == 2
        retry = [json.loads(x) for x in batch.read_text().splitlines()]
        assert sorted(x["custom_id"] for x in retry) == sorted(x["custom_id"] for x in lines[:2])
        assert load_table(tmp_path / "o" / "screen.parquet")["conversation_ratio"].notna().any()

        # 3. the last results: the screen completes, equal to judging live; nothing is left to submit
        write_lines(results, [results_line(x["custom_id"], x["body"]) for x in retry])
        assert run([*cmd, "--judge-batch-in", str(results)], capsys)[0] == 0
        info = summary_of(tmp_path, "o")["judge_batch"]
        assert info["in"]["stored"] == 2 and info["in"]["missing"] == 0 and info["out"]["requests"] == 0
        assert batch.read_text() == ""
        table = load_table(tmp_path / "o" / "screen.parquet")
        np.testing.assert_array_equal(table["conversation_ratio"], ratio_from_labels(stats, conv, k=K).ratio)
        assert server.stats()["completions"] == 0

    with pytest.raises(FileNotFoundError, match="does not exist"):
        run([*cmd, "--judge-batch-in", str(tmp_path / "nope.jsonl")], capsys)
    with pytest.raises(ValueError, match="need an LLM judge"):
        run(argv(tmp_path, "o2", "labels", "--judge-batch-out", str(batch)), capsys)


def test_validate_on_labels_reports_accuracy_and_kappa(setup, tmp_path, capsys) -> None:
    stats, conv = setup
    assert run(argv(tmp_path, "o", "heuristic", "--validate-on", "labels", "--label-field", "noisy"), capsys)[0] == 0
    table = load_table(tmp_path / "o" / "screen.parquet")
    np.testing.assert_array_equal(table["conversation_ratio"], ratio_from_labels(stats, conv, k=K).ratio)
    # so the judge calls each context by its document's conversational flag; the noisy labels flip FLIPPED
    seq, pos, valid = top_contexts(stats, np.arange(len(stats.fire_count)), K)
    docs = [s for s, _ in sorted({(s, p) for s, p in zip(seq[valid].tolist(), pos[valid].tolist(), strict=True)})]
    call = np.array([bool(conv[s]) for s in docs])
    truth = np.array([bool(conv[s]) != (s in FLIPPED) for s in docs])
    confusion = [[int(np.sum(~truth & ~call)), int(np.sum(~truth & call))],
                 [int(np.sum(truth & ~call)), int(np.sum(truth & call))]]
    n = len(docs)
    p_o = (confusion[0][0] + confusion[1][1]) / n
    p_e = (call.mean() * truth.mean()) + (1 - call.mean()) * (1 - truth.mean())
    got = summary_of(tmp_path, "o")["judge_validation"]
    assert 0 < confusion[0][1] + confusion[1][0] < n  # some flipped documents are among the judged contexts
    assert got["labels"] == "noisy" and got["n"] == n and got["unjudged"] == 0 and got["confusion"] == confusion
    assert got["accuracy"] == pytest.approx(p_o) and got["kappa"] == pytest.approx((p_o - p_e) / (1 - p_e))
    with pytest.raises(ValueError, match="need an LLM judge"):
        run(argv(tmp_path, "o2", "labels", "--validate-on", "labels"), capsys)


def write_prompt(path, template, marker: str, placeholders: str) -> str:
    text = f"[system]\n{template.system}\n[user]\n{marker} {placeholders}\nReply as JSON, e.g. {{\"scores\": [0]}}\n"
    path.write_text(text)
    return text


def test_prompt_files_replace_the_screen_prompts(setup, tmp_path, capsys) -> None:
    export = tmp_path / "export" / "explanations"
    export.mkdir(parents=True)
    with gzip.open(export / "batch-0.jsonl.gz", "wt") as fh:
        for i, d in [(0, "surprise and realization"), (1, "python code"), (5, "the letter q")]:
            fh.write(json.dumps({"modelId": "m", "layer": "0-res", "index": i, "description": d,
                                "explanationModelName": "m"}) + "\n")
    conv_text = write_prompt(tmp_path / "conv.txt", CONVERSATIONAL_SCORE, "CONV-MARKER", "{n} {excerpts}")
    cat_text = write_prompt(tmp_path / "cat.txt", FEATURE_CATEGORY, "CAT-MARKER", "{n}: {descriptions}")
    keys = {"conversational_score": "conversational_score@file-" + sha256_hex(conv_text)[:12],
            "feature_category": "feature_category@file-" + sha256_hex(cat_text)[:12]}
    with LoopbackServer() as server:
        spec = f"openai:judge-model@{server.base_url}"
        common = ["--labels", str(tmp_path / "export"), "--categories"]
        files = ["--prompt-file", f"conversational_score={tmp_path / 'conv.txt'}",
                 "--prompt-file", f"feature_category={tmp_path / 'cat.txt'}"]
        assert run(argv(tmp_path, "o", spec, *common, *files, "--judge-batch-out", str(tmp_path / "b1.jsonl")),
                   capsys)[0] == 0
        assert run(argv(tmp_path, "p", spec, *common, "--judge-batch-out", str(tmp_path / "b2.jsonl")), capsys)[0] == 0
        assert server.stats()["completions"] == 0
    users = [json.loads(x)["body"]["messages"][-1]["content"] for x in (tmp_path / "b1.jsonl").read_text().splitlines()]
    assert sum(u.startswith("CAT-MARKER 3: ") for u in users) == 1  # one call for the three descriptions
    assert all(u.startswith(("CONV-MARKER ", "CAT-MARKER ")) for u in users) and len(users) > 1
    stage = json.loads((tmp_path / "o" / "stage.json").read_text())
    assert stage["inputs"]["prompts"] == keys == summary_of(tmp_path, "o")["prompts"]
    # the template is part of every cache key (custom_id): the shipped prompts' requests share none
    ids = [{json.loads(x)["custom_id"] for x in (tmp_path / b).read_text().splitlines()}
           for b in ("b1.jsonl", "b2.jsonl")]
    assert len(ids[0]) == len(ids[1]) and not ids[0] & ids[1]
    assert "prompts" not in json.loads((tmp_path / "p" / "stage.json").read_text())["inputs"]

    # an edited prompt file is another run: refused in the same folder
    write_prompt(tmp_path / "conv.txt", CONVERSATIONAL_SCORE, "EDITED", "{n} {excerpts}")
    with pytest.raises(RunDirError, match=r"inputs\.prompts\.conversational_score"):
        run(argv(tmp_path, "o", spec, *common, *files, "--judge-batch-out", str(tmp_path / "b1.jsonl")), capsys)
    write_prompt(tmp_path / "conv.txt", CONVERSATIONAL_SCORE, "X", "{n}")
    with pytest.raises(ValueError, match=r"lacks the placeholder\(s\) \{excerpts\}"):
        run(argv(tmp_path, "q", spec, "--prompt-file", f"conversational_score={tmp_path / 'conv.txt'}"), capsys)
    with pytest.raises(ValueError, match="unknown prompt kind 'perspectives'"):
        run(argv(tmp_path, "q", spec, "--prompt-file", f"perspectives={tmp_path / 'conv.txt'}"), capsys)
    assert not (tmp_path / "q").exists()


class MarkerJudge:
    """Answers the coding and perspective prompts only when they are the user files' (by their markers)."""

    name = "marker-judge"

    def __init__(self) -> None:
        self.users: list[str] = []

    def complete(self, messages):
        user = messages[-1]["content"]
        self.users.append(user)
        if user.startswith("COG-MARKER"):
            return json.dumps({c: 1 for c in COGNITIVE.categories})
        if user.startswith("PERSP-MARKER"):
            return json.dumps({"perspectives": [{"id": 1, "expertise": "arithmetic", "bfi10": [3] * 10,
                                                 "segments": [0]}]})
        raise AssertionError(f"a shipped prompt reached the judge: {user[:80]}")


def test_prompt_files_reach_behaviour_coding_and_perspectives(tmp_path) -> None:
    cog = write_prompt(tmp_path / "cog.txt", COGNITIVE.template, "COG-MARKER", "{task} {trace}")
    persp = write_prompt(tmp_path / "persp.txt", PERSPECTIVES_PROMPT, "PERSP-MARKER", "{n_segments} {segments}")
    args = argparse.Namespace(judge="openai:m@http://127.0.0.1:9/v1", schemes=("cognitive",), perspectives=True,
                              prompt_file=[f"behaviours_cognitive={tmp_path / 'cog.txt'}",
                                           f"perspectives={tmp_path / 'persp.txt'}"])
    coding = from_flags(CodingOptions, args).config()
    assert coding is not None
    versions = {t.name: t.version for t in coding.prompts}
    assert versions == {"behaviours_cognitive": "file-" + sha256_hex(cog)[:12],
                        "perspectives": "file-" + sha256_hex(persp)[:12]}
    assert [p["version"] for p in jsonable(coding)["prompts"]] == list(versions.values())  # in the run identity
    records = [SimpleNamespace(key=f"r{i}", completion=f"Try {i} * 2. Check it. Done.", target=54, nums=[i, 2])
               for i in range(2)]
    judge = MarkerJudge()
    codings = code_behaviours(judge, records, coding, tmp_path)
    assert [c.counts for c in codings] == [{c: 1 for c in COGNITIVE.categories}] * 2
    assert {c.prompt for c in codings} == {f"behaviours_cognitive@{versions['behaviours_cognitive']}"}
    logged = [json.loads(x) for x in (tmp_path / "perspectives.jsonl").read_text().splitlines()]
    assert [r["status"] for r in logged] == ["ok", "ok"]
    assert {r["prompt"] for r in logged} == {f"perspectives@{versions['perspectives']}"}
    assert len(judge.users) == 4

    with pytest.raises(SystemExit, match="need --judge"):
        from_flags(CodingOptions, argparse.Namespace(judge=None, schemes=("cognitive",), perspectives=False,
                                                     prompt_file=[f"perspectives={tmp_path / 'persp.txt'}"])).config()
    with pytest.raises(SystemExit, match="unknown prompt kind 'conversational_score'"):
        from_flags(CodingOptions, argparse.Namespace(
            **{**vars(args), "prompt_file": [f"conversational_score={tmp_path / 'cog.txt'}"]})).config()
    with pytest.raises(ValueError, match="unknown coding prompt"):
        CodingConfig("openai:m@http://127.0.0.1:9/v1", prompts=(CONVERSATIONAL_SCORE,))
