"""fit: two-way FE OLS with one-way clustered SEs, panelboot against pyfixest, linearmodels and R's plm.

The model: y ~ x1 + ... + x5 | unit + time, clustered by unit, on a balanced panel (seed 42: unit
and period effects, regressors correlated with the unit effect). The ladder: N = 10^4 and 10^5
(--quick), then 10^6 and 10^7.

- panelboot: `fit --data CSV ...` as a whole process (start, CSV parsing, fit, CRVE).
- pyfixest: `feols(..., vcov={"CRV1": "unit"})` on the data frame in memory, warm (the first call
  untimed). The same small-sample convention as panelboot's default (fixest's): coefficients to
  1e-8, SEs to 1e-6.
- linearmodels: `PanelOLS(entity_effects=True, time_effects=True).fit(cov_type="clustered",
  cluster_entity=True)` in memory, warm. Its SEs use another small-sample factor: the coefficients
  must agree and SE_panelboot / SE_linearmodels must be one constant for every coefficient.
- R plm: `plm(model = "within", effect = "twoways")` with `vcovHC(method = "arellano", cluster =
  "group")` (its HC0: no small-sample factor), in memory, warm; checked as linearmodels.
Each peer's time is a warm call on data already in memory; panelboot's includes reading the CSV,
so the ratio favours the peers.
"""
import os

from . import common

FORMULA = "y ~ x1 + x2 + x3 + x4 + x5 | unit + time"
XS = ["x1", "x2", "x3", "x4", "x5"]
QUICK_SIZES = ((500, 20), (5000, 20))
FULL_SIZES = QUICK_SIZES + ((10000, 100), (100000, 100))

PYFIXEST = r"""
import pandas as pd, pyfixest as pf
df = pd.read_csv(sys.argv[1])
m, t = measure(lambda: pf.feols(sys.argv[2], data=df, vcov={"CRV1": "unit"}))
emit({**t, "names": list(m.coef().index), "coef": m.coef().tolist(), "se": m.se().tolist()})
"""

LINEARMODELS = r"""
import pandas as pd
from linearmodels.panel import PanelOLS
df = pd.read_csv(sys.argv[1]).set_index(["unit", "time"])
xs = sys.argv[2].split(",")
fit = lambda: PanelOLS(df["y"], df[xs], entity_effects=True, time_effects=True).fit(cov_type="clustered", cluster_entity=True)
r, t = measure(fit)
emit({**t, "names": list(r.params.index), "coef": r.params.tolist(), "se": r.std_errors.tolist()})
"""

PLM = r"""
suppressMessages(library(plm))
args <- commandArgs(TRUE)
d <- pdata.frame(read.csv(args[1]), index = c("unit", "time"))
f <- as.formula(args[2])
m <- measure(function() { m <- plm(f, data = d, model = "within", effect = "twoways")
                          list(b = coef(m), se = sqrt(diag(vcovHC(m, method = "arellano", cluster = "group")))) })
emit(c(m$timing, list(coef = m$r$b, se = m$r$se)))
"""


def write_panel(units, periods):
    def write(f):
        rng, unit, tt, ua, ta = common.two_way_panel(units, periods, seed=42)
        n = units * periods
        X = rng.standard_normal((n, 5)) + 0.5 * ua[unit][:, None]
        y = ua[unit] + ta[tt] + rng.standard_normal(n) + X @ (0.1 * (1 + common.np.arange(5)))
        common.save_columns(f, ["unit", "time", "y"] + XS, [unit, tt, y] + [X[:, j] for j in range(5)], 2, digits=10)
    return write


def by_names(ans, names):
    d = dict(zip(ans["names"], zip(ans["coef"], ans["se"])))
    return [d[k][0] for k in names], [d[k][1] for k in names]


def compare(tool, ans, pb, same_convention):
    """The peer's entry: cannot run, or its coefficients and SEs against panelboot's."""
    what = "warm call, data in memory"
    if "error" in ans:
        return common.peer(tool, ans, common.CANNOT_RUN, "", pb, what)
    names = [c["name"] for c in pb["json"]["models"][0]["coefficients"]]
    b = [c["estimate"] for c in pb["json"]["models"][0]["coefficients"]]
    s = [c["std_error"] for c in pb["json"]["models"][0]["coefficients"]]
    coef, se = by_names(ans, names) if "names" in ans else (ans["coef"], ans["se"])
    check = common.coef_se_status if same_convention else common.coef_and_se_factor_status
    status, detail = check(b, s, coef, se)
    return common.peer(tool, ans, status, detail, pb, what)


def one_size(ctx, units, periods):
    n = units * periods
    case = f"two-way FE OLS, k=5, N={n:,} ({units:,} units x {periods} periods), CRV1 by unit"
    size = {"N": n, "units": units, "periods": periods, "k": 5}
    csv = common.dataset(ctx, f"fit_{units}x{periods}.csv", write_panel(units, periods))
    try:
        pb = common.panelboot(ctx, ["fit", "--data", csv, "--formula", FORMULA, "--cluster", "unit"])
    except common.PanelbootFailed as e:
        return common.failed_row("fit", case, "N", n, size, e)
    peers = [compare("pyfixest", common.run_peer(ctx, PYFIXEST, [csv, FORMULA]), pb, True),
             compare("linearmodels PanelOLS", common.run_peer(ctx, LINEARMODELS, [csv, ",".join(XS)]), pb, False),
             compare("R plm + vcovHC", common.run_r(ctx, PLM, [csv, "y ~ " + " + ".join(XS)]), pb, False)]
    return common.row("fit", case, "N", n, size, pb, peers)


def cases(ctx):
    return [one_size(ctx, u, t) for u, t in (QUICK_SIZES if ctx.quick else FULL_SIZES)]
