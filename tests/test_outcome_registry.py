"""The outcome registry: an outcome registered once reaches the CLI, the analysis tables and the report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from synthetic_runs import control_records, sweep_records, write_run

from interp_sot.analysis.outcomes import (
    Outcome,
    outcome_columns,
    outcome_of,
    register_outcome,
    registered_outcomes,
    unregister_outcome,
)
from interp_sot.cli import main
from interp_sot.errors import InterpSotError

TOY = "toy.long_trace"
LIMIT = 60


def _long(frame: pd.DataFrame, run: Path | None) -> pd.DataFrame:
    return frame.assign(**{TOY: (frame["completion"].str.len() > LIMIT).astype(float)})


@pytest.fixture
def toy() -> Iterator[Outcome]:
    outcome = register_outcome(Outcome(TOY, "binary", f"the completion is longer than {LIMIT} characters", add=_long,
                                       method="toy", unit="share"))
    yield outcome
    if TOY in {o.name for o in registered_outcomes()}:
        unregister_outcome(TOY)


def _analyze(tmp_path: Path, out: str) -> Path:
    run = tmp_path / "steer"
    if not run.exists():
        write_run(run, sweep_records(30), measured=True)
        write_run(tmp_path / "controls", control_records(30), stage="controls")
    assert main(["analyze", "--sweep", str(run), "--controls", str(tmp_path / "controls"), "--out",
                 str(tmp_path / out), "--bootstrap", "50", "--mediators", "none", "--no-plot"]) == 0
    return tmp_path / out


def test_a_registered_outcome_reaches_the_cli_tables_and_report(toy, tmp_path) -> None:
    out = _analyze(tmp_path, "a")
    traces = pd.read_parquet(out / "traces.parquet")
    expected = (traces["completion"].str.len() > LIMIT).astype(float)
    assert traces[TOY].tolist() == expected.tolist() and 0 < expected.mean() < 1  # it varies: it can be fitted
    assert TOY in json.loads((out / "summary.json").read_text())["outcomes"]
    reg = pd.read_csv(out / "regression.csv")
    fitted = reg[(reg["outcome"] == TOY) & (reg["term"] == "s=+10")]
    assert len(fitted) == 1 and fitted["p_holm"].notna().all()  # in the family of strength contrasts
    rates = pd.read_csv(out / "behaviour_rates.csv")
    toy_rates = rates[rates["behaviour"] == TOY].set_index("strength")
    assert set(toy_rates["method"]) == {"toy"} and set(toy_rates["unit"]) == {"share"}
    for s in (0.0, 10.0):
        assert toy_rates.loc[s, "mean"] == pytest.approx(expected[traces["strength"] == s].mean())
    assert TOY in set(pd.read_csv(out / "steerability.csv")["outcome"])
    report = (out / "report" / "summary.md").read_text()
    assert f"| {TOY} | toy | 30939 |" in report  # the behaviour-rate table
    assert f"| {TOY} | LPM | s=+10 | {fitted['coef'].iloc[0]:.4g} |" in report  # the effects, a binary outcome
    assert TOY in pd.read_csv(out / "report" / "traces.csv").columns
    assert TOY in set(pd.read_parquet(out / "controls_traces.parquet").columns)  # every run's per-trace table

    unregister_outcome(TOY)  # gone from the registry: gone from every table
    again = _analyze(tmp_path, "b")
    assert TOY not in pd.read_csv(again / "regression.csv")["outcome"].tolist()
    assert TOY not in (again / "report" / "summary.md").read_text()


def test_registry_refuses_what_it_cannot_use(toy) -> None:
    with pytest.raises(InterpSotError, match="already registered"):
        register_outcome(Outcome(TOY, "continuous", "twice"))
    assert register_outcome(Outcome(TOY, "continuous", "again", add=_long), replace=True).kind == "continuous"
    with pytest.raises(InterpSotError, match="kind must be"):
        Outcome("x", "count", "bad kind")  # type: ignore[arg-type]
    with pytest.raises(InterpSotError, match="description"):
        Outcome("x", "binary", " ")
    with pytest.raises(InterpSotError, match="no outcome 'nope'"):
        unregister_outcome("nope")
    # families: the longest registered prefix names the column's outcome; guards are never outcomes
    assert outcome_of("judge.bales.reciprocity.ask_give").name == "judge.bales.reciprocity."  # type: ignore[union-attr]
    assert outcome_of("judge.cognitive.verification").name == "judge."  # type: ignore[union-attr]
    frame = pd.DataFrame({"correct": [1, 0], "coherence_logprob": [-1.0, -2.0], "markers.wait": [1.0, 2.0],
                          "n_words": [3, 4]})
    assert outcome_columns(frame) == ["markers.wait"]
    assert outcome_columns(frame, correct=True) == ["correct", "markers.wait"]


def test_a_binary_outcome_with_other_values_is_refused(tmp_path, capsys) -> None:
    register_outcome(Outcome(TOY, "binary", "not 0/1", add=lambda f, run: f.assign(**{TOY: f["n_new_tokens"]})),
                     replace=True)
    try:
        run = write_run(tmp_path / "steer", sweep_records(10))
        argv = ["analyze", "--sweep", str(run), "--out", str(tmp_path / "a"), "--bootstrap", "10", "--no-plot",
                "--mediators", "none"]
        assert main(argv) == 2
        assert f"outcome '{TOY}' is registered as binary" in capsys.readouterr().err
    finally:
        unregister_outcome(TOY)
