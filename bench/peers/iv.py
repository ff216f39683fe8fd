"""iv: two-way FE IV (2SLS) with one-way clustered SEs, panelboot against pyfixest and linearmodels.

The model: y ~ x | unit + time | d ~ z1 + z2, clustered by unit (one endogenous regressor d, one
exogenous x, two instruments, two absorbed FE).

The DGP (seed 42, a balanced panel of units x 100 periods): unit and period effects a_i, b_t;
x = N(0,1) + 0.5 a_i; z1, z2 ~ N(0,1); structural error e ~ N(0,1); first-stage error
v = 0.6 e + 0.8 N(0,1) (corr(v, e) = 0.6, so d is endogenous);
d = 0.5 z1 + 0.3 z2 + 0.3 x + 0.5 a_i + 0.3 b_t + v;  y = 1.0 d + 0.5 x + a_i + b_t + e.

Ladder "N" (rows): 10^4 and 10^5 in quick mode (100 and 1,000 units), 10^6 (10,000 units) added
in full mode.

The tools:
  * panelboot: `fit --data CSV --formula ... --cluster unit` as a whole process (start, CSV read,
    fit, first-stage and weak-IV diagnostics), the median of ctx.repeats runs;
  * pyfixest: pf.feols(formula, vcov={"CRV1": "unit"}) followed by IV_Diag() (panelboot computes
    its diagnostics in every fit), the warm call on the data frame in memory (one untimed call
    first, then ctx.repeats timed calls, the median quoted);
  * linearmodels: IV2SLS has no absorption (AbsorbingLS is OLS only), so its timed call does what
    absorption would: factorizes the FE codes, checks the balance, applies the exact two-way within
    transformation of a balanced panel (v - mean_i(v) - mean_t(v) + mean(v)) to all five variables
    and fits IV2SLS(y~, x~, d~, [z1~, z2~]) with cov_type="clustered" by unit; warm, in memory.

Timing convention: the peers' figure is their warm call with the data frame already in memory;
panelboot's is its whole process, CSV parsing included. The ratio (peer / panelboot) therefore
favours the peers.

Agreement (coefficients matched by name):
  * pyfixest: coefficients to 1e-8, clustered SEs to 1e-6 (relative); both follow fixest's
    convention G/(G-1) (N-1)/(N-K), FE nested in the cluster not counted in K;
  * linearmodels: coefficients to 1e-8. Its default clustered SE (debiased=False) applies no
    small-sample factor and knows nothing of the absorbed FE, so it is another convention (its
    ratio to panelboot's, 1/sqrt(G/(G-1) (N-1)/(N-K)), is shown in the detail). The SEs are compared
    through an untimed refit with debiased=True, extra_df = K - 2 (K: panelboot's dof_k), which must
    reproduce panelboot's SEs to 1e-6; when it does, the answer is AGREE.
"""
import numpy as np

from . import common

FAMILY = "iv"
FORMULA = "y ~ x | unit + time | d ~ z1 + z2"
CLUSTER = "unit"
PERIODS = 100
SEED = 42
COLUMNS = ["unit", "time", "y", "d", "x", "z1", "z2"]
PEER_WHAT = "warm call, data frame in memory"

PYFIXEST_SNIPPET = r"""
import pandas as pd, pyfixest as pf
df = pd.read_csv(sys.argv[1])
def fit():
    m = pf.feols(sys.argv[2], data=df, vcov={"CRV1": sys.argv[3]})
    m.IV_Diag()   # first-stage F and effective F: panelboot computes its diagnostics in every fit
    return m
m, timing = measure(fit)
emit(dict(timing, names=list(m.coef().index), coef=m.coef().tolist(), se=m.se().tolist()))
"""

LINEARMODELS_SNIPPET = r"""
import numpy as np, pandas as pd
from linearmodels.iv import IV2SLS
df = pd.read_csv(sys.argv[1])
extra_df = int(sys.argv[2])

def balanced_codes(df):
    ui, uu = pd.factorize(df["unit"].to_numpy(), sort=True)
    ti, tu = pd.factorize(df["time"].to_numpy(), sort=True)
    G, T, n = len(uu), len(tu), len(df)
    cu, ct = np.bincount(ui, minlength=G), np.bincount(ti, minlength=T)
    if n != G * T or cu.min() != T or ct.min() != G or len(np.unique(ui.astype(np.int64) * T + ti)) != n:
        raise SystemExit("the linearmodels path needs a balanced panel (one row per unit x time)")
    return ui, ti, G, T

def two_way_within(v, ui, ti, G, T):
    # exact for a balanced panel
    return v - (np.bincount(ui, v, G) / T)[ui] - (np.bincount(ti, v, T) / G)[ti] + v.mean()

def within_iv():
    ui, ti, G, T = balanced_codes(df)
    w = {c: two_way_within(df[c].to_numpy(dtype=float), ui, ti, G, T) for c in ("y", "d", "x", "z1", "z2")}
    mod = IV2SLS(w["y"], pd.DataFrame({"x": w["x"]}), pd.DataFrame({"d": w["d"]}),
                 pd.DataFrame({"z1": w["z1"], "z2": w["z2"]}))
    return mod, ui, mod.fit(cov_type="clustered", clusters=ui)

(mod, ui, res), timing = measure(within_iv)
# untimed: the same model with linearmodels' small-sample factor and the absorbed FE as extra_df
deb = mod.fit(cov_type="clustered", clusters=ui, debiased=True, extra_df=extra_df)
emit(dict(timing, names=list(res.params.index), coef=res.params.tolist(), se=res.std_errors.tolist(),
          se_debiased=deb.std_errors.tolist()))
"""


def ladder(ctx):
    """Units per case (each with PERIODS periods): N = 10^4, 10^5, and 10^6 in full mode."""
    return [100, 1000] if ctx.quick else [100, 1000, 10000]


def write_iv_panel(f, units, periods):
    rng, unit, tt, ua, ta = common.two_way_panel(units, periods, SEED)
    n = units * periods
    z = rng.standard_normal((n, 2))
    x = rng.standard_normal(n) + 0.5 * ua[unit]
    e = rng.standard_normal(n)
    v = 0.6 * e + 0.8 * rng.standard_normal(n)
    d = 0.5 * z[:, 0] + 0.3 * z[:, 1] + 0.3 * x + 0.5 * ua[unit] + 0.3 * ta[tt] + v
    y = 1.0 * d + 0.5 * x + ua[unit] + ta[tt] + e
    common.save_columns(f, COLUMNS, [unit, tt, y, d, x, z[:, 0], z[:, 1]], int_cols=2)


def iv_dataset(ctx, units, periods):
    return common.dataset(ctx, f"iv_{units}x{periods}.csv",
                          lambda f: write_iv_panel(f, units, periods))


def run_panelboot(ctx, csv):
    """panelboot's whole process; its first model's JSON is kept under "model" (dropped by row())."""
    args = ["fit", "--data", csv, "--formula", FORMULA, "--cluster", CLUSTER]
    pb = common.panelboot(ctx, args)
    common.check_threads(ctx, args, pb)   # --threads 1: the same JSON bit for bit
    model = pb["json"]["models"][0]
    pb["first_stage_f"] = model["first_stages"][0]["f_stat"]
    pb["dof_k"] = model["dof_k"]
    return pb, model


def panelboot_estimates(model):
    """{name: (estimate, std_error)} in panelboot's order."""
    return {c["name"]: (c["estimate"], c["std_error"]) for c in model["coefficients"]}


def matched(pb_est, ans, se_key="se"):
    """The peer's coefficients and SEs in panelboot's order, or None when the names differ."""
    peer_est = dict(zip(ans["names"], zip(ans["coef"], ans[se_key])))
    if set(peer_est) != set(pb_est):
        return None
    return [peer_est[k][0] for k in pb_est], [peer_est[k][1] for k in pb_est]


def names_differ(pb_est, ans):
    return common.DIFFER, f"coefficient names differ: panelboot {sorted(pb_est)}, peer {sorted(ans['names'])}"


def pb_arrays(pb_est):
    return [v[0] for v in pb_est.values()], [v[1] for v in pb_est.values()]


def fixest_small_sample_factor(model):
    """c = G/(G-1) (N-1)/(N-K): the factor panelboot's (and pyfixest's) clustered variance carries."""
    g, n, k = model["n_clusters"], model["nobs"], model["dof_k"]
    return g / (g - 1) * (n - 1) / (n - k)


def ratio_range(r):
    lo, hi = f"{r.min():.6f}", f"{r.max():.6f}"
    return lo if lo == hi else f"{lo}-{hi}"


def pyfixest_verdict(pb_est, ans):
    if "error" in ans:
        return common.FAILED, ans["error"]
    peer_vals = matched(pb_est, ans)
    if peer_vals is None:
        return names_differ(pb_est, ans)
    return common.coef_se_status(*pb_arrays(pb_est), *peer_vals)


def linearmodels_verdict(pb_est, ans, model, extra_df):
    """Coefficients to 1e-8; SEs through the debiased=True, extra_df refit to 1e-6. The default SE's
    ratio to panelboot's is reported beside the expected 1/sqrt(c)."""
    if "error" in ans:
        return common.FAILED, ans["error"]
    debiased, default = matched(pb_est, ans, "se_debiased"), matched(pb_est, ans, "se")
    if debiased is None:
        return names_differ(pb_est, ans)
    pb_coef, pb_se = pb_arrays(pb_est)
    status, detail = common.coef_se_status(pb_coef, pb_se, *debiased)
    ratio = np.asarray(default[1]) / np.asarray(pb_se)
    expected = 1 / np.sqrt(fixest_small_sample_factor(model))
    detail += (f" (SE: its debiased=True, extra_df={extra_df} refit; its default SE, no small-sample factor, "
               f"is {ratio_range(ratio)}x panelboot's, 1/sqrt(c) = {expected:.6f})")
    return status, detail


def iv_case(ctx, units):
    periods = PERIODS
    n = units * periods
    case = f"2SLS two-way FE, CRV1 by unit, N={n:,}"
    size = {"rows": n, "units": units, "periods": periods, "clusters": units}
    csv = iv_dataset(ctx, units, periods)
    ctx.log(f"bench-peers: iv N={n:,}: panelboot")
    try:
        pb, model = run_panelboot(ctx, csv)
    except common.PanelbootFailed as err:
        return common.failed_row(FAMILY, case, "N", n, size, err)
    pb_est = panelboot_estimates(model)
    extra_df = int(round(model["dof_k"])) - len(pb_est)

    ctx.log(f"bench-peers: iv N={n:,}: pyfixest")
    ans = common.run_peer(ctx, PYFIXEST_SNIPPET, [csv, FORMULA, CLUSTER])
    status, detail = pyfixest_verdict(pb_est, ans)
    peers = [common.peer("pyfixest feols + IV_Diag", ans, status, detail, pb, PEER_WHAT)]

    ctx.log(f"bench-peers: iv N={n:,}: linearmodels")
    ans = common.run_peer(ctx, LINEARMODELS_SNIPPET, [csv, extra_df])
    status, detail = linearmodels_verdict(pb_est, ans, model, extra_df)
    peers.append(common.peer("linearmodels within + IV2SLS", ans, status, detail, pb, PEER_WHAT))
    return common.row(FAMILY, case, "N", n, size, pb, peers)


def cases(ctx):
    return [iv_case(ctx, units) for units in ladder(ctx)]
