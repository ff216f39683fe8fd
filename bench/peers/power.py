"""power: Monte Carlo size and power of cluster-robust tests in split samples: `panelboot power`
against the Python loop users write today (numpy + pyfixest.feols + pyfixest's wildboottest).

The study (data/nqpf_synthetic.csv, the embedded data, 30 provinces x 12 years): `newqua ~ rgzn +
urban + ind + fdi + open + fin | province + year`, clustered by province, target rgzn, 21 effects
0..0.004, five split samples (region East 11 clusters / Central 8 / West 11; devlevel high /
average): 105 cells.
(a) CRVE only, R = 10,000 per cell: 105 cells x 10^4 = 1.05 million regressions;
(b) CRVE + WCR (wild cluster bootstrap, null imposed, Rademacher, B = 399), R = 2,000 per cell.
panelboot is timed as a whole process (common.panelboot: start, CSV read, the five group fits and
every replication), ctx.repeats times, median quoted.

The peer, per group, does what panelboot's DGP does: fit the group's two-way FE model (singleton
FE groups dropped, as both tools do by default), keep the residuals u and the fitted values; per
replication y_sim = fitted - b_rgzn * rgzn + effect * rgzn + sqrt(N / (N - K)) * u_g * v_g, with
one standard normal v_g per cluster g and K = regressors + FE levels (provinces + years - 1, as
panelboot's power.cpp counts them: one level per extra FE dimension is redundant); then
`pyfixest.feols(..., vcov={"CRV1": "province"})` (reject when its p-value, t(G-1), is <= alpha,
panelboot's rule) and, for (b), `.wildboottest(param="rgzn", reps=399, seed=...)` (pyfixest's
wrapper of the wildboottest package; with 2^G < 399, as for Central's 8 clusters, it enumerates
all 2^G sign vectors, as panelboot does).

Why the peer's time is extrapolated and not measured: the full study is hours of the peer's time
(a replication costs it milliseconds, panelboot's microseconds). Each peer entry runs in its own
process (common.run_peer); per group one untimed warm-up replication first (numba's compilation
excluded), then a subset of replications (20 per group for (a), 10 for (b); 4 and 2 with --quick)
spread evenly over the 21 effects, each timed from drawing y_sim to the last p-value. The entry's
seconds are the full study extrapolated: for each group its mean seconds per replication x 21
effects x R, summed over the five groups (seconds_min = seconds_max = that figure; "extrapolated"
is set; the measured per-replication figures are in "per_replication"). Python's start, imports,
the data read and the group fits are not counted; panelboot's whole process is, so the ratio
favours the peer slightly.

wildboottest 0.3.x defines its denominator kernel with @njit inside WildboottestCL.get_denom, so
numba compiles it again on every call (0.3-0.5 s on a 2-core VM, about 90% of a replication's
time), which no warm-up removes. (b) is therefore timed twice: with that kernel compiled once and
reused (njit memoized by the kernel's code object; the same p-values as shipped), the first entry,
and as shipped, what a user's loop pays today.

Agreement: the draws differ (panelboot's counter-based generator vs numpy's), so the answers can
only be checked for plausibility. The peer's count of rejections on its subset is set against
panelboot's rejection rates in the same cells (a z score under independent Bernoulli draws with
panelboot's rates, per test): |z| < 3 in every test and the same number of clusters in every group
is "plausible", anything else DIFFER. A plausible answer is not an agreeing one: the summary keeps
its (extrapolated) ratio apart from the measured ones.
"""
import json, os

from . import common

FAMILY = "power"
ROOT = common.ROOT
DATA = os.path.join(ROOT, "data", "nqpf_synthetic.csv")
FORMULA = "newqua ~ rgzn + urban + ind + fdi + open + fin | province + year"
CLUSTER, TARGET = "province", "rgzn"
SPLITS = ("region", "devlevel")
GROUPS = 5                              # East, Central, West; high, average
EFFECTS = (0.0, 0.004, 21)              # --effects a:b:n
CELLS = GROUPS * EFFECTS[2]
ALPHA, WILD_B, SEED = 0.05, 399, 1
Z_LIMIT = 3.0
TEST_LABELS = {"crve": "CRVE", "wild": f"WCR B = {WILD_B}"}

# configuration: panelboot --tests, R per cell, the peer's tests, peer replications per group
# (full, quick), the peer entries (tool name, wildboottest's kernel compiled once)
CONFIGS = {
    "a": {"case": "(a) CRVE, R = 10,000", "tests": ("crve",), "R": 10000, "peer_reps": (20, 4),
          "peers": [("pyfixest loop", False)]},
    "b": {"case": f"(b) CRVE + WCR B = {WILD_B}, R = 2,000", "tests": ("crve", "wild"), "R": 2000,
          "peer_reps": (10, 2),
          "peers": [("pyfixest loop + wildboottest (kernel compiled once)", True),
                    ("pyfixest loop + wildboottest (as shipped)", False)]},
}

PEER = r"""
from importlib.metadata import version
import numpy as np, pandas as pd
import pyfixest as pf
import wildboottest.wildboottest as wbt

# wildboottest defines its denominator kernel with @njit inside WildboottestCL.get_denom, so every
# call makes a new function and numba compiles it again (about 0.3-0.5 s here). With "cached", njit
# is memoized by the kernel's code object (the kernel captures nothing from its enclosing scope, so
# the first compiled dispatcher serves every later call unchanged).
_njit, _kernels = wbt.njit, {}
def njit_cached(*args, **kw):
    def deco(fn):
        key = (fn.__code__, tuple(sorted(kw.items())), args)
        if key not in _kernels:
            _kernels[key] = _njit(*args, **kw)(fn)
        return _kernels[key]
    return deco

cfg = json.loads(sys.argv[1])
y, rhs = [s.strip() for s in cfg["formula"].split("|")[0].split("~")]
xs = [v.strip() for v in rhs.split("+")]
fes = [v.strip() for v in cfg["formula"].split("|")[1].split("+")]
target, cl, alpha, B, tests = cfg["target"], cfg["cluster"], cfg["alpha"], cfg["wild_B"], cfg["tests"]
a, b, n = cfg["effects"]
effects = np.linspace(a, b, int(n))
sim_formula = "y_sim ~ " + " + ".join(xs) + " | " + " + ".join(fes)
data = pd.read_csv(cfg["data"])
wbt.njit = njit_cached if cfg["cached"] else _njit


def drop_singletons(d):
    while True:
        keep = np.ones(len(d), bool)
        for f in fes:
            keep &= d.groupby(f)[f].transform("size").to_numpy() > 1
        if keep.all():
            return d.reset_index(drop=True)
        d = d[keep]


def spread(n_rep):  # effect indices spread evenly over the grid
    m = len(effects)
    return [0] * n_rep if n_rep < 2 else [round(i * (m - 1) / (n_rep - 1)) for i in range(n_rep)]


def group_run(gi, split, group):
    d = drop_singletons(data[data[split] == group].copy())
    fit0 = pf.feols(cfg["formula"], data=d, vcov={"CRV1": cl})
    u = fit0.resid()
    assert len(u) == len(d), "pyfixest dropped rows the singleton pass kept"
    x = d[target].to_numpy()
    base = d[y].to_numpy() - u - fit0.coef()[target] * x  # fitted values less the target's part
    N = len(d)
    # regressors + FE levels, less the one redundant level per extra FE dimension (as power.cpp's k_all)
    K = len(xs) + sum(d[f].nunique() for f in fes) - (len(fes) - 1)
    scale = np.sqrt(N / (N - K))
    codes, levels = pd.factorize(d[cl])
    G = len(levels)
    d["_cl"] = codes  # integer codes: wildboottest's numba kernels reject an object (string) array
    rng = np.random.default_rng([cfg["seed"], gi])

    def rep(effect):
        t0 = time.perf_counter()
        d["y_sim"] = base + effect * x + scale * u * rng.standard_normal(G)[codes]
        fit = pf.feols(sim_formula, data=d, vcov={"CRV1": "_cl"})
        rej = {"crve": bool(float(fit.pvalue()[target]) <= alpha)}
        if "wild" in tests:
            r = fit.wildboottest(param=target, reps=B, seed=int(rng.integers(2**31)))
            rej["wild"] = bool(float(np.asarray(r["Pr(>|t|)"])) <= alpha)
        return rej, time.perf_counter() - t0

    rep(effects[-1])  # warm-up, untimed (numba compiles on the first call)
    reps = []
    for k in spread(cfg["reps"]):
        rej, s = rep(effects[k])
        reps.append({"effect": float(effects[k]), "reject": rej, "seconds": s})
    sec = sorted(r["seconds"] for r in reps)
    return {"split": split, "group": str(group), "rows": N, "n_clusters": G, "K": K, "reps": reps,
            "mean_s": sum(sec) / len(sec), "median_s": sec[len(sec) // 2], "min_s": sec[0], "max_s": sec[-1]}


pairs = [(s, g) for s in cfg["splits"] for g in pd.unique(data[s])]
emit({"groups": [group_run(gi, s, g) for gi, (s, g) in enumerate(pairs)],
      "versions": {p: version(p) for p in ("pyfixest", "wildboottest", "numpy", "pandas", "numba")}})
"""


def panelboot_args(conf):
    args = ["power", "--data", DATA, "-f", FORMULA, "--cluster", CLUSTER, "--target", TARGET,
            "--effects", "%g:%g:%d" % EFFECTS]
    for s in SPLITS:
        args += ["--split", s]
    args += ["--tests", ",".join(conf["tests"]), "--R", str(conf["R"]), "--alpha", str(ALPHA), "--seed", str(SEED)]
    if "wild" in conf["tests"]:
        args += ["--wild-B", str(WILD_B)]
    return args


def case_size(conf):
    size = {"R": conf["R"], "groups": GROUPS, "cells": CELLS, "regressions": CELLS * conf["R"]}
    if "wild" in conf["tests"]:
        size["B"] = WILD_B
    return size


def run_panelboot(ctx, conf):
    what = (f"whole process: start, CSV read, {GROUPS} group fits, {CELLS} cells x R = {conf['R']:,} "
            f"replications ({' + '.join(TEST_LABELS[t] for t in conf['tests'])})")
    pb = common.panelboot(ctx, panelboot_args(conf), what=what)
    pb["timing"] = pb["json"].get("timing")      # panelboot's own seconds per stage
    return pb


def peer_reps(ctx, conf):
    full, quick = conf["peer_reps"]
    return quick if ctx.quick else full


def run_pyfixest_loop(ctx, conf, cached):
    cfg = {"data": DATA, "formula": FORMULA, "target": TARGET, "cluster": CLUSTER, "splits": list(SPLITS),
           "effects": list(EFFECTS), "alpha": ALPHA, "wild_B": WILD_B, "seed": SEED,
           "tests": list(conf["tests"]), "reps": peer_reps(ctx, conf), "cached": cached}
    return common.run_peer(ctx, PEER, [json.dumps(cfg)])


def extrapolated_seconds(groups, R):
    """The full study's peer time: per group, mean seconds per replication x effects x R; summed."""
    return sum(g["mean_s"] * EFFECTS[2] * R for g in groups)


def per_replication(groups):
    return {f"{g['split']}={g['group']}": {k: g[k] for k in ("mean_s", "median_s", "min_s", "max_s")}
            | {"timed": len(g["reps"]), "rows": g["rows"], "clusters": g["n_clusters"], "K": g["K"]}
            for g in groups}


def panelboot_cell(results, split, group, effect, test):
    for r in results:
        if (r.get("split") == split and str(r.get("group")) == group and str(r.get("test")).lower() == test
                and abs(float(r.get("effect")) - effect) <= 1e-9 * max(1.0, abs(effect))):
            return r
    return None


def plausibility(groups, results, test):
    """The peer's rejections on its subset against panelboot's rates in the same cells: (rejections,
    replications, expected, z) or None when panelboot has no result for some cell."""
    obs = n = 0
    exp = var = 0.0
    for g in groups:
        for r in g["reps"]:
            cell = panelboot_cell(results, g["split"], g["group"], r["effect"], test)
            if cell is None:
                return None
            p = float(cell["rejection_rate"])
            n += 1
            obs += r["reject"][test]
            exp += p
            var += p * (1 - p)
    return obs, n, exp, (obs - exp) / max(var, 0.25) ** 0.5


def cluster_mismatches(groups, results):
    """Groups whose cluster count differs: {group: (peer, panelboot)}."""
    out = {}
    for g in groups:
        pb_g = next((r.get("n_clusters") for r in results
                     if r.get("split") == g["split"] and str(r.get("group")) == g["group"]), None)
        if pb_g != g["n_clusters"]:
            out[f"{g['split']}={g['group']}"] = (g["n_clusters"], pb_g)
    return out


def agreement(conf, groups, results):
    """(status, detail, checks): every test's |z| < 3 and the same clusters per group is PLAUSIBLE."""
    parts, checks, status = [], {}, common.PLAUSIBLE
    for test in conf["tests"]:
        c = plausibility(groups, results, test)
        if c is None:
            return common.NOT_COMPARABLE, f"panelboot has no {test} result for some of the peer's cells", checks
        obs, n, exp, z = c
        checks[test] = {"rejections": obs, "replications": n, "expected": exp, "z": z}
        parts.append(f"{test} {obs}/{n} rejected, {exp:.1f} expected, z {z:+.2f}")
        if abs(z) >= Z_LIMIT:
            status = common.DIFFER
    mism = cluster_mismatches(groups, results)
    checks["cluster_mismatches"] = mism
    if mism:
        status = common.DIFFER
        parts.append(f"clusters differ (peer, panelboot): {mism}")
    else:
        parts.append(f"clusters match in all {len(groups)} groups")
    return status, "plausibility (draws differ): " + "; ".join(parts), checks


def peer_entry(ctx, conf, tool, cached, pb):
    ans = run_pyfixest_loop(ctx, conf, cached)
    n = peer_reps(ctx, conf)
    what = (f"{n} timed replications per group (after one untimed warm-up), extrapolated: mean s per "
            f"replication x {EFFECTS[2]} effects x R = {conf['R']:,}, summed over {GROUPS} groups; "
            "Python's start, imports and the group fits not counted")
    if "error" in ans:
        return common.peer(tool, ans, common.FAILED, "", pb, what)
    groups = ans["groups"]
    full = extrapolated_seconds(groups, conf["R"])
    timed = sum(len(g["reps"]) for g in groups)
    status, detail, checks = agreement(conf, groups, pb["json"].get("results", []))
    ans.update(seconds=full, seconds_min=full, seconds_max=full, runs=1)
    e = common.peer(tool, ans, status, detail, pb, what)
    e.update(extrapolated=True, timed_replications=timed, wild_kernel_compiled_once=cached,
             per_replication=per_replication(groups), checks=checks, versions=ans.get("versions"))
    return e


def config_row(ctx, conf):
    size = case_size(conf)
    try:
        pb = run_panelboot(ctx, conf)
    except common.PanelbootFailed as err:
        return common.failed_row(FAMILY, conf["case"], "R", conf["R"], size, err)  # no series: not plotted
    peers = []
    for tool, cached in conf["peers"]:
        ctx.log(f"bench-peers: power {conf['case']}: {tool} ...")
        peers.append(peer_entry(ctx, conf, tool, cached, pb))
    return common.row(FAMILY, conf["case"], "R", conf["R"], size, pb, peers, conf["case"])


def cases(ctx):
    return [config_row(ctx, conf) for conf in CONFIGS.values()]
