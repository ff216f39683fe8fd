"""wild: the wild cluster bootstrap (WCR, Rademacher, p-value of a t test), panelboot against
wildboottest, pyfixest's wildboottest() and R's sandwich::vcovBS.

Cases:
- the study's shape: the embedded data (N = 360, G = 30, two-way FE), H0: rgzn = 0.0017,
  B = 9,999 and 99,999 (full: also B = 999,999), and the full enumeration of 2^30 sign vectors,
  which no peer does (they enumerate only when 2^G <= B);
- fwildclusterboot's grid: N = 10^4, k = 20, no FE, G = 20 and 100 (full: also 1000) with B = 9,999
  (full: B = 10^4 and 10^5);
- full only: N = 10^6, k = 10, G = 1000, B = 99,999.

panelboot runs `wild ... --no-ci` (the peers compute no confidence interval) as a whole process; for
the FE model with `--dof-fe all` (the peers count every FE level in K, so the t statistics match).
The Python peers run the same test on the data frame in memory, warm (numba compiles in the untimed
first call; wildboottest 0.3.x still compiles its denominator kernel again on every call, about
0.5 s of each of its timings, which is what a user pays). Agreement: the t statistics to 1e-6 (relative) and the p-values within binomial error
(independent draws). sandwich::vcovBS refits lm per replication and returns a bootstrap covariance,
not a bootstrap-t p-value: its time is shown, its answer is not comparable. It runs on the study's
shape at B = 9,999 and, in the full run, on G = 20, B = 10^4 (27 s a call on 2 cores), timed once
after a warm call. The grid's test is of the slope's true value, x1 = 0.05. Each case also runs
panelboot with --threads 1, which must give the same JSON bit for bit.
"""
import os

from . import common

STUDY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "data", "nqpf_synthetic.csv")
STUDY_RHS = ["rgzn", "urban", "ind", "fdi", "open", "fin"]
STUDY_R0 = 0.0017
TRUE_SLOPE = 0.05  # the grid data's slopes: its test is of the true value, so p is not near 0

PYTHON_PEER = r"""
import numpy as np, pandas as pd
kind, path, formula_pf, formula_sm, param, r0, cl, B = sys.argv[1:9]
B, r0 = int(B), float(r0)
df = pd.read_csv(path)
df["_cl"] = pd.factorize(df[cl])[0]
if r0 != 0:  # H0: param = r0 as param = 0 for y - r0 * param
    df["_y0"] = df[formula_sm.split("~")[0].strip()] - r0 * df[param]
    formula_pf = "_y0 ~" + formula_pf.split("~", 1)[1]
    formula_sm = "_y0 ~" + formula_sm.split("~", 1)[1]
def pyfixest_test():
    import pyfixest as pf
    r = pf.feols(formula_pf, data=df, vcov={"CRV1": "_cl"}).wildboottest(param=param, reps=B, seed=7)
    return float(np.asarray(r["t value"])), float(np.asarray(r["Pr(>|t|)"]))
def wildboottest_test():
    from wildboottest.wildboottest import wildboottest
    import statsmodels.formula.api as smf
    r = wildboottest(smf.ols(formula_sm, data=df), param=param, cluster=df["_cl"].to_numpy(), B=B, seed=7, show=False)
    return float(r["statistic"].iloc[0]), float(r["p-value"].iloc[0])
(t, p), timing = measure(pyfixest_test if kind == "pyfixest" else wildboottest_test)
emit({**timing, "t": t, "p": p})
"""

SANDWICH = r"""
suppressMessages(library(sandwich))
args <- commandArgs(TRUE)
d <- read.csv(args[1]); d$cl <- d[[args[3]]]
m <- lm(as.formula(args[2]), data = d)
r <- measure(function() vcovBS(m, cluster = ~cl, R = as.integer(args[4]), type = "wild-rademacher"))
emit(r$timing)
"""


def write_grid_data(n, k, G, seed):
    def write(f):
        rng = common.np.random.default_rng(seed)
        cl = rng.integers(0, G, n)
        X = rng.standard_normal((n, k)) + 0.3 * rng.standard_normal(G)[cl][:, None]
        y = X @ common.np.full(k, TRUE_SLOPE) + rng.standard_normal(n) + rng.standard_normal(G)[cl]
        common.save_columns(f, ["cl", "y"] + [f"x{j + 1}" for j in range(k)], [cl, y] + [X[:, j] for j in range(k)], 1)
    return write


def python_peer(ctx, kind, spec, B):
    return common.run_peer(ctx, PYTHON_PEER, [kind, spec["data"], spec["pyfixest"], spec["statsmodels"],
                                              spec["param"], spec["r0"], spec["cluster"], B])


def compare(tool, ans, pb, B):
    what = "warm call, data in memory"
    if "error" in ans:
        return common.peer(tool, ans, common.FAILED, "", pb, what)
    test = pb["json"]["tests"][0]
    dt = common.max_rel_diff([ans["t"]], [test["t_stat"]])
    p_ok, within = common.p_values_agree(ans["p"], B, test["p_value"], test["n_boot"])
    ok = dt <= common.SE_TOL and p_ok
    detail = f"t rel. diff {dt:.1e}; p {ans['p']:.4f} vs panelboot {test['p_value']:.4f} (within {within:.4f}: {'yes' if p_ok else 'NO'})"
    return common.peer(tool, ans, common.AGREE if ok else common.DIFFER, detail, pb, what)


def sandwich_entry(ctx, spec, B, pb):
    # one timed call after the warm one: a refit per replication takes seconds to minutes
    ans = common.run_r(ctx, SANDWICH, [spec["data"], spec["r"], spec["cluster"], B], repeats=1)
    return common.peer("R sandwich::vcovBS", ans, common.NOT_COMPARABLE,
                       "returns a bootstrap covariance (lm refit per replication), not a bootstrap-t p-value",
                       pb, "warm call, data in memory")


def one_case(ctx, case, spec, B, ladder, with_sandwich, series=""):
    size = {"N": spec["N"], "G": spec["G"], "k": spec["k"], "B": B}
    args = ["wild", "--data", spec["data"], "--formula", spec["panelboot"], "--cluster", spec["cluster"],
            "--test", f"{spec['param']} = {spec['r0']:g}", "--B", str(B), "--no-ci", "--seed", "7",
            "--enumerate", "never"] + spec.get("extra", [])
    try:
        pb = common.panelboot(ctx, args, what="whole process, p-value only (--no-ci)")
        common.check_threads(ctx, args, pb)
    except common.PanelbootFailed as e:
        return common.failed_row("wild", case, ladder, size[ladder], size, e)
    peers = [compare(kind, python_peer(ctx, kind, spec, B), pb, B) for kind in ("wildboottest", "pyfixest")]
    if with_sandwich:
        peers.append(sandwich_entry(ctx, spec, B, pb))
    return common.row("wild", case, ladder, size[ladder], size, pb, peers, series)


def study_spec():
    rhs = " + ".join(STUDY_RHS)
    return {"data": STUDY, "N": 360, "G": 30, "k": len(STUDY_RHS), "cluster": "province", "param": "rgzn",
            "r0": STUDY_R0, "panelboot": f"newqua ~ {rhs} | province + year",
            "pyfixest": f"newqua ~ {rhs} | province + year", "statsmodels": f"newqua ~ {rhs} + C(province) + C(year)",
            "r": f"newqua ~ {rhs} + factor(province) + factor(year)", "extra": ["--dof-fe", "all"]}


def grid_spec(ctx, n, k, G, seed):
    path = common.dataset(ctx, f"wild_n{n}_k{k}_G{G}.csv", write_grid_data(n, k, G, seed))
    xs = "y ~ " + " + ".join(f"x{j + 1}" for j in range(k))
    return {"data": path, "N": n, "G": G, "k": k, "cluster": "cl", "param": "x1", "r0": TRUE_SLOPE,
            "panelboot": xs, "pyfixest": xs, "statsmodels": xs, "r": xs}


def enumeration_row(ctx):
    """2^30 sign vectors: panelboot alone (each peer enumerates only when 2^G <= B)."""
    spec = study_spec()
    case = "study, enumeration of all 2^30 sign vectors"
    size = {"N": 360, "G": 30, "k": 6, "B": 2 ** 30}
    args = ["wild", "--data", STUDY, "--formula", spec["panelboot"], "--cluster", "province",
            "--test", f"rgzn = {STUDY_R0:g}", "--enumerate", "always", "--no-ci", "--dof-fe", "all"]
    try:
        pb = common.panelboot(ctx, args, what="whole process, exact p-value (--no-ci)",
                              repeats=1 if ctx.quick else min(ctx.repeats, 3))
    except common.PanelbootFailed as e:
        return common.failed_row("wild", case, "G", 30, size, e)
    why = "enumerates the 2^G sign vectors only when 2^G <= B (here B would be 1.07e9)"
    peers = [common.cannot_run(t, why) for t in ("wildboottest", "pyfixest")]
    return common.row("wild", case, "G", 30, size, pb, peers, "study: all 2^G sign vectors")


def cases(ctx):
    rows = []
    for B in ((9999, 99999) if ctx.quick else (9999, 99999, 999999)):
        rows.append(one_case(ctx, f"study: N=360, G=30, two-way FE, B={B:,}", study_spec(), B, "B", B == 9999))
    rows.append(enumeration_row(ctx))
    grid = ((20, 9999), (100, 9999)) if ctx.quick else \
        tuple((G, B) for G in (20, 100, 1000) for B in (10000, 100000))
    for G, B in grid:
        rows.append(one_case(ctx, f"N=10^4, k=20, G={G}, B={B:,}", grid_spec(ctx, 10000, 20, G, G), B, "G",
                             not ctx.quick and G == 20 and B <= 10000, f"N=10^4, k=20, B={B:,}"))
    if not ctx.quick:
        rows.append(one_case(ctx, "N=10^6, k=10, G=1000, B=99,999", grid_spec(ctx, 1000000, 10, 1000, 3), 99999,
                             "N", False))
    return rows
