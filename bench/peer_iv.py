#!/usr/bin/env python3
"""Two-way FE IV (2SLS) + one-way clustered SE: panelboot against pyfixest and linearmodels, same run.

    python3 -m venv .deps/bench-venv && .deps/bench-venv/bin/pip install pyfixest linearmodels
    .deps/bench-venv/bin/python bench/peer_iv.py [--units 10000] [--periods 100] [--threads 0] [--repeat 3]
                                        [--out bench/out] [--build build] [--exe PATH] [--python PY]

The model: y ~ x | unit + time | d ~ z1 + z2, clustered by unit (one endogenous regressor d, one
exogenous x, two instruments, two absorbed FE; N = units x periods, 10^6 by default).
The DGP (seed 42): unit and time effects a_i, b_t; x = N(0,1) + 0.5 a_i; z1, z2 ~ N(0,1);
structural error e ~ N(0,1); first-stage error v = 0.6 e + 0.8 N(0,1) (corr(v, e) = 0.6, so d is
endogenous); d = 0.5 z1 + 0.3 z2 + 0.3 x + 0.5 a_i + 0.3 b_t + v; y = 1.0 d + 0.5 x + a_i + b_t + e.
At N = 10^6 the clustered first-stage F is in the tens of thousands (printed from panelboot's JSON).

Writes one CSV (unit, time, y, d, x, z1, z2), then times
  * pyfixest: pf.feols("y ~ x | unit + time | d ~ z1 + z2", vcov={"CRV1": "unit"}) on the data
    frame in memory (twice; the second, warm call is quoted) and the whole process (read_csv + 2
    fits) with /usr/bin/time -v (wall, peak RSS);
  * linearmodels: IV2SLS has no absorption (linearmodels.iv.absorbing.AbsorbingLS is OLS only), so
    this script passes the two-way within-transformed variables: the panel is balanced, so
    v - mean_i(v) - mean_t(v) + mean(v) is the exact two-way demeaning. The FE codes (pandas
    factorize), the balance check, the demeaning of all five variables and
    IV2SLS(y~, x~, d~, [z1~, z2~]).fit(cov_type="clustered", clusters=unit) are all inside its timed
    call (twice; the second quoted), plus its whole process as for pyfixest;
  * panelboot as a whole process from the CSV (`fit ... --format json`), with --threads N (default:
    all cores) and with --threads 1, best of --repeat runs each (wall and peak RSS of that run).
    panelboot has no in-memory IV benchmark (bench_fit is OLS only), so its figure always includes
    process start and CSV parsing; the "in memory" ratios below compare the peers' warm fit on a
    data frame against that whole panelboot process, which favours the peers.

Agreement, checked before the table is trusted (exit status 1 if any check fails):
  * coefficients: panelboot vs pyfixest, panelboot vs linearmodels, pyfixest vs linearmodels,
    max relative difference <= 1e-6;
  * clustered SEs: panelboot vs pyfixest <= 1e-6 (both fixest's convention:
    G/(G-1) (N-1)/(N-K), FE nested in the cluster not counted in K). If they differ, the script
    prints the squared ratio beside the candidate small-sample factors rather than passing;
  * linearmodels' SE convention differs: its clustered default (debiased=False) applies no
    small-sample factor at all and knows nothing of the absorbed FE. Its SE and the ratio
    SE_lm / SE_panelboot are reported, with the expected ratio 1/sqrt(G/(G-1) (N-1)/(N-K)) (K from
    panelboot's JSON, dof_k); as a check of that explanation, linearmodels is also fitted (untimed)
    with debiased=True, extra_df = K - (regressors), which must reproduce panelboot's SEs (1e-6).
"""
import argparse, json, os, subprocess, sys, time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_fit import timed_process  # noqa: E402  (wall time and peak RSS of a whole process)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMULA = "y ~ x | unit + time | d ~ z1 + z2"
TOL = 1e-6


def write_csv(path, units, periods, seed=42):
    rng = np.random.default_rng(seed)
    n = units * periods
    unit = np.repeat(np.arange(units), periods)
    tt = np.tile(np.arange(periods), units)
    ua, ta = rng.standard_normal(units), rng.standard_normal(periods)
    z = rng.standard_normal((n, 2))
    x = rng.standard_normal(n) + 0.5 * ua[unit]
    e = rng.standard_normal(n)
    v = 0.6 * e + 0.8 * rng.standard_normal(n)
    d = 0.5 * z[:, 0] + 0.3 * z[:, 1] + 0.3 * x + 0.5 * ua[unit] + 0.3 * ta[tt] + v
    y = 1.0 * d + 0.5 * x + ua[unit] + ta[tt] + e
    tmp = path + ".tmp.csv"
    with open(tmp, "w") as f:
        f.write("unit,time,y,d,x,z1,z2\n")
        chunk = 500000
        for b in range(0, n, chunk):
            s = slice(b, min(n, b + chunk))
            block = np.column_stack([unit[s], tt[s], y[s], d[s], x[s], z[s]])
            np.savetxt(f, block, fmt=["%d", "%d"] + ["%.10g"] * 5, delimiter=",")
    os.replace(tmp, path)


PYFIXEST_SNIPPET = r"""
import sys, time, json, warnings
warnings.filterwarnings("ignore")
import pandas as pd, pyfixest as pf
t0 = time.perf_counter(); df = pd.read_csv(sys.argv[1]); t1 = time.perf_counter()
fits, diags = [], []
for _ in range(2):
    a = time.perf_counter()
    m = pf.feols(sys.argv[2], data=df, vcov={"CRV1": "unit"})
    b = time.perf_counter()
    m.IV_Diag()  # first-stage F and effective F: panelboot computes its diagnostics in every fit
    diags.append(time.perf_counter() - b)
    fits.append(b - a)
print(json.dumps({"read_s": t1 - t0, "fit_cold_s": fits[0], "fit_warm_s": fits[1], "diag_warm_s": diags[1],
                  "names": list(m.coef().index), "coef": m.coef().tolist(), "se": m.se().tolist(),
                  "version": pf.__version__, "pandas": pd.__version__}))
"""

LINEARMODELS_SNIPPET = r"""
import sys, time, json, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd, linearmodels
from linearmodels.iv import IV2SLS
t0 = time.perf_counter(); df = pd.read_csv(sys.argv[1]); t1 = time.perf_counter()

def within_iv(df, **cov):
    # two-way within transformation of a balanced panel, then IV2SLS on the demeaned variables
    ui, uu = pd.factorize(df["unit"].to_numpy(), sort=True)
    ti, tu = pd.factorize(df["time"].to_numpy(), sort=True)
    G, T, n = len(uu), len(tu), len(df)
    cu, ct = np.bincount(ui, minlength=G), np.bincount(ti, minlength=T)
    if n != G * T or cu.min() != T or ct.min() != G or len(np.unique(ui.astype(np.int64) * T + ti)) != n:
        raise SystemExit("linearmodels path needs a balanced panel (one row per unit x time)")
    out = {}
    for c in ("y", "d", "x", "z1", "z2"):
        v = df[c].to_numpy(dtype=float)
        out[c] = v - (np.bincount(ui, v, G) / T)[ui] - (np.bincount(ti, v, T) / G)[ti] + v.mean()
    mod = IV2SLS(out["y"], pd.DataFrame({"x": out["x"]}), pd.DataFrame({"d": out["d"]}),
                 pd.DataFrame({"z1": out["z1"], "z2": out["z2"]}))
    return mod.fit(cov_type="clustered", clusters=ui, **cov), mod

fits = []
for _ in range(2):
    a = time.perf_counter()
    r, mod = within_iv(df)
    fits.append(time.perf_counter() - a)
# untimed: the same fit with linearmodels' small-sample factor and the absorbed FE as extra_df
extra_df = int(sys.argv[2])
ui = pd.factorize(df["unit"].to_numpy(), sort=True)[0]
rd = mod.fit(cov_type="clustered", clusters=ui, debiased=True, extra_df=extra_df)
print(json.dumps({"read_s": t1 - t0, "fit_cold_s": fits[0], "fit_warm_s": fits[1],
                  "names": list(r.params.index), "coef": r.params.tolist(), "se": r.std_errors.tolist(),
                  "se_debiased": rd.std_errors.tolist(), "version": linearmodels.__version__}))
"""


def by_name(d):
    return dict(zip(d["names"], zip(d["coef"], d["se"])))


def rel(a, b):
    return abs(a - b) / abs(b)


def run_panelboot(exe, csv, threads, repeat):
    best = None
    for _ in range(repeat):
        wall, rss, out = timed_process([exe, "fit", "--data", csv, "--formula", FORMULA, "--cluster",
                                        "unit", "--format", "json", "--threads", str(threads)])
        if best is None or wall < best[0]:
            best = (wall, rss, out)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=10000)
    ap.add_argument("--periods", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0, help="panelboot --threads (0: all cores)")
    ap.add_argument("--repeat", type=int, default=3, help="panelboot runs per thread count (best quoted)")
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--build", default="build")
    ap.add_argument("--exe", default=None, help="panelboot binary (default: <build>/panelboot)")
    default_py = os.path.join(ROOT, ".deps", "bench-venv", "bin", "python")
    ap.add_argument("--python", default=default_py if os.path.exists(default_py) else sys.executable,
                    help="interpreter with pyfixest and linearmodels (default: .deps/bench-venv)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    exe = a.exe or os.path.join(a.build, "panelboot")
    threads = a.threads or os.cpu_count()
    n = a.units * a.periods
    csv = os.path.join(a.out, f"panel_iv_{a.units}x{a.periods}.csv")
    if not os.path.exists(csv):
        write_csv(csv, a.units, a.periods)
    size_mb = os.path.getsize(csv) / 1e6
    data_mb = n * 7 * 8 / 1e6

    # panelboot first (its JSON gives K for the linearmodels convention check)
    wall_pb, rss_pb, out = run_panelboot(exe, csv, threads, a.repeat)
    wall_pb1, rss_pb1, out1 = run_panelboot(exe, csv, 1, a.repeat)
    m = json.loads(out)["models"][0]
    m1 = json.loads(out1)["models"][0]
    pb = {c["name"]: (c["estimate"], c["std_error"]) for c in m["coefficients"]}
    pb1 = {c["name"]: (c["estimate"], c["std_error"]) for c in m1["coefficients"]}
    G, K, N = m["n_clusters"], m["dof_k"], m["nobs"]
    first_f = m["first_stages"][0]["f_stat"]

    wall_py, rss_py, out = timed_process([a.python, "-c", PYFIXEST_SNIPPET, csv, FORMULA])
    py = json.loads(out.strip().splitlines()[-1])
    extra_df = int(round(K)) - len(pb)
    wall_lm, rss_lm, out = timed_process([a.python, "-c", LINEARMODELS_SNIPPET, csv, str(extra_df)])
    lm = json.loads(out.strip().splitlines()[-1])
    pf_, lm_ = by_name(py), by_name(lm)
    lm_deb = dict(zip(lm["names"], lm["se_debiased"]))
    names = list(pb)

    # ---- agreement
    checks = []
    def check(label, val, tol=TOL):
        checks.append((label, float(val), bool(val <= tol)))
    check("coef panelboot vs pyfixest", max(rel(pb[k][0], pf_[k][0]) for k in names))
    check("coef panelboot vs linearmodels", max(rel(pb[k][0], lm_[k][0]) for k in names))
    check("coef pyfixest vs linearmodels", max(rel(pf_[k][0], lm_[k][0]) for k in names))
    check("SE panelboot vs pyfixest (CRV1, fixest convention)", max(rel(pb[k][1], pf_[k][1]) for k in names))
    check("coef+SE panelboot --threads 1 vs --threads N",
          max(max(rel(pb1[k][0], pb[k][0]), rel(pb1[k][1], pb[k][1])) for k in names))
    c_fixest = G / (G - 1) * (N - 1) / (N - K)
    ratio_lm = {k: float(lm_[k][1] / pb[k][1]) for k in names}
    expect_lm = 1 / np.sqrt(c_fixest)
    check("SE linearmodels/panelboot vs 1/sqrt(G/(G-1)(N-1)/(N-K))", max(rel(r, expect_lm) for r in ratio_lm.values()))
    check(f"SE linearmodels debiased=True, extra_df={extra_df} vs panelboot", max(rel(lm_deb[k], pb[k][1]) for k in names))
    se_pf_ok = checks[3][2]
    diagnosis = ""
    if not se_pf_ok:  # say which small-sample convention would explain the gap
        r2 = {k: (pb[k][1] / pf_[k][1]) ** 2 for k in names}
        L = sum(f["levels"] for f in m["fixed_effects"])
        cands = {"G/(G-1) only": G / (G - 1), "(N-1)/(N-K) only": (N - 1) / (N - K),
                 f"K with every FE level (K={len(pb) + L})": (N - 1) / (N - len(pb) - L),
                 f"K without FE (K={len(pb)})": (N - 1) / (N - len(pb))}
        diagnosis = ("SE(panelboot)^2/SE(pyfixest)^2 = " + ", ".join(f"{k}: {v:.10f}" for k, v in r2.items())
                     + "; panelboot's c / candidate c: "
                     + ", ".join(f"{k}: {c_fixest / v:.10f}" for k, v in cands.items()))

    # ---- table
    res = {"rows": n, "units": a.units, "periods": a.periods, "csv_mb": size_mb, "data_doubles_mb": data_mb,
           "threads": threads, "first_stage_f": first_f, "G": G, "K": K,
           "pyfixest_version": py["version"], "pandas_version": py["pandas"], "linearmodels_version": lm["version"],
           "pyfixest_fit_warm_s": py["fit_warm_s"], "pyfixest_fit_cold_s": py["fit_cold_s"],
           "pyfixest_read_s": py["read_s"], "pyfixest_process_s": wall_py, "pyfixest_peak_mb": rss_py,
           "linearmodels_fit_warm_s": lm["fit_warm_s"], "linearmodels_fit_cold_s": lm["fit_cold_s"],
           "linearmodels_read_s": lm["read_s"], "linearmodels_process_s": wall_lm, "linearmodels_peak_mb": rss_lm,
           "panelboot_process_s": wall_pb, "panelboot_process_peak_mb": rss_pb,
           "panelboot_process_1t_s": wall_pb1, "panelboot_process_1t_peak_mb": rss_pb1,
           "coef": {k: {"panelboot": pb[k][0], "pyfixest": pf_[k][0], "linearmodels": lm_[k][0]} for k in names},
           "se": {k: {"panelboot": pb[k][1], "pyfixest": pf_[k][1], "linearmodels": lm_[k][1],
                      "linearmodels_debiased": lm_deb[k]} for k in names},
           "se_ratio_linearmodels_over_panelboot": ratio_lm, "se_ratio_expected": float(expect_lm),
           "checks": [{"check": c, "max_rel_diff": v, "ok": ok} for c, v, ok in checks], "diagnosis": diagnosis}
    lines = [f"| {n:,} rows ({a.units:,} units x {a.periods} periods) | time | peak RSS | peer / panelboot ({threads} threads) |",
             "|---|---:|---:|---:|"]
    def row(label, t, mem="", ratio=True):
        r = f"{t / wall_pb:.1f}x" if ratio else ""
        lines.append(f"| {label} | {t:.3f} s | {mem} | {r} |")
    row("pyfixest `feols`, data frame in memory (warm, second call)", py["fit_warm_s"])
    row("pyfixest `feols` + `IV_Diag()` (first-stage F, effective F), in memory (warm)",
        py["fit_warm_s"] + py["diag_warm_s"])
    row("linearmodels within transform + `IV2SLS`, in memory (warm, second call)", lm["fit_warm_s"])
    row("pyfixest whole process: `read_csv` + 2 fits, each with `IV_Diag()`", wall_py, f"{rss_py:.0f} MB")
    row("linearmodels whole process: `read_csv` + 2 (demean + fit) + 1 untimed refit", wall_lm, f"{rss_lm:.0f} MB")
    row(f"panelboot whole process: CSV parse + fit, `--threads {threads}` (best of {a.repeat})", wall_pb,
        f"{rss_pb:.0f} MB", ratio=False)
    row(f"panelboot whole process, `--threads 1` (best of {a.repeat})", wall_pb1, f"{rss_pb1:.0f} MB", ratio=False)
    lines.append("")
    goal = 8.0
    r_pf, r_lm = py["fit_warm_s"] / wall_pb, lm["fit_warm_s"] / wall_pb
    r_pf_p, r_lm_p = wall_py / wall_pb, wall_lm / wall_pb
    lines.append(f"- ratio, peer warm fit in memory / panelboot whole process: pyfixest {r_pf:.1f}x, "
                 f"linearmodels {r_lm:.1f}x (goal {goal:.0f}x: {'met' if min(r_pf, r_lm) >= goal else 'NOT met'})")
    lines.append(f"- ratio, whole process / whole process: pyfixest {r_pf_p:.1f}x, linearmodels {r_lm_p:.1f}x "
                 f"(goal {goal:.0f}x: {'met' if min(r_pf_p, r_lm_p) >= goal else 'NOT met'}); "
                 f"memory pyfixest {rss_py / rss_pb:.1f}x, linearmodels {rss_lm / rss_pb:.1f}x panelboot's")
    lines.append(f"- data: CSV {size_mb:.0f} MB, {data_mb:.0f} MB as doubles; G = {G}, K = {K:g}, "
                 f"first-stage F (clustered) = {first_f:.0f}")
    lines.append(f"- versions: pyfixest {py['version']}, linearmodels {lm['version']}, pandas {py['pandas']}")
    lines.append("")
    lines.append("| coefficient | panelboot | pyfixest | linearmodels | SE panelboot | SE pyfixest | SE linearmodels (default) | SE lm / panelboot |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for k in names:
        lines.append(f"| {k} | {pb[k][0]:.12g} | {pf_[k][0]:.12g} | {lm_[k][0]:.12g} | {pb[k][1]:.10g} | "
                     f"{pf_[k][1]:.10g} | {lm_[k][1]:.10g} | {ratio_lm[k]:.8f} |")
    lines.append(f"\nexpected SE ratio linearmodels / fixest = 1/sqrt(G/(G-1) (N-1)/(N-K)) = {expect_lm:.8f}\n")
    lines.append("agreement (max relative difference, tolerance 1e-6):")
    for c, v, ok in checks:
        lines.append(f"- {c}: {v:.2e} {'ok' if ok else 'FAIL'}")
    if diagnosis:
        lines.append(f"- diagnosis: {diagnosis}")
    text = "\n".join(lines)
    json.dump(res, open(os.path.join(a.out, "iv_peer.json"), "w"), indent=2)
    open(os.path.join(a.out, "iv_peer.md"), "w").write(text + "\n")
    print(text)
    if not all(ok for _, _, ok in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
