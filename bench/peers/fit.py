"""fit: two-way FE OLS with one-way clustered SEs, panelboot against pyfixest, linearmodels and R's plm.

The model: y ~ x1 + ... + x5 | unit + time, clustered by unit, on a balanced panel (seed 42: unit
and period effects, regressors correlated with the unit effect). The ladder: N = 10^4 and 10^5
(--quick), then 10^6 and 10^7.

- panelboot: `fit --data CSV ...` as a whole process (start, CSV parsing, fit, CRVE).
- pyfixest: `feols(..., vcov={"CRV1": "unit"})` on the data frame in memory, warm (the first call
  untimed). The same small-sample convention as panelboot's default (fixest's): coefficients to
  1e-8, SEs to 1e-6.
- linearmodels: `PanelOLS(entity_effects=True, time_effects=True).fit(cov_type="clustered",
  cluster_entity=True)` in memory, warm. Its SEs use another small-sample factor, N/(N-k-(L-1)), the
  L levels of both effects counted less one: the coefficients must agree to 1e-8 and SE_panelboot / SE_linearmodels
  equal the square root of the two factors' ratio to 1e-6 for every coefficient.
- R plm: `plm(model = "within", effect = "twoways")` with `vcovHC(method = "arellano", cluster =
  "group")` (its HC0: no small-sample factor), in memory, warm; checked as linearmodels.
- panelboot again with --threads 1: the same JSON bit for bit.
Each peer's time is a warm call on data already in memory; panelboot's includes reading the CSV,
so the ratio favours the peers.
"""

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


def predicted_se_ratio(tool, model):
    """SE_panelboot / SE_peer from the two conventions' factors. panelboot (fixest's): c = G/(G-1)
    (N-1)/(N-K), K = regressors + the FE levels not nested in the cluster (its dof_k). plm's
    vcovHC(method = "arellano") (HC0): no factor. linearmodels' clustered PanelOLS (debiased=False):
    N/(N-k-(L-1)), the L levels of both effects counted less one (the constant), no G/(G-1)."""
    N, G, K = model["nobs"], model["n_clusters"], model["dof_k"]
    c_panelboot = G / (G - 1) * (N - 1) / (N - K)
    if tool.startswith("R plm"):
        return c_panelboot ** 0.5, "plm's HC0 applies no small-sample factor"
    k = len(model["coefficients"])
    L = sum(f["levels"] for f in model["fixed_effects"])
    return (c_panelboot / (N / (N - k - (L - 1)))) ** 0.5, f"linearmodels' factor is N/(N-k-(L-1)), L = {L} levels"


def compare(tool, ans, pb, same_convention):
    """The peer's entry: its coefficients and SEs against panelboot's, by name where it names them."""
    what = "warm call, data in memory"
    if "error" in ans:
        return common.peer(tool, ans, common.FAILED, "", pb, what)
    model = pb["json"]["models"][0]
    names = [c["name"] for c in model["coefficients"]]
    b = [c["estimate"] for c in model["coefficients"]]
    s = [c["std_error"] for c in model["coefficients"]]
    peer_names = ans.get("names", names)
    coef, se = common.by_name(names, peer_names, ans["coef"]), common.by_name(names, peer_names, ans["se"])
    if same_convention:
        status, detail = common.coef_se_status(b, s, coef, se)
    else:
        status, detail = common.coef_and_se_factor_status(b, s, coef, se, *predicted_se_ratio(tool, model))
    return common.peer(tool, ans, status, detail, pb, what)


def one_size(ctx, units, periods):
    n = units * periods
    case = f"two-way FE OLS, k=5, N={n:,} ({units:,} units x {periods} periods), CRV1 by unit"
    size = {"N": n, "units": units, "periods": periods, "k": 5}
    csv = common.dataset(ctx, f"fit_{units}x{periods}.csv", write_panel(units, periods))
    args = ["fit", "--data", csv, "--formula", FORMULA, "--cluster", "unit"]
    try:
        pb = common.panelboot(ctx, args)
        common.check_threads(ctx, args, pb)
    except common.PanelbootFailed as e:
        return common.failed_row("fit", case, "N", n, size, e)
    plm_args = [csv, "y ~ " + " + ".join(XS)]
    peers = [compare("pyfixest", common.run_peer(ctx, PYFIXEST, [csv, FORMULA]), pb, True),
             compare("linearmodels PanelOLS", common.run_peer(ctx, LINEARMODELS, [csv, ",".join(XS)]), pb, False),
             compare("R plm + vcovHC", common.run_r(ctx, PLM, plm_args), pb, False)]
    return common.row("fit", case, "N", n, size, pb, peers)


def cases(ctx):
    return [one_size(ctx, u, t) for u, t in (QUICK_SIZES if ctx.quick else FULL_SIZES)]
