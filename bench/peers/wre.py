"""bench-peers family wre: the WRE / WUE wild bootstrap and the wild bootstrap Anderson-Rubin test
for IV with two-way FE, panelboot against a brute-force numpy reference (no peer installable here
has WRE: boottest, its usual home, is Stata).

Data (CSV province,year,y,d,x,z; seed 2024): G provinces x T = 12 years, unit/year effects
a_i ~ N(0,1), b_t ~ N(0,0.5^2); x = N(0,1) + 0.3 a_i; z = N(0,1) + 0.3 a_i; e ~ N(0,1);
v = 0.8 e + 0.6 N(0,1); d = 0.6 z + 0.3 x + a_i + b_t + v; y = 0.5 d + 0.5 x + a_i + b_t + e.
G = 30 (N = 360, the study's shape) and G = 8 (N = 96, small enough to enumerate all 2^8 signs).

The reference (METHODS.md section 5; Davidson-MacKinnon 2010 as boottest implements it) REFITS
2SLS per replication, the FE as explicit dummies (G province dummies, T-1 year dummies), W = [x, D]:
  WRE, H0: b = b0: u1~ = resid of y - d b0 on W (coef g~); efficient first stage d on [z, W, u1~]
  gives p~, d~ and U2~ = d - z p~ - W d~; per draw v (one Rademacher sign per province, both
  equations): d* = z p~ + W d~ + v U2~, y* = d* b0 + W g~ + v u1~; t* = (b* - b0)/se*.
  WUE: the same with the unrestricted 2SLS (b^, g^, u1^) in place of (b0, g~, u1~); t* centred at b^.
  se: cluster-robust by province, G/(G-1) (N-1)/(N-K), K = columns of [d, W] (every dummy counted,
  so panelboot runs with --dof-fe all). p = #{|t*| - |t| > 1e-10 |t|}/B (ties not counted).
  AR: y - d b0 on [z, W], F = clustered Wald(z)/L (L = 1); y* = W g~ + v u1~; p = #{F* > F}/B.
  Exact: all 2^G sign vectors (no halving: WRE is not symmetric in v), used with G = 8.

Cases (ladder "G"):
  "WRE/WUE/AR, G=8, all 256 sign vectors": answers only (the panelboot seconds are one run of the
    b0 = 0.5 WRE + AR command with its CI, not a timing case). Observed t and AR F within 1e-8
    relative; panelboot with --enumerate always: p and n_exceed identical to the reference's
    enumeration, b0 in {0.5, 0, 1}, WRE, WUE, AR; plus the reference's own self-checks (2SLS with
    dummies = 2SLS on demeaned data; v = +1 reproduces the sample). The reference p just inside and
    outside each end of panelboot's WRE CI is recorded in the JSON (information, not checked).
  "WRE/WUE/AR, G=30, B=99,999": observed t and F within 1e-8; panelboot's drawn B = 99,999 (seed 1)
    against the reference's own ref-B draws (seed 7): p within 4 Monte Carlo standard errors, b0 in
    {0.5, 0, 1}, WRE, WUE, AR. Timed: panelboot WRE b0 = 0.5, p only (--no-ci), whole process,
    median of --repeats; the reference WRE b0 = 0.5 (one untimed call, then the median of
    --repeats) on ref-B replications, EXTRAPOLATED per replication to B = 99,999 (the entry is
    marked "extrapolated"; the measured seconds are kept under "measured"). ref-B is 9,999, 999
    with --quick.
The reference runs in a process of its own (common.run_peer: its own peak RSS) with one BLAS thread,
its fastest setting for these small solves. Each check (label, ok, detail) is kept in the JSON under
the peer's "checks"; the table's detail counts them.
"""
import itertools, json

import numpy as np

from . import common

FAMILY = "wre"
TOOL = "numpy refit loop (reference; no installable peer has WRE)"
FORMULA = "y ~ x | province + year | d ~ z"
B_PB, TIE, TOL_T = 99999, 1e-10, 1e-8
B0S = (0.5, 0.0, 1.0)
KINDS = ("wre", "wue", "ar")
YEARS, DATA_SEED, REF_SEED, PB_SEED = 12, 2024, 7, 1
ROOT = common.ROOT


# ---------------------------------------------------------------- data

def panel_writer(G, T=YEARS, seed=DATA_SEED):
    """write(f) for the G-province panel (the DGP of the module docstring)."""
    def write(f):
        rng = np.random.default_rng(seed)
        prov, year = np.repeat(np.arange(G), T), np.tile(np.arange(T), G)
        a, b = rng.standard_normal(G)[prov], 0.5 * rng.standard_normal(T)[year]
        n = G * T
        x = rng.standard_normal(n) + 0.3 * a
        z = rng.standard_normal(n) + 0.3 * a
        e = rng.standard_normal(n)
        v = 0.8 * e + 0.6 * rng.standard_normal(n)
        d = 0.6 * z + 0.3 * x + a + b + v
        y = 0.5 * d + 0.5 * x + a + b + e
        common.save_columns(f, ["province", "year", "y", "d", "x", "z"], [prov + 1, year + 2011, y, d, x, z], 2)
    return write


def wre_dataset(ctx, G):
    return common.dataset(ctx, f"wre_G{G}.csv", panel_writer(G))


def load(path):
    """The CSV as panelboot reads it; W = [x, province dummies (all G), year dummies (first dropped)]."""
    M = np.loadtxt(path, delimiter=",", skiprows=1)
    cl = np.unique(M[:, 0], return_inverse=True)[1]
    yr = np.unique(M[:, 1], return_inverse=True)[1]
    G, T = cl.max() + 1, yr.max() + 1
    C = (cl[:, None] == np.arange(G)).astype(float)          # N x G cluster indicator
    W = np.column_stack([M[:, 4], C, (yr[:, None] == np.arange(1, T)).astype(float)])
    return dict(y=M[:, 2], d=M[:, 3], z=M[:, 5], W=W, cl=cl, C=C, G=G, N=len(cl))


def all_sign_vectors(G):
    return np.array(list(itertools.product([-1.0, 1.0], repeat=G)))


def random_sign_vectors(B, G, seed=REF_SEED):
    return 2.0 * np.random.default_rng(seed).integers(0, 2, (B, G)) - 1


# ---------------------------------------------------------------- the numpy reference

def ols(y, X):
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    return b, y - X @ b


def crve(S, u, A, dat):
    """Cluster-robust A (sum_g S_g'u_g u_g'S_g) A times G/(G-1) (N-1)/(N-K), K = columns of S."""
    G, N, K = dat["G"], dat["N"], S.shape[1]
    sc = dat["C"].T @ (S * u[:, None])                      # G x K cluster scores
    return G / (G - 1) * (N - 1) / (N - K) * A @ (sc.T @ sc) @ A


def tsls(y, d, dat):
    """2SLS of y on [d, W] instrumented by [z, W]: coefficients, s.e. of the d coefficient."""
    X, Z = np.column_stack([d, dat["W"]]), np.column_stack([dat["z"], dat["W"]])
    Xh = Z @ np.linalg.lstsq(Z, X, rcond=None)[0]            # P_Z X
    A = np.linalg.inv(Xh.T @ Xh)
    b = A @ (Xh.T @ y)
    u = y - X @ b                                            # actual, not fitted, d
    return b, np.sqrt(crve(Xh, u, A, dat)[0, 0])


def ar_f(yr, dat):
    """Clustered Wald F (L = 1) of z in the OLS of yr on [z, W]."""
    X = np.column_stack([dat["z"], dat["W"]])
    A = np.linalg.inv(X.T @ X)
    b = A @ (X.T @ yr)
    return b[0] ** 2 / crve(X, yr - X @ b, A, dat)[0, 0]


def wre_dgp(dat, b0, impose):
    """Bootstrap DGP: (beta, g, u1, fixed part of d*, U2)."""
    y, d, z, W = dat["y"], dat["d"], dat["z"], dat["W"]
    if impose:
        g, u1 = ols(y - d * b0, W)
        beta = b0
    else:
        c, _ = tsls(y, d, dat)
        beta, g = c[0], c[1:]
        u1 = y - d * beta - W @ g
    c, _ = ols(d, np.column_stack([z, W, u1]))               # efficient first stage
    p, dd = c[0], c[1:-1]
    return beta, g, u1, z * p + W @ dd, d - z * p - W @ dd   # U2 keeps the u1 part


def exceedances(stat, draws):
    """Finite draws beyond stat by more than the tie tolerance: the reference's p and its counts."""
    draws = draws[np.isfinite(draws)]
    n = int(np.sum(draws - stat > TIE * stat))
    return dict(stat=float(stat), n_exceed=n, n_boot=len(draws), p=n / len(draws))


def wre_boot(dat, b0, impose, V):
    """WRE (impose) or WUE: |t| and |t*| for every sign vector in V, refitting 2SLS each time."""
    b, se = tsls(dat["y"], dat["d"], dat)
    t = (b[0] - b0) / se
    beta, g, u1, dfix, U2 = wre_dgp(dat, b0, impose)
    Wg = dat["W"] @ g
    ts = np.empty(len(V))
    for r, v in enumerate(V):
        vi = v[dat["cl"]]
        ds = dfix + vi * U2
        bs, ses = tsls(ds * beta + Wg + vi * u1, ds, dat)
        ts[r] = (bs[0] - beta) / ses
    res = exceedances(abs(t), np.abs(ts))
    res["stat"] = float(t)
    return res


def ar_boot(dat, b0, V):
    yr = dat["y"] - dat["d"] * b0
    g, u1 = ols(yr, dat["W"])
    Wg = dat["W"] @ g
    return exceedances(ar_f(yr, dat), np.array([ar_f(Wg + v[dat["cl"]] * u1, dat) for v in V]))


def reference(dat, kind, b0, V):
    return ar_boot(dat, b0, V) if kind == "ar" else wre_boot(dat, b0, kind == "wre", V)


def reference_self_checks(dat):
    """The reference against itself: FWL (2SLS on two-way demeaned data gives the same b), and
    v = all +1 reproduces the sample (t* = t under WRE, F* = F under AR: a tie, not counted)."""
    b, _ = tsls(dat["y"], dat["d"], dat)
    D = dat["W"][:, 1:]
    dm = lambda c: ols(c, D)[1]
    Z1, X1 = dm(dat["z"])[:, None], np.column_stack([dm(dat["d"]), dm(dat["W"][:, 0])])
    Z = np.column_stack([Z1, X1[:, 1]])
    Xh = Z @ np.linalg.lstsq(Z, X1, rcond=None)[0]
    bw = np.linalg.solve(Xh.T @ X1, Xh.T @ dm(dat["y"]))
    out = [check("reference: 2SLS with dummies = 2SLS on two-way demeaned data",
                 abs(bw[0] - b[0]) <= 1e-10 * abs(b[0]), f"{float(bw[0])!r} vs {float(b[0])!r}")]
    beta, g, u1, dfix, U2 = wre_dgp(dat, 0.3, True)
    ds = dfix + U2
    ys = ds * beta + dat["W"] @ g + u1
    one = np.ones((1, dat["G"]))
    ok = max(np.abs(ds - dat["d"]).max(), np.abs(ys - dat["y"]).max()) <= 1e-10 * np.abs(dat["y"]).max()
    out.append(check("reference: WRE and AR with v = +1 reproduce the sample (a tie, not counted)",
                     ok and wre_boot(dat, 0.3, True, one)["n_exceed"] == 0 and ar_boot(dat, 0.3, one)["n_exceed"] == 0))
    return out


def sign_vectors(draws, G):
    """draws "all": the 2^G sign vectors; a number B: B random Rademacher vectors (seed REF_SEED)."""
    return all_sign_vectors(G) if draws == "all" else random_sign_vectors(int(draws), G)


def answer_key(kind, b0):
    return f"{kind} {b0:g}"


def reference_job(job, measure):
    """What one reference process computes (job: JSON from reference_process): the reference's
    answer for each [kind, b0] of job["answers"], p at each of job["probes"] (WRE), its self-checks
    when asked and, when job["timed"] = b0, WRE at b0 timed by the prelude's measure()."""
    dat = load(job["csv"])
    V = sign_vectors(job["draws"], dat["G"])
    out = {"answers": {answer_key(k, b0): reference(dat, k, b0, V) for k, b0 in job.get("answers", [])},
           "probes": [wre_boot(dat, b0, True, V)["p"] for b0 in job.get("probes", [])],
           "self_checks": reference_self_checks(dat) if job.get("self_checks") else []}
    if job.get("timed") is not None:
        b0 = float(job["timed"])
        r, timing = measure(lambda: wre_boot(dat, b0, True, V))
        out["answers"][answer_key("wre", b0)] = r
        out.update(timing)
    return out


# The reference in its own process (its own peak RSS and timing), with ONE BLAS thread: its solves
# are small (N x 44 at G = 30) and OpenBLAS's threads only slow them, badly so on a busy 2-core
# machine; one thread is the reference's fastest setting, so the ratio is not inflated by it.
REFERENCE_PROCESS = r"""
for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[k] = "1"
sys.path.insert(0, sys.argv[1])
from bench.peers import wre
emit(wre.reference_job(json.loads(sys.argv[2]), measure))
"""


def reference_process(ctx, csv, draws, answers=(), probes=(), self_checks=False, timed=None):
    """Runs reference_job in a process of its own: its JSON answer or {"error": why}."""
    job = {"csv": csv, "draws": draws, "answers": [list(a) for a in answers], "probes": list(probes),
           "self_checks": self_checks, "timed": timed}
    return common.run_peer(ctx, REFERENCE_PROCESS, [ROOT, json.dumps(job)])


def extrapolate(ans, ref_b):
    """The reference's timing on ref_b draws, scaled per replication to panelboot's B_PB."""
    measured = {k: ans[k] for k in ("seconds", "seconds_min", "seconds_max", "runs")}
    scaled = dict(ans, measured=measured, seconds_per_replication=ans["seconds"] / ref_b)
    for k in ("seconds", "seconds_min", "seconds_max"):
        scaled[k] = ans[k] * B_PB / ref_b
    return scaled


# ---------------------------------------------------------------- panelboot

def wild_args(csv, b0, extra):
    return ["wild", "--data", csv, "--formula", FORMULA, "--cluster", "province", "--test", f"d = {b0:g}",
            "--B", str(B_PB), "--seed", str(PB_SEED), "--dof-fe", "all"] + list(extra)


def panelboot_tests(ctx, csv, b0, extra):
    """One run each of the WRE + AR command and the WUE command: {kind: test row}, and the first
    run's measurement."""
    first = common.panelboot(ctx, wild_args(csv, b0, list(extra) + ["--ar"]), repeats=1)
    wue = common.panelboot(ctx, wild_args(csv, b0, [e for e in extra if e != "--no-ci"]
                                          + ["--impose-null", "no", "--no-ci"]), repeats=1)
    tests = {r["test"]: r for r in first["json"]["tests"]}
    tests.update({r["test"]: r for r in wue["json"]["tests"] if r["test"] == "wue"})
    return tests, first


# ---------------------------------------------------------------- checks

def check(label, ok, detail="", group="reference"):
    """One check; group (reference, stat, exact, mc) is what the row's detail counts."""
    return {"check": label, "ok": bool(ok), "detail": detail, "group": group}


def stat_check(tag, kind, row, ref):
    st = row["f_stat" if kind == "ar" else "t_stat"]
    return check(f"{tag}: {'F' if kind == 'ar' else 't'} within {TOL_T:g}",
                 abs(st - ref["stat"]) <= TOL_T * abs(ref["stat"]) + 1e-14, f"{float(st)!r} vs {ref['stat']!r}", "stat")


def exact_check(tag, row, ref):
    ok = (row.get("enumerated") and row["n_boot"] == ref["n_boot"] and row["n_exceed"] == ref["n_exceed"]
          and row["p_value"] == ref["p"])
    return check(f"{tag}: p, n_exceed identical", ok,
                 f"{row['n_exceed']}/{row['n_boot']} vs {ref['n_exceed']}/{ref['n_boot']}", "exact")


def monte_carlo_check(tag, row, ref, ref_b):
    """Two independent sets of draws: |p - p_ref| within 4 Monte Carlo standard errors."""
    pp = min(max((ref["p"] + row["p_value"]) / 2, 1 / ref_b), 1 - 1 / ref_b)
    se = np.sqrt(pp * (1 - pp) * (1 / ref["n_boot"] + 1 / row["n_boot"]))
    return check(f"{tag}: p within 4 MC s.e.", abs(row["p_value"] - ref["p"]) <= 4 * se,
                 f"{row['p_value']:.5f} vs {ref['p']:.5f} (4 s.e. = {4 * se:.5f})", "mc")


def compare(tag, kind, row, ref, compare_p, p_group):
    """The observed statistic and the p-value (compare_p: exact_check or a monte_carlo_check, whose
    checks are in p_group) of one panelboot test row against the reference; a missing row fails both."""
    if row is None:
        missing = check(f"{tag}: row present", False, "no such row in panelboot's JSON", "stat")
        return [missing, dict(missing, group=p_group)]
    return [stat_check(tag, kind, row, ref), compare_p(tag, row, ref)]


def verdict(checks, summary):
    """AGREE when every check passed; otherwise DIFFER naming the first failures."""
    bad = [c for c in checks if not c["ok"]]
    if not bad:
        return common.AGREE, summary
    first = "; ".join(list(dict.fromkeys(f"{c['check']} {c['detail']}".strip() for c in bad))[:2])
    return common.DIFFER, f"{len(bad)} of {len(checks)} checks failed: {first}"


def tally(checks, group):
    hits = [c for c in checks if c["group"] == group]
    return f"{sum(c['ok'] for c in hits)}/{len(hits)}"


def size_of(G, b):
    return {"G": G, "T": YEARS, "N": G * YEARS, "B": b}


def b0_list(b0s):
    return ", ".join(f"{b:g}" for b in b0s)


# ---------------------------------------------------------------- cases

def ci_ends(wre_row):
    """The finite ends of panelboot's WRE confidence set."""
    return [e for piece in wre_row.get("ci_pieces") or [] for e in piece if e is not None]


def ci_probe_points(ends):
    """Just below and just above each end: where the reference p should cross alpha."""
    return [x for e in ends for x in (e - 1e-6 * (1 + abs(e)), e + 1e-6 * (1 + abs(e)))]


def ci_end_report(ends, probe_p, level):
    return [{"end": e, "p_minus": probe_p[2 * i], "p_plus": probe_p[2 * i + 1], "alpha": 1 - level}
            for i, e in enumerate(ends)]


def panelboot_for_b0s(ctx, csv, b0s, extra_for):
    """panelboot_tests at each b0 (extra_for(b0): its extra options): {b0: (tests, measurement)}."""
    return {b0: panelboot_tests(ctx, csv, b0, extra_for(b0)) for b0 in b0s}


def compare_all(label, runs, ref, kinds_b0s, compare_p, p_group):
    """Every (kind, b0) of panelboot's runs against the reference's answers."""
    return [c for kind, b0 in kinds_b0s
            for c in compare(f"{label} {kind.upper()} b0={b0:g}", kind, runs[b0][0].get(kind),
                             ref["answers"][answer_key(kind, b0)], compare_p, p_group)]


def exact_case(ctx):
    """G = 8: panelboot's enumeration against the reference's, every b0 and kind; answers only."""
    G, case = 8, "WRE/WUE/AR, G=8, all 256 sign vectors"
    size = size_of(G, 2 ** G)
    csv = wre_dataset(ctx, G)
    try:     # the CI (and its ends) only at b0 = 0.5, as panelboot reports it once per test
        runs = panelboot_for_b0s(ctx, csv, B0S,
                                 lambda b0: ["--enumerate", "always"] + ([] if b0 == 0.5 else ["--no-ci"]))
    except common.PanelbootFailed as err:
        return common.failed_row(FAMILY, case, "G", G, size, err)
    tests, pb = runs[0.5]
    shown = dict(pb, timed=False, what="whole process, one run (answers only, not timed): --enumerate always, "
                                       "WRE + AR, b0 = 0.5, with the CI")
    ends = ci_ends(tests.get("wre", {}))
    kinds_b0s = [(k, b0) for b0 in B0S for k in KINDS]
    ref = reference_process(ctx, csv, "all", answers=kinds_b0s, probes=ci_probe_points(ends), self_checks=True)
    what = "2SLS refit per sign vector, FE as dummies; all 2^8 vectors"
    if "error" in ref:
        return common.row(FAMILY, case, "G", G, size, shown, [common.peer(TOOL, ref, "", "", shown, what)], "G=8: all 2^G sign vectors (answers only)")
    checks = ref["self_checks"] + compare_all("G=8 exact", runs, ref, kinds_b0s, exact_check, "exact")
    status, detail = verdict(checks, f"p, n_exceed identical {tally(checks, 'exact')}, t/F within 1e-8 "
                                     f"{tally(checks, 'stat')} (WRE, WUE, AR x b0 {b0_list(B0S)}); "
                                     f"reference self-checks {tally(checks, 'reference')}")
    e = common.peer(TOOL, {}, status, detail, shown, what)     # not timed: no seconds, no ratio
    e.update(checks=checks, ci_ends=ci_end_report(ends, ref["probes"], float(pb["json"].get("level", 0.95))))
    return common.row(FAMILY, case, "G", G, size, shown, [e], "G=8: all 2^G sign vectors (answers only)")


def random_case(ctx):
    """G = 30: drawn p within 4 MC s.e. of the reference's own draws; WRE b0 = 0.5 timed."""
    G, case = 30, "WRE/WUE/AR, G=30, B=99,999"
    size = size_of(G, B_PB)
    ref_b = 999 if ctx.quick else 9999
    csv = wre_dataset(ctx, G)
    try:
        timed = common.panelboot(ctx, wild_args(csv, 0.5, ["--no-ci"]),
                                 what="whole process, WRE b0 = 0.5, p only (--no-ci)")
        runs = panelboot_for_b0s(ctx, csv, B0S, lambda b0: ["--no-ci"])
    except common.PanelbootFailed as err:
        return common.failed_row(FAMILY, case, "G", G, size, err)
    kinds_b0s = [(k, b0) for b0 in B0S for k in KINDS]
    ref = reference_process(ctx, csv, ref_b, answers=[kb for kb in kinds_b0s if kb != ("wre", 0.5)], timed=0.5)
    what = (f"WRE b0 = 0.5, 2SLS refit per draw, own process, one BLAS thread: median of {ctx.repeats} runs of "
            f"{ref_b:,} draws, extrapolated per replication to {B_PB:,}")
    if "error" in ref:
        return common.row(FAMILY, case, "G", G, size, timed, [common.peer(TOOL, ref, "", "", timed, what)], "G=30: B=99,999 drawn")
    mc_check = lambda tag, row, r: monte_carlo_check(tag, row, r, ref_b)
    checks = compare_all("G=30 random", runs, ref, kinds_b0s, mc_check, "mc")
    status, detail = verdict(checks, f"p within 4 MC s.e. {tally(checks, 'mc')}, t/F within 1e-8 "
                                     f"{tally(checks, 'stat')} (WRE, WUE, AR x b0 {b0_list(B0S)}; "
                                     f"reference {ref_b:,} own draws)")
    ref = extrapolate(ref, ref_b)
    e = common.peer(TOOL, ref, status, detail, timed, what)
    e.update(extrapolated=True, ref_B=ref_b, measured=ref["measured"],
             seconds_per_replication=ref["seconds_per_replication"], checks=checks)
    return common.row(FAMILY, case, "G", G, size, timed, [e], "G=30: B=99,999 drawn")


def cases(ctx):
    return [exact_case(ctx), random_case(ctx)]
