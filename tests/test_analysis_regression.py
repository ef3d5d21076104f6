"""fe_ols: planted effects, agreement with pyfixest and with a dummy-variable brute force, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from interp_sot.analysis.regression import TIDY_COLUMNS, fe_ols, fe_ols_fit


def planted(
    n_groups: int = 300,
    per: int = 3,
    n_clusters: int = 40,
    nested: bool = True,
    seed: int = 0,
    beta: float = 0.7,
    gamma: float = -0.3,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    n = len(g)
    cl = g % n_clusters if nested else rng.integers(0, n_clusters, n)
    alpha = rng.normal(size=n_groups)[g] * 2
    x = rng.normal(size=n) + 0.5 * alpha
    z = rng.normal(size=n)
    shock = rng.normal(size=n_clusters)[cl]
    y = beta * x + gamma * z + alpha + shock + rng.normal(size=n)
    return pd.DataFrame({"problem": g, "task": cl, "x": x, "z": z, "y": y})


def brute_force(df: pd.DataFrame, nested: bool) -> tuple[np.ndarray, np.ndarray]:
    """Dummy-variable OLS with an explicit CR1 sandwich and fixest's factor (independent of the within code)."""
    dummies = pd.get_dummies(df["problem"], dtype=float).to_numpy()
    xmat = np.column_stack([df[["x", "z"]].to_numpy(), dummies])
    y = df["y"].to_numpy()
    coef, *_ = np.linalg.lstsq(xmat, y, rcond=None)
    e = y - xmat @ coef
    bread = np.linalg.pinv(xmat.T @ xmat)
    meat = np.zeros((xmat.shape[1],) * 2)
    for c in np.unique(df["task"]):
        s = xmat[df["task"].to_numpy() == c].T @ e[df["task"].to_numpy() == c]
        meat += np.outer(s, s)
    vc = bread @ meat @ bread
    n, g = len(df), df["task"].nunique()
    k = 2 + (1 if nested else df["problem"].nunique())
    c = g / (g - 1) * (n - 1) / (n - k)
    return coef[:2], np.sqrt(np.diag(vc)[:2] * c)


@pytest.mark.parametrize("nested", [True, False])
def test_matches_dummy_variable_brute_force(nested: bool) -> None:
    df = planted(n_groups=60, per=4, n_clusters=12, nested=nested)
    tab = fe_ols(df, "y", "x", "problem", "task", controls="z")
    coef, se = brute_force(df, nested)
    assert list(tab.columns) == list(TIDY_COLUMNS)
    np.testing.assert_allclose(tab["coef"], coef, rtol=1e-9)
    np.testing.assert_allclose(tab["se"], se, rtol=1e-9)
    assert tab.attrs["fe_nested"] is nested
    assert tab.attrs["df_t"] == 11


def test_recovers_planted_effect() -> None:
    df = planted(n_groups=2000, per=2, n_clusters=100, seed=3)
    tab = fe_ols(df, "y", "x", "problem", "task", controls="z").set_index("term")
    for term, truth in (("x", 0.7), ("z", -0.3)):
        assert abs(tab.loc[term, "coef"] - truth) < 4 * tab.loc[term, "se"]
        assert tab.loc[term, "ci_low"] < truth < tab.loc[term, "ci_high"]
    assert tab.loc["x", "p"] < 1e-10


def test_inference_columns_follow_t_with_g_minus_1_df() -> None:
    df = planted(n_groups=80, per=3, n_clusters=9)
    tab = fe_ols(df, "y", ["x", "z"], "problem", "task", alpha=0.1)
    df_t = 8
    np.testing.assert_allclose(tab["t"], tab["coef"] / tab["se"])
    np.testing.assert_allclose(tab["p"], 2 * stats.t.sf(np.abs(tab["t"]), df_t))
    crit = stats.t.ppf(0.95, df_t)
    np.testing.assert_allclose(tab["ci_high"] - tab["coef"], crit * tab["se"])


@pytest.mark.parametrize(
    ("nested", "fe", "cluster", "singletons"),
    [
        (True, "problem", "task", "drop"),
        (False, "problem", "task", "drop"),
        (True, "problem", None, "drop"),
        (True, None, "task", "drop"),
        (False, "problem", "task", "keep"),
    ],
)
def test_agrees_with_pyfixest(nested: bool, fe: str | None, cluster: str | None, singletons: str) -> None:
    pytest.importorskip("pyfixest")
    df = planted(n_groups=400, per=2, n_clusters=30, nested=nested, seed=5)
    df = pd.concat(
        [
            df,
            planted(n_groups=7, per=1, n_clusters=30, nested=nested, seed=6).assign(
                problem=lambda d: d.problem + 10_000
            ),
        ]
    )
    ours = fe_ols(df, "y", "x", fe, cluster, controls=["z"], singletons=singletons)
    theirs = fe_ols(df, "y", "x", fe, cluster, controls=["z"], singletons=singletons, backend="pyfixest")
    assert list(ours["term"]) == list(theirs["term"])
    np.testing.assert_allclose(ours["coef"], theirs["coef"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours["se"], theirs["se"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours[["ci_low", "ci_high"]], theirs[["ci_low", "ci_high"]], atol=1e-6)
    np.testing.assert_allclose(ours["p"], theirs["p"], atol=1e-6)
    assert ours.attrs["df_t"] == theirs.attrs["df_t"] and ours.attrs["df_k"] == theirs.attrs["df_k"]


def test_pyfixest_directly_on_raw_frame() -> None:
    """pyfixest's own singleton handling and FE-nesting detection give the same numbers as ours."""
    pf = pytest.importorskip("pyfixest")
    df = planted(n_groups=300, per=2, n_clusters=25, nested=True, seed=11)
    df = df.iloc[1:]  # problem 0 becomes a singleton
    ours = fe_ols(df, "y", "x", "problem", "task", controls="z")
    fit = pf.feols("y ~ x + z | problem", df, vcov={"CRV1": "task"})
    tid = fit.tidy()
    np.testing.assert_allclose(ours["coef"], tid["Estimate"], atol=1e-6)
    np.testing.assert_allclose(ours["se"], tid["Std. Error"], atol=1e-6)
    assert ours.attrs["n_dropped_singletons"] == 1


def test_nested_fe_not_counted_in_small_sample_factor() -> None:
    df = planted(n_groups=100, per=2, n_clusters=20, nested=True)
    fit = fe_ols_fit(df, "y", "x", "problem", "task", controls="z")
    n, g = 200, 20
    assert fit.df_k == 3
    assert fit.ssc == pytest.approx(g / (g - 1) * (n - 1) / (n - 3))
    scrambled = df.assign(task=np.random.default_rng(0).integers(0, 20, 200))
    fit2 = fe_ols_fit(scrambled, "y", "x", "problem", "task", controls="z")
    assert not fit2.fe_nested and fit2.df_k == 2 + 100


def test_intercept_without_fe_and_hc1_without_cluster() -> None:
    df = planted(n_groups=50, per=4)
    tab = fe_ols(df, "y", "x", None, None)
    assert list(tab["term"]) == ["Intercept", "x"]
    xm = np.column_stack([np.ones(len(df)), df["x"]])
    coef, *_ = np.linalg.lstsq(xm, df["y"], rcond=None)
    e = df["y"] - xm @ coef
    bread = np.linalg.inv(xm.T @ xm)
    hc1 = bread @ (xm.T * e.to_numpy() ** 2) @ xm @ bread * len(df) / (len(df) - 2)
    np.testing.assert_allclose(tab["coef"], coef)
    np.testing.assert_allclose(tab["se"], np.sqrt(np.diag(hc1)))


def test_bool_outcome_is_a_linear_probability_model() -> None:
    df = planted(n_groups=50, per=4)
    df["correct"] = df["y"] > 0
    a = fe_ols(df, "correct", "x", "problem", "task")
    b = fe_ols(df.assign(correct=df["correct"].astype(float)), "correct", "x", "problem", "task")
    pd.testing.assert_frame_equal(a, b)


# ---- bad input -------------------------------------------------------------------------------------------------


def test_missing_values_error_names_column_or_drop() -> None:
    df = planted(n_groups=50, per=4)
    df.loc[3, "z"] = np.nan
    with pytest.raises(ValueError, match=r"'z': 1"):
        fe_ols(df, "y", "x", "problem", "task", controls="z")
    tab = fe_ols(df, "y", "x", "problem", "task", controls="z", missing="drop")
    assert tab.attrs["nobs"] == 199 and tab.attrs["n_dropped_missing"] == 1
    assert np.isfinite(tab[["coef", "se", "p"]].to_numpy()).all()
    df2 = planted(n_groups=50, per=4).astype({"problem": object})
    df2.loc[5, "problem"] = None
    with pytest.raises(ValueError, match="'problem'"):
        fe_ols(df2, "y", "x", "problem", "task")


def test_singleton_policies() -> None:
    df = planted(n_groups=50, per=3)
    df = df.iloc[2:]  # problem 0 keeps one row
    with pytest.raises(ValueError, match="single row"):
        fe_ols(df, "y", "x", "problem", "task", singletons="error")
    dropped = fe_ols(df, "y", "x", "problem", "task")
    kept = fe_ols(df, "y", "x", "problem", "task", singletons="keep")
    assert dropped.attrs["nobs"] == len(df) - 1 and kept.attrs["nobs"] == len(df)
    assert dropped["coef"].iloc[0] == pytest.approx(kept["coef"].iloc[0])  # singletons carry no within information


def test_collinear_and_absorbed_regressors_raise() -> None:
    df = planted(n_groups=50, per=4)
    df["x2"] = 2 * df["x"] - df["z"]
    with pytest.raises(ValueError, match="collinear"):
        fe_ols(df, "y", ["x", "z", "x2"], "problem", "task")
    df["difficulty"] = df["problem"] % 7
    with pytest.raises(ValueError, match=r"\['difficulty'\].*constant within the groups of fixed effect 'problem'"):
        fe_ols(df, "y", "x", "problem", "task", controls="difficulty")
    with pytest.raises(ValueError, match="used twice"):
        fe_ols(df, "y", "x", "problem", "task", controls="x")


def test_degenerate_clusters_and_sizes_raise() -> None:
    df = planted(n_groups=20, per=2)
    with pytest.raises(ValueError, match="at least 2 clusters"):
        fe_ols(df.assign(task=1), "y", "x", "problem", "task")
    with pytest.raises(ValueError, match="not in the data frame"):
        fe_ols(df, "y", "nope", "problem", "task")
    with pytest.raises(ValueError, match="numeric"):
        fe_ols(df.assign(x="a"), "y", "x", "problem", "task")
    with pytest.raises(ValueError, match="infinite"):
        fe_ols(df.assign(x=np.inf), "y", "x", "problem", "task")
    with pytest.raises(ValueError, match="empty"):
        fe_ols(df.iloc[:0], "y", "x", "problem", "task")
    tiny = pd.DataFrame({"y": [1.0, 2.0, 3.0], "x": [0.0, 1.0, 3.0], "a": [1.0, 5.0, 2.0], "c": [0, 1, 1]})
    with pytest.raises(ValueError, match="cannot identify"):
        fe_ols(tiny, "y", ["x", "a"], None, "c")


def test_singleton_clusters_reduce_to_hc1() -> None:
    """One row per cluster: CR1's factor G/(G-1)·(N-1)/(N-K) equals HC1's N/(N-K); only the df differ."""
    df = planted(n_groups=60, per=3).reset_index(drop=True)
    df["row"] = np.arange(len(df))
    cr1 = fe_ols(df, "y", "x", "problem", "row", controls="z")
    hc1 = fe_ols(df, "y", "x", "problem", None, controls="z")
    np.testing.assert_allclose(cr1["se"], hc1["se"], rtol=1e-10)
    assert cr1.attrs["df_t"] == len(df) - 1 and not cr1.attrs["fe_nested"]
