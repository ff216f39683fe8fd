#!/usr/bin/env python3
"""Wild cluster bootstrap: panelboot against wildboottest, pyfixest.wildboottest() and R's
sandwich::vcovBS in the same run.

    python3 bench/peer_wild.py [--quick] [--out bench/out]

(a) the study's shape: the embedded data (N = 360, G = 30, two-way FE), B = 999,999, and the full
    enumeration of 2^30 sign vectors (panelboot only: the peers enumerate only when 2^G <= B);
(b) N = 10^4, k = 20, G in {20, 100, 1000}, B in {10^4, 10^5} (fwildclusterboot's grid);
(c) N = 10^6, G = 1000, k = 10, B = 99,999.
Each peer runs in its own process (warm: the call is made twice and the second is timed, so
numba's compilation is excluded); t statistics are compared first (same small-sample convention:
panelboot --dof-fe all for FE models, as the peers count every FE level), p-values must agree
within binomial error. sandwich::vcovBS refits lm per replication and returns a bootstrap
covariance, not a bootstrap-t p-value: only its time is compared.
Needs: pip install wildboottest pyfixest; apt-get install r-cran-sandwich.
"""
import argparse, json, os, subprocess, sys, time

import numpy as np

PB = None
PY_PEER = r"""
import sys, json, time, numpy as np, pandas as pd
kind, path, formula_pf, formula_sm, param, r0, cl, B = sys.argv[1:9]
B = int(B); r0 = float(r0)
df = pd.read_csv(path)
df["_cl"] = pd.factorize(df[cl])[0]
if r0 != 0:
    df["_y0"] = df[formula_sm.split("~")[0].strip()] - r0 * df[param]
    formula_pf = "_y0 ~" + formula_pf.split("~", 1)[1]
    formula_sm = "_y0 ~" + formula_sm.split("~", 1)[1]
def run():
    if kind == "pyfixest":
        import pyfixest as pf
        fit = pf.feols(formula_pf, data=df, vcov={"CRV1": "_cl"})
        r = fit.wildboottest(param=param, reps=B, seed=7)
        return float(np.asarray(r["t value"])), float(np.asarray(r["Pr(>|t|)"]))
    from wildboottest.wildboottest import wildboottest
    import statsmodels.formula.api as smf
    m = smf.ols(formula_sm, data=df)
    r = wildboottest(m, param=param, cluster=df["_cl"].to_numpy(), B=B, seed=7, show=False)
    return float(r["statistic"].iloc[0]), float(r["p-value"].iloc[0])
run()  # warm-up (numba compilation)
t0 = time.perf_counter(); t, p = run(); el = time.perf_counter() - t0
print(json.dumps({"t": t, "p": p, "seconds": el}))
"""

R_PEER = r"""
args <- commandArgs(TRUE); d <- read.csv(args[1]); B <- as.integer(args[4])
suppressMessages(library(sandwich))
f <- as.formula(args[2]); d$cl <- d[[args[3]]]
m <- lm(f, data = d)
t0 <- Sys.time(); v <- vcovBS(m, cluster = ~cl, R = B, type = "wild-rademacher"); el <- as.numeric(Sys.time() - t0, units = "secs")
cat(sprintf('{"seconds": %.6f}\n', el))
"""


def run_json(cmd, timeout):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip().splitlines()[-1][:200]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def panelboot(path, formula, cluster, test, B, extra=()):
    # the peers compute no confidence interval: time the same work (--no-ci), and the default
    # run with the test-inversion CI beside it
    with_ci = _panelboot(path, formula, cluster, test, B, extra)
    r = _panelboot(path, formula, cluster, test, B, list(extra) + ["--no-ci"])
    r["with_ci_s"] = with_ci["seconds"]
    return r


def _panelboot(path, formula, cluster, test, B, extra=()):
    cmd = [PB, "wild", "--data", path, "--formula", formula, "--cluster", cluster, "--test", test,
           "--B", str(B), "--format", "json"] + list(extra)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    el = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(p.stderr)
    full = json.loads(p.stdout)
    j = full["tests"][0]
    # in-process: fit + bootstrap, as the peers are timed (data already in memory)
    inproc = full["timing"]["fit_and_bootstrap_s"] + full["timing"]["design_s"]
    return {"t": j["t_stat"], "p": j["p_value"], "seconds": inproc, "process_s": el, "n_boot": j["n_boot"]}


def make_data(path, n, k, G, seed):
    rng = np.random.default_rng(seed)
    cl = rng.integers(0, G, n)
    X = rng.standard_normal((n, k)) + 0.3 * rng.standard_normal(G)[cl][:, None]
    u = rng.standard_normal(n) + rng.standard_normal(G)[cl]
    y = X @ np.full(k, 0.05) + u
    cols = {"cl": cl, "y": y}
    for j in range(k):
        cols[f"x{j+1}"] = X[:, j]
    import pandas as pd
    pd.DataFrame(cols).to_csv(path, index=False, float_format="%.10g")


def agree(a, b, B):
    # p-values from independent draws: within 4 binomial standard errors (plus 1/B)
    p = max(min((a + b) / 2, 1 - 1e-9), 1e-9)
    return abs(a - b) <= 4 * np.sqrt(p * (1 - p) / B) + 1.0 / B


def main():
    global PB
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", action="store_true", help="smaller B for a smoke run")
    ap.add_argument("--timeout", type=int, default=600)
    a = ap.parse_args()
    PB = os.path.join(a.build, "panelboot")
    os.makedirs(a.out, exist_ok=True)
    rows = []

    def peers(path, f_pf, f_sm, param, r0, cl, B, f_r, pb):
        row = {"pb": pb}
        for kind in ("wildboottest", "pyfixest"):
            row[kind] = run_json([sys.executable, "-c", PY_PEER, kind, path, f_pf, f_sm, param, str(r0), cl,
                                  str(B)], a.timeout)
        if f_r:
            row["sandwich"] = run_json(["Rscript", "-e", R_PEER, path, f_r, cl, str(B)], a.timeout)
        for kind in ("wildboottest", "pyfixest"):
            r = row[kind]
            if "error" not in r:
                r["t_agrees"] = abs(r["t"] - pb["t"]) < 1e-4 * max(1, abs(pb["t"]))
                r["p_agrees"] = bool(agree(r["p"], pb["p"], B))
        return row

    # (a) the study's shape; sandwich (a refit per replication) only at the smaller B
    study = "data/nqpf_synthetic.csv"
    f_pb = "newqua ~ rgzn + urban + ind + fdi + open + fin | province + year"
    for B_a in ((9999,) if a.quick else (9999, 999999)):
        pb = panelboot(study, f_pb, "province", "rgzn = 0.0017", B_a, ["--dof-fe", "all"])
        row = peers(study, "newqua ~ rgzn + urban + ind + fdi + open + fin | province + year",
                    "newqua ~ rgzn + urban + ind + fdi + open + fin + C(province) + C(year)", "rgzn", 0.0017,
                    "province", B_a, "newqua ~ rgzn + urban + ind + fdi + open + fin + factor(province) + factor(year)"
                    if B_a < 100000 else None, pb)
        row["case"] = f"(a) N=360 G=30 two-way FE, B={B_a}"
        rows.append(row)
    pb_enum = panelboot(study, f_pb, "province", "rgzn = 0.0017", 1, ["--enumerate", "always"])
    rows.append({"case": "(a) N=360 G=30 two-way FE, enumeration of 2^30", "pb": pb_enum})

    # (b) fwildclusterboot's grid
    for G in (20, 100, 1000):
        path = os.path.join(a.out, f"wild_n10000_k20_G{G}.csv")
        if not os.path.exists(path):
            make_data(path, 10000, 20, G, G)
        xs = " + ".join(f"x{j+1}" for j in range(20))
        for B in ((9999,) if a.quick else (10000, 100000)):
            pb = panelboot(path, "y ~ " + xs, "cl", "x1 = 0", B, ["--enumerate", "never"])
            row = peers(path, "y ~ " + xs, "y ~ " + xs, "x1", 0.0, "cl", B,
                        ("y ~ " + xs) if (B == 10000 and G == 20) else None, pb)
            row["case"] = f"(b) N=10^4 k=20 G={G}, B={B}"
            rows.append(row)

    # (c) large N
    if not a.quick:
        path = os.path.join(a.out, "wild_n1000000_k10_G1000.csv")
        if not os.path.exists(path):
            make_data(path, 1000000, 10, 1000, 3)
        xs = " + ".join(f"x{j+1}" for j in range(10))
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-v", PB, "wild", "--data", path, "--formula", "y ~ " + xs, "--cluster",
                            "cl", "--test", "x1 = 0", "--B", "99999", "--format", "json"], capture_output=True, text=True)
        el = time.perf_counter() - t0
        rss = next(int(l.split()[-1]) for l in p.stderr.splitlines() if "Maximum resident" in l) / 1024
        full = json.loads(p.stdout)
        j = full["tests"][0]
        pb = {"t": j["t_stat"], "p": j["p_value"], "seconds": full["timing"]["fit_and_bootstrap_s"] +
              full["timing"]["design_s"], "process_s": el, "peak_mb": rss}
        row = peers(path, "y ~ " + xs, "y ~ " + xs, "x1", 0.0, "cl", 99999, None, pb)
        row["case"] = "(c) N=10^6 k=10 G=1000, B=99999"
        rows.append(row)

    json.dump(rows, open(os.path.join(a.out, "wild_peer.json"), "w"), indent=2)
    print("| case | panelboot p-value only (in-process; whole process) | panelboot with CI | wildboottest | pyfixest | sandwich::vcovBS | fastest peer / panelboot | t, p agree |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        def cell(k):
            x = r.get(k)
            if x is None:
                return "-"
            if "error" in x:
                return "failed: " + x["error"][:40]
            return f"{x['seconds']:.3f} s"
        peer_times = [r[k]["seconds"] for k in ("wildboottest", "pyfixest", "sandwich") if k in r and "seconds" in r[k]]
        ratio = f"{min(peer_times) / r['pb']['seconds']:.1f}x" if peer_times else "-"
        ag = []
        for k in ("wildboottest", "pyfixest"):
            if k in r and "t_agrees" in r[k]:
                ag.append(f"{k}: t {'yes' if r[k]['t_agrees'] else 'NO'}, p {r[k]['p']:.4f} vs {r['pb']['p']:.4f} "
                          f"{'ok' if r[k]['p_agrees'] else 'DIFFER'}")
        extra = f" ({r['pb']['peak_mb']:.0f} MB peak)" if "peak_mb" in r["pb"] else ""
        ci = f"{r['pb']['with_ci_s']:.3f} s" if "with_ci_s" in r["pb"] else "-"
        print(f"| {r['case']} | {r['pb']['seconds']:.3f} s; {r['pb']['process_s']:.3f} s{extra} | {ci} | {cell('wildboottest')} | {cell('pyfixest')} | "
              f"{cell('sandwich')} | {ratio} | {'; '.join(ag)} |")


if __name__ == "__main__":
    main()
