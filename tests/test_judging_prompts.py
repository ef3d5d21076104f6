"""Prompt templates from user files: placeholders validated at load, the file's hash in every key."""

from __future__ import annotations

import pytest

from interp_sot.analysis.perspectives import PERSPECTIVES_PROMPT
from interp_sot.behaviours.judge_coding import TraceToCode, code_traces, resolve_scheme
from interp_sot.behaviours.prompts import COGNITIVE, SCHEMES
from interp_sot.judging.prompts.categories import FEATURE_CATEGORY
from interp_sot.judging.prompts.conversational import CONVERSATIONAL_SCORE, format_excerpts
from interp_sot.judging.prompts.files import load_prompt_file, load_prompt_files, parse_prompt_text
from interp_sot.judging.store import sha256_hex
from interp_sot.screening.score_store import ScoreStore

RATIO_FILE = """[system]
You rate excerpts for conversation. Answer like {"scores": [s1, s2]}.
[user]
There are {n} excerpts:
{excerpts}
Reply {"scores": [...]} only.
"""

ALL_KINDS = {CONVERSATIONAL_SCORE.name: CONVERSATIONAL_SCORE, FEATURE_CATEGORY.name: FEATURE_CATEGORY,
             PERSPECTIVES_PROMPT.name: PERSPECTIVES_PROMPT, **{s.template.name: s.template for s in SCHEMES.values()}}


def test_file_template_renders_placeholders_and_keeps_json_braces(tmp_path) -> None:
    path = tmp_path / "ratio.txt"
    path.write_text(RATIO_FILE)
    template = load_prompt_file(path, CONVERSATIONAL_SCORE)
    assert template.name == "conversational_score" and template.fields == ("excerpts", "n")
    assert template.version == "file-" + sha256_hex(RATIO_FILE)[:12]
    messages = template.render(n="2", excerpts=format_excerpts(["a", "b"]))
    assert messages == [
        {"role": "system", "content": 'You rate excerpts for conversation. Answer like {"scores": [s1, s2]}.'},
        {"role": "user", "content": "There are 2 excerpts:\n### Excerpt 1\na\n\n### Excerpt 2\nb\n"
                                    'Reply {"scores": [...]} only.'},
    ]
    # no headers: the whole file is the user message, no system message
    bare = parse_prompt_text("Count in {trace} for {task}: JSON {\"verification\": 0}", COGNITIVE.template)
    assert bare.render(task="T", trace="X") == [
        {"role": "user", "content": 'Count in X for T: JSON {"verification": 0}'}]
    # editing the file changes the key, so nothing judged under the old wording is reused
    edited = parse_prompt_text(RATIO_FILE.replace("There are", "Here are"), CONVERSATIONAL_SCORE)
    assert edited.key != template.key
    store = tmp_path / "scores.jsonl"
    ScoreStore(store, "j", template.key).put_many([("text", 80.0)])
    assert ScoreStore(store, "j", edited.key).get("text") is None
    assert ScoreStore(store, "j", template.key).get("text") == 80.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[user]\nRate these excerpts:\n{excerpts}", r"lacks the placeholder\(s\) \{n\}; its user message must "
                                                    r"contain \{excerpts\}, \{n\}"),
        ("[user]\n{n} {excerpts} {excerpt}", r"unknown placeholder\(s\) \{excerpt\}"),
        ("[system]\nYou see {n}.\n[user]\n{n} {excerpts}", r"placeholders belong in the \[user\] section"),
        ("[system]\nonly a system part", r"no \[user\] section"),
        ("preamble\n[user]\n{n} {excerpts}", "text before the first"),
        ("[user]\n{n}\n[user]\n{excerpts}", "appears twice"),
    ],
)
def test_bad_prompt_files_fail_at_load_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_prompt_text(text, CONVERSATIONAL_SCORE, "f.txt")


def test_every_shipped_template_can_be_replaced(tmp_path) -> None:
    specs = []
    for kind, template in ALL_KINDS.items():
        path = tmp_path / f"{kind}.txt"
        path.write_text("[user]\n" + " ".join("{" + f + "}" for f in template.fields))
        specs.append(f"{kind}={path}")
    loaded = load_prompt_files(specs, ALL_KINDS)
    assert sorted(loaded) == sorted(ALL_KINDS) == sorted(
        ["conversational_score", "feature_category", "perspectives", "behaviours_conversational",
         "behaviours_bales_ipa", "behaviours_cognitive"])
    assert all(loaded[k].fields == ALL_KINDS[k].fields for k in loaded)
    with pytest.raises(ValueError, match="unknown prompt kind 'ratio'"):
        load_prompt_files([f"ratio={tmp_path / 'x'}"], ALL_KINDS)
    with pytest.raises(ValueError, match="write KIND=PATH"):
        load_prompt_files(["conversational_score"], ALL_KINDS)
    with pytest.raises(ValueError, match="cannot read prompt file"):
        load_prompt_files([f"perspectives={tmp_path / 'missing.txt'}"], ALL_KINDS)


class RecordingJudge:
    name = "recording"

    def __init__(self) -> None:
        self.seen: list[list[dict[str, str]]] = []

    def complete(self, messages):
        self.seen.append(messages)
        return '{"verification": 1, "backtracking": 0, "subgoal_setting": 2, "backward_chaining": 0}'


def test_behaviour_coding_uses_the_file_prompt(tmp_path) -> None:
    template = parse_prompt_text("[user]\nMY PROMPT task={task} trace={trace}", COGNITIVE.template)
    judge = RecordingJudge()
    items = [TraceToCode("t1", "Let me check: 2 + 2 = 4.", "reach 4")]
    codings = code_traces(judge, items, ["cognitive"], templates={"cognitive": template}, out_path=tmp_path / "b.jsonl")
    assert judge.seen == [[{"role": "user", "content": "MY PROMPT task=reach 4 trace=Let me check: 2 + 2 = 4."}]]
    assert codings[0].prompt == template.key and codings[0].counts == {
        "verification": 1, "backtracking": 0, "subgoal_setting": 2, "backward_chaining": 0}
    # the shipped prompt is a different key: coded again, not mixed up with the file's codings
    code_traces(judge, items, ["cognitive"], out_path=tmp_path / "b.jsonl")
    assert len(judge.seen) == 2 and judge.seen[1][0]["content"] == COGNITIVE.template.system
    with pytest.raises(ValueError, match="placeholders"):
        resolve_scheme("cognitive", parse_prompt_text("{n} {excerpts}", CONVERSATIONAL_SCORE))
    with pytest.raises(ValueError, match="unknown schemes"):
        code_traces(judge, items, ["cognitive"], templates={"cognitve": template})


@pytest.mark.parametrize(("option", "message"), [
    ("conversational_score={path}", "lacks the placeholder(s) {excerpts}"),
    ("nonsense={path}", "unknown prompt kind 'nonsense'"),
    ("conversational_score={path}.missing", "cannot read prompt file"),
])
def test_bad_prompt_file_on_the_command_line_is_one_line_exit_2(tmp_path, capsys, option, message) -> None:
    """A user's prompt file is input, not code: its errors are expected errors (one line, exit 2, no traceback),
    reported before any input is read (``--stats`` names nothing here)."""
    from interp_sot.cli import main

    path = tmp_path / "ratio.txt"
    path.write_text("Rate {n} excerpts.")
    argv = ["screen", "--stats", str(tmp_path / "absent"), "--out", str(tmp_path / "o"), "--judge", "heuristic",
            "--prompt-file", option.format(path=path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("interp-sot screen: error: ") and message in err and "\n" not in err
    assert "Traceback" not in err and not (tmp_path / "o" / "stage.json").exists()
