"""``interp-sot analyze`` end to end on a synthetic sweep with planted steering effects."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interp_sot.analysis.regression import fe_ols
from interp_sot.analysis.steering_effects import accuracy_by_strength, strength_regressions
from interp_sot.cli import analyze

STRENGTHS = (-10.0, 0.0, 10.0)


def sweep(n_problems: int = 150, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_problems):
        ease = rng.normal()
        for s in STRENGTHS:
            verification = rng.poisson(2 + 0.15 * max(s, 0))
            backtracking = rng.poisson(1 + 0.05 * max(s, 0))
            logit = -1 + ease + 0.04 * s + 0.2 * verification
            rows.append(
                {
                    "problem_id": f"p{p}",
                    "strength": s,
                    "correct": bool(rng.random() < 1 / (1 + np.exp(-logit))),
                    "trace_len": int(rng.integers(200, 4000)),
                    "verification": verification,
                    "backtracking": backtracking,
                }
            )
    return pd.DataFrame(rows)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    analyze.add_parser(parser.add_subparsers())
    return parser.parse_args(["analyze", *argv])


def test_end_to_end(tmp_path: Path) -> None:
    df = sweep()
    df.to_parquet(tmp_path / "sweep.parquet")
    rng = np.random.default_rng(1)
    ctrl = pd.DataFrame(
        {
            "problem_id": np.repeat(np.arange(100), 2),
            "conversational": np.tile([0, 1], 100),
            "correct": rng.random(200) < 0.3,
            "trace_len": rng.integers(100, 3000, 200),
        }
    )
    ctrl.to_csv(tmp_path / "controls.csv", index=False)
    out = tmp_path / "out"
    args = parse(
        [
            "--sweep",
            str(tmp_path / "sweep.parquet"),
            "--controls",
            str(tmp_path / "controls.csv"),
            "--out",
            str(out),
            "--bootstrap",
            "200",
        ]
    )
    assert args.run(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outcomes"] == ["correct", "verification", "backtracking"]
    assert summary["mediators"] == ["verification", "backtracking"]
    for name in summary["files"].values():
        assert (out / name).stat().st_size > 0
    assert (out / "analysis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    reg = pd.read_csv(out / "regression.csv")
    direct = fe_ols(
        df.assign(
            **{"s=+10": (df.strength == 10).astype(float), "s=-10": (df.strength == -10).astype(float)},
            log_len=np.log(df.trace_len),
        ),
        "verification",
        ["s=-10", "s=+10"],
        "problem_id",
        "problem_id",
        controls="log_len",
    )
    got = reg[reg.outcome == "verification"].set_index("term")
    assert got.loc["s=+10", "coef"] == pytest.approx(direct.set_index("term").loc["s=+10", "coef"])
    assert got.loc["s=+10", "se"] == pytest.approx(direct.set_index("term").loc["s=+10", "se"])
    assert got.loc["s=+10", "coef"] > 0 and got.loc["s=+10", "p"] < 0.01  # planted: +1.5 verifications
    # one correction family: the 2 strength terms x 3 outcomes; the log-length control rows are not tested
    tested = reg[reg["term"].str.startswith("s=")]
    ranked = tested["p"].sort_values()
    holm = np.maximum.accumulate(np.minimum(1, ranked.to_numpy() * np.arange(6, 0, -1)))  # Holm by hand
    assert tested.loc[ranked.index, "p_holm"].to_numpy() == pytest.approx(holm)
    assert (tested["family_size"] == 6).all() and reg.loc[reg["term"] == "log_trace_len", "p_holm"].isna().all()
    assert summary["significance"]["regression"]["n_tests"] == 6
    assert summary["significance"]["regression"]["holm"] == int((tested["p_holm"] < 0.05).sum())
    steer = pd.read_csv(out / "steerability.csv")
    assert set(steer["outcome"]) == {"correct", "verification", "backtracking"}
    assert set(steer["contrast"]) == {"s=-10 vs s=+0", "s=+10 vs s=+0", "slope"}
    assert (steer["n_with"] + steer["n_against"] + steer["n_ties"] == steer["n_problems"]).all()

    med = pd.read_csv(out / "mediation.csv")
    assert set(med["scale"]) == {"raw", "std_all", "std_nox"}
    for _, tab in med.groupby("scale"):
        est = tab.set_index("effect")["estimate"]
        assert est["total"] == pytest.approx(est["direct"] + est["indirect_total"], rel=1e-10)
    assert (med["n_boot_ok"] == 200).all() and med["boot_ci_low"].notna().all()

    acc = pd.read_csv(out / "accuracy_by_strength.csv")
    assert acc["n"].tolist() == [150, 150, 150]
    assert acc["accuracy"].tolist() == pytest.approx(df.groupby("strength")["correct"].mean().tolist())
    ctrl_tab = pd.read_csv(out / "controls_regression.csv")
    assert ctrl_tab["term"].tolist() == ["conversational", "log_trace_len"]
    assert ctrl_tab["p_holm"].iloc[0] == pytest.approx(ctrl_tab["p"].iloc[0]) and ctrl_tab["p_holm"].isna().iloc[1]
    assert {"p_holm", "q_bh"} <= set(med.columns) and (med.groupby("scale")["family_size"].max() == len(med) / 3).all()


def test_explicit_columns_and_no_mediation(tmp_path: Path) -> None:
    df = sweep(40)
    df.to_csv(tmp_path / "s.csv", index=False)
    args = parse(
        [
            "--sweep",
            str(tmp_path / "s.csv"),
            "--out",
            str(tmp_path / "o"),
            "--behaviours",
            "backtracking",
            "--mediators",
            "none",
            "--no-plot",
            "--no-length-control",
        ]
    )
    assert args.run(args) == 0
    files = json.loads((tmp_path / "o" / "summary.json").read_text())["files"]
    assert set(files) == {"accuracy", "regression", "steerability"}
    reg = pd.read_csv(tmp_path / "o" / "regression.csv")
    assert set(reg["outcome"]) == {"correct", "backtracking"} and "log_trace_len" not in set(reg["term"])


def test_bad_sweeps(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="table not found"):
        analyze.read_table(tmp_path / "nope.csv")
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(ValueError, match="unsupported table format"):
        analyze.read_table(tmp_path / "x.txt")
    df = sweep(20)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['trace_len'\]"):
        strength_regressions(df.drop(columns="trace_len"), ["correct"])
    with pytest.raises(ValueError, match="baseline strength 5"):
        strength_regressions(df, ["correct"], baseline=5)
    with pytest.raises(ValueError, match="must be > 0"):
        accuracy_by_strength(df.assign(trace_len=0))
    with pytest.raises(ValueError, match="missing values"):
        strength_regressions(df.assign(verification=df.verification.where(df.index > 3)), ["verification"])
    dropped = strength_regressions(
        df.assign(verification=df.verification.where(df.index > 3)), ["verification"], missing="drop"
    )
    assert (dropped["nobs"] < len(df)).all()
