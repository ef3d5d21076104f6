"""Parallel-mediator decomposition: exact identity, agreement with single regressions, scales, bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp_sot.analysis import mediation
from interp_sot.analysis.mediation import MediationConfig, mediate
from interp_sot.analysis.regression import fe_ols

A = (0.5, -0.3)
B = (0.4, 0.2)
DIRECT = 0.25


def planted(n_problems: int = 400, seed: int = 0) -> pd.DataFrame:
    """Two rows per problem (x = 0 and x = 1, like s = 0 vs s = +10), problem effects on everything."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_problems), 2)
    n = len(g)
    x = np.tile([0.0, 1.0], n_problems)
    alpha = rng.normal(size=n_problems)[g]
    log_len = 6 + 0.3 * alpha + 0.1 * x + rng.normal(size=n) * 0.5
    m1 = A[0] * x + 0.5 * alpha + rng.normal(size=n)
    m2 = A[1] * x - 0.2 * alpha + rng.normal(size=n)
    y = DIRECT * x + B[0] * m1 + B[1] * m2 + alpha - 0.1 * log_len + rng.normal(size=n)
    return pd.DataFrame({"problem": g, "x": x, "m1": m1, "m2": m2, "log_len": log_len, "y": y})


@pytest.mark.parametrize("fe", [None, "problem"])
@pytest.mark.parametrize("scale", ["raw", "std_all", "std_nox"])
def test_total_equals_direct_plus_indirect_exactly(fe: str | None, scale: str) -> None:
    df = planted(150)
    res = mediate(
        df,
        "x",
        "y",
        ["m1", "m2"],
        fe=fe,
        cluster="problem",
        controls=["log_len"],
        config=MediationConfig(n_boot=0, scale=scale),
    )
    assert res.total == pytest.approx(res.direct + res.indirect_total, rel=1e-12, abs=1e-14)
    tab = res.table.set_index(["effect", res.table["mediator"].fillna("")])
    assert tab.loc[("indirect_total", ""), "estimate"] == pytest.approx(tab.loc["indirect", "estimate"].sum())
    np.testing.assert_allclose(tab.loc["indirect", "estimate"], res.a * res.b)


def test_paths_and_their_ses_match_single_regressions() -> None:
    df = planted(300, seed=1)
    res = mediate(
        df,
        "x",
        "y",
        ["m1", "m2"],
        fe="problem",
        cluster="problem",
        controls=["log_len"],
        config=MediationConfig(n_boot=0),
    )
    tab = res.table
    for i, m in enumerate(["m1", "m2"]):
        a = fe_ols(df, m, "x", "problem", "problem", controls="log_len").set_index("term").loc["x"]
        row = tab[(tab.effect == "a") & (tab.mediator == m)].iloc[0]
        assert row["estimate"] == pytest.approx(a["coef"], rel=1e-10) and res.a[i] == pytest.approx(a["coef"])
        assert row["se"] == pytest.approx(a["se"], rel=1e-10)
    out = fe_ols(df, "y", ["x", "m1", "m2"], "problem", "problem", controls="log_len").set_index("term")
    for m in ("m1", "m2"):
        row = tab[(tab.effect == "b") & (tab.mediator == m)].iloc[0]
        assert row["estimate"] == pytest.approx(out.loc[m, "coef"], rel=1e-10)
        assert row["se"] == pytest.approx(out.loc[m, "se"], rel=1e-10)
    direct = tab[tab.effect == "direct"].iloc[0]
    assert direct["estimate"] == pytest.approx(out.loc["x", "coef"]) and direct["se"] == pytest.approx(
        out.loc["x", "se"]
    )
    total = fe_ols(df, "y", "x", "problem", "problem", controls="log_len").set_index("term").loc["x"]
    row = tab[tab.effect == "total"].iloc[0]
    assert row["estimate"] == pytest.approx(total["coef"]) and row["se"] == pytest.approx(total["se"])


def test_recovers_planted_decomposition_and_bootstrap_agrees_with_delta() -> None:
    df = planted(1500, seed=2)
    res = mediate(
        df,
        "x",
        "y",
        ["m1", "m2"],
        fe="problem",
        cluster="problem",
        controls=["log_len"],
        config=MediationConfig(n_boot=1000, seed=7),
    )
    tab = res.table.set_index(["effect", res.table["mediator"].fillna("")])
    truth = {
        ("a", "m1"): A[0],
        ("a", "m2"): A[1],
        ("b", "m1"): B[0],
        ("b", "m2"): B[1],
        ("indirect", "m1"): A[0] * B[0],
        ("indirect", "m2"): A[1] * B[1],
        ("indirect_total", ""): A[0] * B[0] + A[1] * B[1],
        ("direct", ""): DIRECT,
    }
    for key, value in truth.items():
        row = tab.loc[key]
        assert abs(row["estimate"] - value) < 4 * row["se"], key
        assert row["boot_ci_low"] < row["estimate"] < row["boot_ci_high"], key
    # Delta method and cluster bootstrap estimate the same sampling variability.
    ratio = tab["boot_se"] / tab["se"]
    assert ((ratio > 0.8) & (ratio < 1.25)).all(), ratio
    assert res.n_boot_ok == 1000


def test_standardised_scale_equals_raw_fit_on_z_scores() -> None:
    df = planted(200, seed=3)
    z = df.copy()
    for c in ("x", "m1", "m2", "y"):
        z[c] = (df[c] - df[c].mean()) / df[c].std(ddof=1)
    kw = dict(fe="problem", cluster="problem", controls=["log_len"])
    std = mediate(df, "x", "y", ["m1", "m2"], config=MediationConfig(n_boot=0, scale="std_all"), **kw)
    raw_z = mediate(z, "x", "y", ["m1", "m2"], config=MediationConfig(n_boot=0), **kw)
    np.testing.assert_allclose(std.table["estimate"], raw_z.table["estimate"], rtol=1e-10)
    np.testing.assert_allclose(std.table["se"], raw_z.table["se"], rtol=1e-10)
    z["x"] = df["x"]
    nox = mediate(df, "x", "y", ["m1", "m2"], config=MediationConfig(n_boot=0, scale="std_nox"), **kw)
    raw_nox = mediate(z, "x", "y", ["m1", "m2"], config=MediationConfig(n_boot=0), **kw)
    np.testing.assert_allclose(nox.table["estimate"], raw_nox.table["estimate"], rtol=1e-10)


def _resampled(df: pd.DataFrame, counts: np.ndarray) -> pd.DataFrame:
    parts = []
    for u, c in enumerate(counts):
        for copy in range(c):
            parts.append(df[df.problem == u].assign(problem=f"{u}-{copy}"))
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("fe", [None, "problem"])
def test_bootstrap_replicate_equals_refit_on_resampled_problems(fe: str | None) -> None:
    df = planted(40, seed=4)
    cfg = MediationConfig(n_boot=1, seed=11, scale="std_all")
    res = mediate(df, "x", "y", ["m1", "m2"], fe=fe, cluster="problem", controls=["log_len"], config=cfg)
    counts = np.random.default_rng(11).multinomial(40, np.full(40, 1 / 40), size=1)[0]
    again = mediate(
        _resampled(df, counts),
        "x",
        "y",
        ["m1", "m2"],
        fe=fe,
        cluster="problem",
        controls=["log_len"],
        config=MediationConfig(n_boot=0, scale="std_all"),
    )
    np.testing.assert_allclose(res.table["boot_ci_low"], again.table["estimate"], rtol=1e-8, atol=1e-12)


def test_fast_and_slow_bootstrap_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    df = planted(60, seed=5)
    cfg = MediationConfig(n_boot=50, seed=3, scale="std_nox")
    kw = dict(fe="problem", cluster="problem", controls=["log_len"], config=cfg)
    fast = mediate(df, "x", "y", ["m1", "m2"], **kw)
    monkeypatch.setattr(mediation, "is_nested", lambda *a: False)
    slow = mediate(df, "x", "y", ["m1", "m2"], **kw)
    cols = ["boot_se", "boot_ci_low", "boot_ci_high"]
    np.testing.assert_allclose(fast.table[cols], slow.table[cols], rtol=1e-8)


def test_bootstrap_is_seeded() -> None:
    df = planted(50, seed=6)
    kw = dict(fe="problem", cluster="problem")
    a = mediate(df, "x", "y", ["m1"], config=MediationConfig(n_boot=100, seed=1), **kw).table
    b = mediate(df, "x", "y", ["m1"], config=MediationConfig(n_boot=100, seed=1), **kw).table
    c = mediate(df, "x", "y", ["m1"], config=MediationConfig(n_boot=100, seed=2), **kw).table
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["boot_ci_low"], c["boot_ci_low"])


def test_semopy_cross_check_without_fe() -> None:
    """A saturated SEM's ML estimates equal OLS; semopy's optimiser gets within ~1e-5 with L-BFGS-B."""
    semopy = pytest.importorskip("semopy")
    df = planted(300, seed=8)
    res = mediate(df, "x", "y", ["m1", "m2"], config=MediationConfig(n_boot=0))
    model = semopy.Model("m1 ~ x\nm2 ~ x\ny ~ x + m1 + m2\nm1 ~~ m2")
    model.fit(df[["x", "m1", "m2", "y"]], obj="MLW", solver="L-BFGS-B")
    est = model.inspect()
    reg = est[est["op"] == "~"].set_index(["lval", "rval"])["Estimate"]
    np.testing.assert_allclose(res.a, [reg[("m1", "x")], reg[("m2", "x")]], atol=1e-4)
    np.testing.assert_allclose(res.b, [reg[("y", "m1")], reg[("y", "m2")]], atol=1e-4)
    assert res.direct == pytest.approx(reg[("y", "x")], abs=1e-4)


def test_bad_input() -> None:
    df = planted(30)
    with pytest.raises(ValueError, match="at least one mediator"):
        mediate(df, "x", "y", [])
    with pytest.raises(ValueError, match="'m1': 1"):
        mediate(df.assign(m1=df.m1.where(df.index != 4)), "x", "y", ["m1"])
    with pytest.raises(ValueError, match=r"collinear: 'Intercept' ~ \['m2'\]"):
        mediate(df.assign(m2=1.0), "x", "y", ["m1", "m2"], config=MediationConfig(n_boot=0))
    with pytest.raises(ValueError, match="standardised scale needs non-constant"):
        mediate(df.assign(y=1.0), "x", "y", ["m1", "m2"], config=MediationConfig(n_boot=0, scale="std_all"))
    with pytest.raises(ValueError, match="constant within the groups"):
        mediate(df.assign(m2=df.problem % 3), "x", "y", ["m1", "m2"], fe="problem", config=MediationConfig(n_boot=0))
    with pytest.raises(ValueError, match="n_boot"):
        MediationConfig(n_boot=-1)
    with pytest.raises(ValueError, match="scale"):
        MediationConfig(scale="std")  # type: ignore[arg-type]
