"""Against pyfixest on random panels: coefficients and standard errors to 1e-8 for iid, HC1 and
CRV1 (one- and two-way), each with pyfixest's ssc set to the same convention; the wild cluster
bootstrap against pyfixest's wildboottest where it supports the case."""
import warnings

import numpy as np
import pytest

import panelboot as pb
from conftest import random_panel

pf = pytest.importorskip("pyfixest")

# (pyfixest vcov, pyfixest ssc, panelboot options)
CONVENTIONS = [
    ("iid", dict(k_fixef="full"), dict(vcov="iid", dof_fe="all")),
    ("hetero", dict(k_fixef="full"), dict(vcov="hetero", dof_fe="all")),
    ({"CRV1": "g"}, dict(k_fixef="nonnested"), dict(cluster="g")),
    ({"CRV1": "unit"}, dict(k_fixef="nonnested"), dict(cluster="unit")),
    ({"CRV1": "unit"}, dict(k_fixef="full"), dict(cluster="unit", dof_fe="all")),
    ({"CRV1": "g+period"}, dict(k_fixef="nonnested", G_df="min"), dict(vcov={"CRV1": "g+period"})),
    ({"CRV1": "g+period"}, dict(k_fixef="nonnested", G_df="conventional"), dict(cluster=["g", "period"], multiway_adj="each")),
]


def feols(formula, df, vcov, ssc):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pf.feols(formula, data=df, vcov=vcov, ssc=pf.ssc(k_adj=True, G_adj=True, **ssc), fixef_tol=1e-12)


@pytest.mark.parametrize("seed", [101, 202, 303])
@pytest.mark.parametrize("formula", ["y ~ x1 + x2 + x3 | unit + period", "y ~ x1 + x2 | unit", "y ~ x1 + x2 + x3"])
@pytest.mark.parametrize("conv", CONVENTIONS, ids=[f"{c[0]}-{c[1]}" for c in CONVENTIONS])
def test_coefficients_and_standard_errors_equal_pyfixest(seed, formula, conv):
    vcov, ssc, ours = conv
    df = random_panel(seed, n_units=30 + seed % 17, missing=0.03)
    theirs = feols(formula, df, vcov, ssc)
    res = pb.fit(df, formula, **ours)
    # the intercept is "(Intercept)" as in R and Stata's output; pyfixest writes "Intercept"
    assert [n.replace("(Intercept)", "Intercept") for n in res.coef().index] == list(theirs.coef().index)
    np.testing.assert_allclose(res.coef().to_numpy(), theirs.coef().to_numpy(), rtol=1e-8, atol=0)
    np.testing.assert_allclose(res.se().to_numpy(), theirs.se().to_numpy(), rtol=1e-8, atol=0)
    assert res.nobs == theirs._N


def wildboottest(df, formula, param, reps, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = pf.feols(formula, data=df, vcov={"CRV1": "g"})
        return m.wildboottest(reps=reps, param=param, cluster="g", seed=1, **kw)


@pytest.mark.parametrize("seed", [5, 6, 7])
@pytest.mark.parametrize("impose_null", [True, False])
def test_wild_t_statistic_equals_wildboottest(seed, impose_null):
    pytest.importorskip("wildboottest")
    df = random_panel(seed, n_groups=12)
    theirs = wildboottest(df, "y ~ x1 + x2 + x3", "x1", 999, impose_null=impose_null)
    ours = pb.wild(df, "y ~ x1 + x2 + x3", test="x1 = 0", cluster="g", B=999, impose_null=impose_null, ci=False)
    assert ours.t_stat == pytest.approx(float(theirs["t value"]), rel=1e-10)


@pytest.mark.parametrize("formula", ["y ~ x1 + x2 + x3", "y ~ x1 + x2 + x3 | unit"])
def test_enumerated_wild_p_value_equals_wildboottest(formula):
    # 8 clusters: both enumerate all 2^8 sign vectors, so the p-values are exact. The vector of all
    # ones gives back the sample's own |t| up to rounding (1e-15): pyfixest counts it when its
    # rounding lands at or above |t| (>=), panelboot by a stated rule (--ties strict: never;
    # inclusive: within 1e-10), so pyfixest's p-value is one of panelboot's two. With the unit FE
    # pyfixest's ssc counts the FE, which the p-value does not see: t and every t* scale alike.
    pytest.importorskip("wildboottest")
    df = random_panel(8, n_groups=8)
    # x1 = 0.4 is tested as pyfixest's x1 = 0 on y - 0.4 x1 (its wildboottest tests zero only)
    theirs = float(wildboottest(df.assign(y=df["y"] - 0.4 * df["x1"]), formula, "x1", 999)["Pr(>|t|)"])
    strict = pb.wild(df, formula, test="x1 = 0.4", cluster="g", B=999, ci=False)
    inclusive = pb.wild(df, formula, test="x1 = 0.4", cluster="g", B=999, ties="inclusive", ci=False)
    assert strict.enumerated and strict.n_boot == 256
    assert inclusive.pvalue == pytest.approx(strict.pvalue + 2 / 256, abs=1e-12)
    assert min(abs(theirs - strict.pvalue), abs(theirs - inclusive.pvalue)) < 1e-12
