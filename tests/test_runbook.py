"""The README's GPU runbook, run verbatim against the hub stand-ins: stats -> screen -> steer -> controls -> analyze.

The commands are read from the README's runbook block (the single source), and only these substitutions are made:
``--device cpu``, ``--dtype float32``, small sizes (SUBSTITUTE), the offline ``heuristic`` judge for the user's LLM
judge, and run folders under a temporary directory (the commands run there; ``neuronpedia/`` links to the stand-in
export). Everything else, ids included, is exactly what a user types on the GPU machine, with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hub_standins import builder, hub_standins_fixture  # noqa: F401 - fixture hub_standins, requested by name

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## GPU runbook"

SUBSTITUTE = {
    "--device": "cpu",
    "--dtype": "float32",
    "--n-problems": "2",
    "--max-new-tokens": "6",
    "--batch-size": "5",
    "--max-tokens": "1000",
    "--max-length": "64",
    "--n-controls": "2",
    "--problems-per-feature": "2",
    "--judge": "heuristic",
}
"""Flag -> value used in the dry run (the README's value is replaced; flags absent from a command stay absent)."""
EXTRA = {"analyze": ["--bootstrap", "20", "--no-plot", "--no-length-control"]}
"""Flags appended to keep a step small; ``--no-length-control``: every tiny trace hits the token cap, so
log(trace length) is constant within problems and cannot be a regressor."""
STAGES = ("stats", "screen", "steer", "controls", "analyze")


def runbook_commands(readme: Path = ROOT / "README.md") -> list[list[str]]:
    """The ``interp-sot`` commands of the runbook's first ``bash`` block, continuation lines joined."""
    text = readme.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the GPU runbook has no ```bash block"
    joined = re.sub(r"\\\n\s*", " ", block.group(1))
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.startswith("interp-sot ")]


def substitute(cmd: list[str], tmp: Path) -> list[str]:
    out = list(cmd[1:])
    for i in range(len(out) - 1):
        if out[i] in SUBSTITUTE:
            out[i + 1] = SUBSTITUTE[out[i]]
    out = [str(tmp / a) if a.startswith("runs/") else a for a in out]
    return out + EXTRA.get(out[0], [])


def missing_flags(commands: list[list[str]]) -> list[str]:
    """``stage --flag`` for every flag of the runbook the CLI does not define (yet)."""
    from interp_sot.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = []
    for cmd in commands:
        known = sub.choices[cmd[1]]._option_string_actions  # type: ignore[attr-defined]
        for arg in cmd[2:]:
            flag = arg.split("=", 1)[0]
            if flag.startswith("--") and flag not in known:
                missing.append(f"{cmd[1]} {flag}")
    return missing


def test_runbook_block_is_complete() -> None:
    """The README holds every stage of the paper's setting, with the paper's ids and options."""
    commands = runbook_commands()
    assert [c[1] for c in commands] == list(STAGES)
    flat = {c[1]: " ".join(c) for c in commands}
    assert "--model deepseek-ai/DeepSeek-R1-Distill-Llama-8B" in flat["stats"]
    assert "--sae llama_scope_r1_distill --sae-id l15r_800m_slimpajama --layer 15" in flat["stats"]
    assert "--labels neuronpedia/v1/deepseek-r1-distill-llama-8b/15-llamascope-slimpj-res-32k" in flat["screen"]
    for stage in ("steer", "controls"):
        assert f"--problems {builder.COUNTDOWN} --tinyzero-split test --n-problems 1024" in flat[stage]
        assert "--scorer tinyzero" in flat[stage]
    assert "--screen-table runs/screen/screen.parquet" in flat["controls"]  # made by the screen step
    assert "--out runs/screen" in flat["screen"] and "--stats runs/stats" in flat["screen"]


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import sys; from interp_sot.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.integration
def test_runbook_runs_verbatim_on_standins(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    commands = runbook_commands()
    assert not missing_flags(commands), "the CLI lacks flags the README's runbook uses"
    standins = request.getfixturevalue("hub_standins")
    (tmp_path / "neuronpedia").symlink_to(standins.neuronpedia.parents[2], target_is_directory=True)
    env = {**os.environ, "HF_HOME": str(standins.hf_home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("HF_HUB_CACHE", None)
    for cmd in commands:
        args = substitute(cmd, tmp_path)
        done = _run(args, tmp_path, env)
        assert done.returncode == 0, f"{shlex.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    check_outputs(tmp_path / "runs", standins)


def test_cli_defines_every_runbook_flag() -> None:
    """Quick guard (no stand-ins, no models): a README flag the CLI lacks fails here, by name."""
    assert missing_flags(runbook_commands()) == []


def _countdown_rows(standins: Any, ids: set[str]) -> dict[str, tuple[list[int], int]]:
    """problem id -> (nums, target) read straight from the stand-in dataset's parquet (row number = id suffix)."""
    import pyarrow.parquet as pq

    (path,) = sorted(standins.snapshots[builder.COUNTDOWN].rglob("*.parquet"))
    table = pq.read_table(path)
    out = {}
    for pid in ids:
        row = table.slice(int(pid.rsplit("-", 1)[1]), 1).to_pylist()[0]
        out[pid] = ([int(n) for n in row["nums"]], int(row["target"]))
    return out


def _check_traces(records: list[dict[str, Any]], problems: dict[str, tuple[list[int], int]]) -> None:
    """Each trace is scored by the runbook's --scorer tinyzero and belongs to a problem of the dataset."""
    from interp_sot.tasks.countdown import CountdownProblem, score_completion

    for r in records:
        assert r["settings"]["answer_rule"] == "tinyzero" and r["settings"]["prompt_style"] == "chat"
        assert (r["nums"], r["target"]) == problems[r["problem_id"]]
        score = score_completion(r["completion"], CountdownProblem(r["problem_id"], tuple(r["nums"]), r["target"]),
                                 rule="tinyzero")
        assert (r["answer"], r["correct"]) == (score.answer, score.correct)


def check_outputs(runs: Path, standins: Any) -> None:
    """Every stage finished, wrote what its manifest lists, and read what the previous one wrote."""
    for stage in STAGES:
        folder = runs / ("steer30939" if stage == "steer" else "analysis" if stage == "analyze" else stage)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["stage"] == stage and manifest["complete"] is True
        assert all((folder / f).exists() for f in manifest["files"]), (stage, manifest["files"])
    stats = pd.read_parquet(runs / "stats" / "features.parquet")
    assert sorted(stats["feature"]) == list(range(32_768)) and stats["fire_count"].sum() > 0
    screen = pd.read_parquet(runs / "screen" / "screen.parquet").set_index("feature")
    assert sorted(screen.index) == list(range(32_768))
    assert screen.loc[builder.PAPER_FEATURE, "label"] == "discourse marker for surprise, realization, or acknowledgment"
    assert (screen["fire_count"] == stats.set_index("feature")["fire_count"]).all()  # screen read these stats
    test_ids = {f"Countdown-Tasks-3to4-{i}" for i in range(327_680, 328_704)}
    sweep = _jsonl(runs / "steer30939" / "sweep.jsonl")
    assert len(sweep) == 2 * 5  # problems x strengths
    assert {r["strength"] for r in sweep} == {-10.0, -5.0, 0.0, 5.0, 10.0}
    assert {r["problem_id"] for r in sweep} <= test_ids and len({r["problem_id"] for r in sweep}) == 2
    assert {r["feature"] for r in sweep} == {builder.PAPER_FEATURE}
    problems = _countdown_rows(standins, {r["problem_id"] for r in sweep})
    _check_traces(sweep, problems)
    units = json.loads((runs / "steer30939" / "strength_units.json").read_text())
    assert all(row["added_norm"] == pytest.approx(abs(row["strength"])) for row in units["rows"])  # --units unit
    # controls: 2 + 2 features drawn from the screen table (never 30939), each at 2 x its max activation, each on
    # the same 2 TinyZero test problems as the sweep (--n-problems 2 --problem-seed 0 --problems-per-feature 2)
    drawn = json.loads((runs / "controls" / "controls.json").read_text())
    assert sorted(c["group"] for c in drawn) == ["conversational"] * 2 + ["non_conversational"] * 2
    assert builder.PAPER_FEATURE not in {c["feature"] for c in drawn}
    for c in drawn:
        assert c["strength"] == pytest.approx(2 * screen.loc[c["feature"], "max_act"], rel=1e-6)
    controls = _jsonl(runs / "controls" / "controls.jsonl")
    assert len(controls) == len(drawn) * 2
    strength_of = {c["feature"]: c["strength"] for c in drawn}
    assert all(r["strength"] == pytest.approx(strength_of[r["feature"]]) for r in controls)
    assert {r["problem_id"] for r in controls} == set(problems)
    _check_traces(controls, problems)
    summary = json.loads((runs / "analysis" / "summary.json").read_text())
    assert summary["rows"] == len(sweep) and summary["files"]
    accuracy = pd.read_csv(runs / "analysis" / "accuracy_by_strength.csv")
    assert accuracy["n"].sum() == len(sweep)
    assert accuracy.set_index("strength")["accuracy"].to_dict() == {
        s: sum(r["correct"] for r in sweep if r["strength"] == s) / 2 for s in (-10.0, -5.0, 0.0, 5.0, 10.0)}
    assert len(pd.read_csv(runs / "analysis" / "controls_regression.csv"))  # analyze read the controls run
    for name in summary["files"].values():
        assert (runs / "analysis" / name).is_file(), name
