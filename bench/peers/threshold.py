"""threshold: Hansen's (1999) panel threshold regression, panelboot against pyxthreg (PyPI).

Cases (Stata xthreg's example data, tests/data/hansen1999_xthreg.csv: 565 firms x 14 years; one
threshold in d1, regime-dependent c1; B = 300):
- the 400-point grid (xthreg's default example): panelboot `--mode xthreg --grid 400`,
  pyxthreg `fit(thnum=1, trim=0.01, grid=400, bs=300)`. The two grids differ (pyxthreg picks 400
  evenly spaced distinct values, xthreg its own rule), so the searched thresholds differ; what is
  compared is the model at pyxthreg's threshold (panelboot `--gammas` with that value): SSR and
  coefficients to 1e-8.
- every distinct value (`--grid all`; pyxthreg `grid=0`): the same candidate set, so the threshold
  must be equal exactly and the SSR agree to 1e-8.
- Hansen's application (tests/data/hansen1999_invest.csv, three tests, B = 1000 each, 393 points):
  panelboot only; Hansen's program's conventions (the last period deleted, q < gamma, the residual
  bootstrap re-estimating the thresholds) are not among pyxthreg's options.
pyxthreg's bootstrap is a Gaussian wild bootstrap with the thresholds held fixed, not Hansen's
residual bootstrap with re-estimated thresholds: its p-values are not comparable, and it does less
work per replication than panelboot, so the ratio understates panelboot's lead. pyxthreg runs warm
(numba compiles in the untimed first call) on the data frame in memory; panelboot as a whole process.
"""
import os

from . import common

ROOT = common.ROOT
XTHREG = os.path.join(ROOT, "tests", "data", "hansen1999_xthreg.csv")
HANSEN = os.path.join(ROOT, "tests", "data", "hansen1999_invest.csv")
B = 300

PYXTHREG = r"""
import contextlib, io
import pandas as pd
from pyxthreg import ThresholdPanel
df = pd.read_csv(sys.argv[1])
grid = int(sys.argv[2])
def fit():
    m = ThresholdPanel(df, dep="i", rx=["c1"], qx="d1", indep=["q1", "q2", "q3", "d1", "qd1"],
                       entity_col="id", time_col="year")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        m.fit(thnum=1, trim=0.01, grid=grid, bs=int(sys.argv[3]))
    return m.results
r, t = measure(fit)
emit({**t, "gamma": float(r["thresholds"][0]), "ssr": float(r["ssrs"][0]),
      "coef": [float(b) for b in r["beta"].ravel()], "p_value": float(r["boot_results"][0]["p_value"])})
"""

XTHREG_ARGS = ["threshold", "--data", XTHREG, "--panel", "id,year", "--formula", "i ~ q1 + q2 + q3 + d1 + qd1 | id",
               "--regime", "c1", "--threshold-var", "d1", "--mode", "xthreg", "--trim", "0.01"]


def model_at(ctx, grid, gamma):
    """panelboot's model at a fixed threshold (xthreg's thgiven): SSR and coefficients."""
    m = common.panelboot(ctx, XTHREG_ARGS + ["--grid", grid, "--gammas", repr(gamma)], repeats=1)["json"]["models"][0]
    return m["ssr"], [c["estimate"] for c in m["coefficients"]]


def same_model(ctx, grid, ans):
    ssr, coef = model_at(ctx, grid, ans["gamma"])
    ds, dc = common.max_rel_diff([ssr], [ans["ssr"]]), common.max_rel_diff(coef, ans["coef"])
    return ds <= common.COEF_TOL and dc <= common.COEF_TOL, f"SSR rel. diff {ds:.1e}, coef {dc:.1e}"


def compare(ctx, grid, ans, pb):
    what = "warm call, data in memory"
    if "error" in ans:
        return common.peer("pyxthreg", ans, common.FAILED, "", pb, what)
    m = pb["json"]["models"][0]
    p_note = (f"p {ans['p_value']:.3f} vs panelboot {pb['json']['tests'][0]['p_value']:.3f} not comparable "
              "(pyxthreg: Gaussian wild bootstrap, thresholds fixed)")
    ok, model = same_model(ctx, grid, ans)
    if grid == "all":
        equal = ans["gamma"] == m["gammas"][0]
        ok = ok and equal
        detail = f"gamma {ans['gamma']:.6g} {'=' if equal else '!='} panelboot's {m['gammas'][0]:.6g}; {model}; {p_note}"
    else:
        detail = (f"at pyxthreg's gamma {ans['gamma']:.6g} (panelboot --gammas): {model}; its grid is not xthreg's "
                  f"(panelboot, as xthreg: gamma {m['gammas'][0]:.6g}, SSR {m['ssr']:.6f}; pyxthreg SSR "
                  f"{ans['ssr']:.6f}); {p_note}")
    return common.peer("pyxthreg", ans, common.AGREE if ok else common.DIFFER, detail, pb, what)


def xthreg_case(ctx, grid):
    case = f"xthreg example (565 x 14), 1 threshold, grid {grid}, B={B}"
    size = {"N": 7910, "grid": grid, "B": B}
    try:
        pb = common.panelboot(ctx, XTHREG_ARGS + ["--grid", grid, "--B", str(B)])
        ans = common.run_peer(ctx, PYXTHREG, [XTHREG, 400 if grid == "400" else 0, B],
                              repeats=None if grid == "400" else 1)
        peers = [compare(ctx, grid, ans, pb)]
    except common.PanelbootFailed as e:
        return common.failed_row("threshold", case, "grid", 400, size, e)
    size["points"] = pb["json"]["n_grid"]  # the grid points searched
    return common.row("threshold", case, "grid", size["points"], size, pb, peers, "xthreg example, 1 test, B=300")


def hansen_case(ctx):
    case = "Hansen's application (565 x 15), 3 tests, 393-point grid, B=1000 each"
    size = {"N": 565 * 15, "grid": 393, "B": 1000}
    args = ["threshold", "--data", HANSEN, "--panel", "id,year", "--formula",
            "inva ~ l(vala,1) + I(l(vala,1)^2) + I(l(vala,1)^3) + l(debta,1) + I(l(vala,1)*l(debta,1)) | id",
            "--regime", "l(cfa,1)", "--threshold-var", "l(debta,1)", "--thresholds", "3", "--B", "1000"]
    try:
        pb = common.panelboot(ctx, args)
    except common.PanelbootFailed as e:
        return common.failed_row("threshold", case, "grid", 393, size, e)
    why = ("Hansen's program's conventions (last period deleted, q < gamma, residual bootstrap re-estimating "
           "the thresholds) are not among its options")
    return common.row("threshold", case, "grid", 393, size, pb, [common.cannot_run("pyxthreg", why)],
                      "Hansen's application, 3 tests, B=1000")


def cases(ctx):
    return [xthreg_case(ctx, "400"), xthreg_case(ctx, "all"), hansen_case(ctx)]
