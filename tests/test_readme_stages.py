"""The README's stage script ("The same stages from a script"), run verbatim on SmolLM2 and the shipped SAE.

The block is read out of README.md and executed as written, in a fresh folder holding a small ``corpus.jsonl``
(documents of the shipped screening corpus), so the README cannot drift from the stage API.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]

README = Path(__file__).resolve().parents[1] / "README.md"


def stage_script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    scripts = [b for b in blocks if "conclude_run(" in b and "steer_features(" in b]
    assert len(scripts) == 1, "README.md should hold exactly one stage script (steer_features ... conclude_run)"
    return scripts[0]


def test_readme_stage_script_runs_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from interp_sot.data import read_screening_corpus

    docs = list(read_screening_corpus())
    chosen = [d for d in docs if d["conversational"]][:16] + [d for d in docs if not d["conversational"]][:16]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"text": d["text"][:1500],
                                                               "conversational": d["conversational"]}) + "\n"
                                                   for d in chosen))
    monkeypatch.chdir(tmp_path)
    exec(compile(stage_script(), "<README.md stage script>", "exec"), {"__name__": "readme"})  # our own README
    printed = capsys.readouterr().out
    steer = tmp_path / "runs/x/steer"
    for folder in ("runs/x/stats", "runs/x/screen", "runs/x/pick", "runs/x/steer", "runs/x/steer/analysis",
                   "runs/x/steer/report"):
        assert (tmp_path / folder / "manifest.json").is_file(), f"{folder} did not finish"
    units = json.loads((steer / "strength_units.json").read_text())
    assert units["units"] == "resid" and {r["strength"] for r in units["rows"]} == {0.0, 0.1}
    assert (steer / "coherence.jsonl").is_file() and (steer / "trace_features.jsonl").is_file()  # measured first
    regression = pd.read_csv(steer / "analysis/regression.csv")
    assert "correct" in set(regression["outcome"]) and "correct" in printed
    assert "Coherence" in (steer / "report/summary.md").read_text()
