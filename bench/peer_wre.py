#!/usr/bin/env python3
"""WRE / WUE wild bootstrap for IV with two-way FE: panelboot against a brute-force numpy reference.

    .deps/bench-venv/bin/python bench/peer_wre.py [--reference-only] [--ref-B 9999] [--repeat 3]
                          [--threads 0] [--out bench/out] [--exe build/panelboot] [--dof-fe all]

Data (written as CSV province,year,y,d,x,z; seed 2024): G provinces x T = 12 years, unit/year
effects a_i ~ N(0,1), b_t ~ N(0,0.5^2); x = N(0,1) + 0.3 a_i; z = N(0,1) + 0.3 a_i; e ~ N(0,1);
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
Checks (exit status 1 on a FAIL): observed t and AR F within 1e-8 relative; G = 8 with
--enumerate always: p and n_exceed equal to the enumeration for b0 in {0.5, 0, 1}, WRE, WUE, AR;
G = 30 with random draws (panelboot B = 99,999, reference --ref-B own numpy draws): p within 4
Monte Carlo standard errors. The CI ends of the G = 8 WRE run are only reported (reference p on
either side of each end), not checked.
Timing: panelboot whole process, B = 99,999, --no-ci and with the CI, best of --repeat; the numpy
loop is timed on --ref-B replications and EXTRAPOLATED per replication to B = 99,999.
"""
import argparse, itertools, json, os, subprocess, sys, time

import numpy as np

FORMULA = "y ~ x | province + year | d ~ z"
B_PB, TIE, TOL_T = 99999, 1e-10, 1e-8
B0S = (0.5, 0.0, 1.0)


def write_csv(path, G, T=12, seed=2024):
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
    np.savetxt(path, np.column_stack([prov + 1, year + 2011, y, d, x, z]), fmt=["%d", "%d"] + ["%.17g"] * 4,
               delimiter=",", header="province,year,y,d,x,z", comments="")


def load(path):
    """The CSV as panelboot reads it; W = [x, province dummies (all G), year dummies (first dropped)]."""
    M = np.loadtxt(path, delimiter=",", skiprows=1)
    cl = np.unique(M[:, 0], return_inverse=True)[1]
    yr = np.unique(M[:, 1], return_inverse=True)[1]
    G, T = cl.max() + 1, yr.max() + 1
    C = (cl[:, None] == np.arange(G)).astype(float)          # N x G cluster indicator
    W = np.column_stack([M[:, 4], C, (yr[:, None] == np.arange(1, T)).astype(float)])
    return dict(y=M[:, 2], d=M[:, 3], z=M[:, 5], W=W, cl=cl, C=C, G=G, N=len(cl))


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


def wre_boot(dat, b0, impose, V):
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
    ts = ts[np.isfinite(ts)]
    n = int(np.sum(np.abs(ts) - abs(t) > TIE * abs(t)))
    return dict(stat=t, n_exceed=n, n_boot=len(ts), p=n / len(ts))


def ar_boot(dat, b0, V):
    yr = dat["y"] - dat["d"] * b0
    F = ar_f(yr, dat)
    g, u1 = ols(yr, dat["W"])
    Wg = dat["W"] @ g
    Fs = np.array([ar_f(Wg + v[dat["cl"]] * u1, dat) for v in V])
    Fs = Fs[np.isfinite(Fs)]
    n = int(np.sum(Fs - F > TIE * F))
    return dict(stat=F, n_exceed=n, n_boot=len(Fs), p=n / len(Fs))


def self_checks(dat):
    """The reference against itself: FWL (2SLS on two-way demeaned data gives the same b), and
    v = all +1 reproduces the sample (t* = t under WRE, F* = F under AR)."""
    b, _ = tsls(dat["y"], dat["d"], dat)
    D = dat["W"][:, 1:]
    dm = lambda c: ols(c, D)[1]
    Z1, X1 = dm(dat["z"])[:, None], np.column_stack([dm(dat["d"]), dm(dat["W"][:, 0])])
    Z = np.column_stack([Z1, X1[:, 1]])
    Xh = Z @ np.linalg.lstsq(Z, X1, rcond=None)[0]
    bw = np.linalg.solve(Xh.T @ X1, Xh.T @ dm(dat["y"]))
    out = [("reference: 2SLS with dummies = 2SLS on two-way demeaned data", abs(bw[0] - b[0]) <= 1e-10 * abs(b[0]))]
    beta, g, u1, dfix, U2 = wre_dgp(dat, 0.3, True)
    ds = dfix + U2
    ys = ds * beta + dat["W"] @ g + u1
    one = np.ones((1, dat["G"]))
    ok = max(np.abs(ds - dat["d"]).max(), np.abs(ys - dat["y"]).max()) <= 1e-10 * np.abs(dat["y"]).max()
    out.append(("reference: WRE and AR with v = +1 reproduce the sample (a tie, not counted)",
                ok and wre_boot(dat, 0.3, True, one)["n_exceed"] == 0 and ar_boot(dat, 0.3, one)["n_exceed"] == 0))
    return out


def run_pb(exe, csv, b0, extra, threads):
    cmd = [exe, "wild", "--data", csv, "--formula", FORMULA, "--cluster", "province", "--test", f"d = {b0:g}",
           "--B", str(B_PB), "--seed", "1", "--format", "json", "--threads", str(threads)] + extra
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    el = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    j = json.loads(p.stdout)
    return {r["test"]: r for r in j["tests"]}, el, j


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--build", default="build")
    ap.add_argument("--exe", default=None, help="panelboot binary (default: <build>/panelboot)")
    ap.add_argument("--reference-only", action="store_true", help="run the numpy reference alone")
    ap.add_argument("--ref-B", type=int, default=9999, help="reference replications on the G = 30 data")
    ap.add_argument("--ref-seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="panelboot timing runs (best quoted)")
    ap.add_argument("--threads", type=int, default=0, help="panelboot --threads (0: all cores)")
    ap.add_argument("--dof-fe", default="all", help="passed to panelboot ('' for its default)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    exe = a.exe or os.path.join(a.build, "panelboot")
    threads = a.threads or os.cpu_count()
    extra = ["--dof-fe", a.dof_fe] if a.dof_fe else []
    csv30, csv8 = os.path.join(a.out, "wre_G30.csv"), os.path.join(a.out, "wre_G8.csv")
    write_csv(csv30, 30)
    write_csv(csv8, 8)
    d30, d8 = load(csv30), load(csv8)
    checks, res = [], {"ref_B": a.ref_B, "b0": B0S, "exact": {}, "random": {}}

    def check(label, ok, detail=""):
        checks.append({"check": label, "ok": bool(ok), "detail": detail})

    for label, ok in self_checks(d8):
        check(label, ok)
    # ---- reference
    Vx = np.array(list(itertools.product([-1.0, 1.0], repeat=d8["G"])))     # all 256 sign vectors
    Vr = 2.0 * np.random.default_rng(a.ref_seed).integers(0, 2, (a.ref_B, d30["G"])) - 1
    secs = {}
    for key, dat, V, store in (("exact", d8, Vx, res["exact"]), ("random", d30, Vr, res["random"])):
        for b0 in B0S:
            for kind in ("wre", "wue", "ar"):
                t0 = time.perf_counter()
                store[f"{kind} {b0:g}"] = (ar_boot(dat, b0, V) if kind == "ar" else wre_boot(dat, b0, kind == "wre", V))
                if key == "random" and b0 == 0.5:
                    secs[kind] = (time.perf_counter() - t0) / len(V)
    res["ref_s_per_rep"] = secs
    res["ref_extrapolated_s"] = {k: v * B_PB for k, v in secs.items()}
    lines = ["| data | test | b0 | t / F (reference) | p reference | n_exceed/B reference | p panelboot | n_exceed/B panelboot |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    if not a.reference_only:
        for key, csv, ex in (("exact", csv8, ["--enumerate", "always"]), ("random", csv30, [])):
            for b0 in B0S:
                ci = key == "exact" and b0 == 0.5
                rows, _, jw = run_pb(exe, csv, b0, extra + ex + ["--ar"] + ([] if ci else ["--no-ci"]), threads)
                rows_u, _, _ = run_pb(exe, csv, b0, extra + ex + ["--impose-null", "no", "--no-ci"], threads)
                for kind, row in (("wre", rows.get("wre")), ("wue", rows_u.get("wue")), ("ar", rows.get("ar"))):
                    r = res[key][f"{kind} {b0:g}"]
                    tag = f"G={'8 exact' if key == 'exact' else '30 random'} {kind.upper()} b0={b0:g}"
                    if row is None:
                        check(tag + ": row present", False, "no such row in panelboot's JSON")
                        continue
                    r["pb"] = row
                    st = row["f_stat" if kind == "ar" else "t_stat"]
                    check(tag + (": F" if kind == "ar" else ": t"), abs(st - r["stat"]) <= TOL_T * abs(r["stat"]) + 1e-14,
                          f"{float(st)!r} vs {float(r['stat'])!r}")
                    if key == "exact":
                        check(tag + ": p, n_exceed exact", row["enumerated"] and row["n_boot"] == r["n_boot"]
                              and row["n_exceed"] == r["n_exceed"] and row["p_value"] == r["p"],
                              f"{row['n_exceed']}/{row['n_boot']} vs {r['n_exceed']}/{r['n_boot']}")
                    else:
                        pp = min(max((r["p"] + row["p_value"]) / 2, 1 / a.ref_B), 1 - 1 / a.ref_B)
                        se = np.sqrt(pp * (1 - pp) * (1 / r["n_boot"] + 1 / row["n_boot"]))
                        check(tag + ": p within 4 MC s.e.", abs(row["p_value"] - r["p"]) <= 4 * se,
                              f"{row['p_value']:.5f} vs {r['p']:.5f} (4 s.e. = {4 * se:.5f})")
                if ci:   # information only: reference p just inside / outside each finite CI end
                    lvl = 1 - float(jw.get("level", 0.95))
                    ends = [e for pc in rows["wre"].get("ci_pieces") or [] for e in pc if e is not None]
                    res["ci_ends"] = [{"end": e, "p_minus": wre_boot(d8, e - 1e-6 * (1 + abs(e)), True, Vx)["p"],
                                       "p_plus": wre_boot(d8, e + 1e-6 * (1 + abs(e)), True, Vx)["p"], "alpha": lvl}
                                      for e in ends]
        tm = {}
        for lab, ex in (("p_only", ["--no-ci"]), ("with_ci", [])):
            tm[lab] = min(run_pb(exe, csv30, 0.5, extra + ex, threads)[1] for _ in range(a.repeat))
        res["panelboot_s"] = tm
    for key in ("exact", "random"):
        for name, r in res[key].items():
            kind, b0 = name.split()
            pb = r.get("pb", {})
            pbc = f"{pb['p_value']:.5f} | {pb['n_exceed']}/{pb['n_boot']}" if pb else "- | -"
            lines.append(f"| G={'8, all 256 signs' if key == 'exact' else f'30, B_ref={a.ref_B}'} | {kind.upper()} | {b0} | "
                         f"{r['stat']:.10g} | {r['p']:.5f} | {r['n_exceed']}/{r['n_boot']} | {pbc} |")
    lines.append("")
    for k, s in secs.items():
        lines.append(f"- reference {k.upper()} (numpy refit per replication, G = 30, b0 = 0.5): {1e3 * s:.3f} ms per "
                     f"replication on {a.ref_B} replications; EXTRAPOLATED to B = {B_PB:,}: {s * B_PB:.1f} s")
    if "panelboot_s" in res:
        tm = res["panelboot_s"]
        lines.append(f"- panelboot whole process, G = 30, B = {B_PB:,}, --threads {threads} (best of {a.repeat}): "
                     f"p only {tm['p_only']:.3f} s (target < 0.5 s on 2 cores: {'met' if tm['p_only'] < 0.5 else 'NOT met'}), "
                     f"with CI {tm['with_ci']:.3f} s (target < 2 s: {'met' if tm['with_ci'] < 2 else 'NOT met'})")
        lines.append(f"- ratio, reference WRE extrapolated / panelboot p only: {secs['wre'] * B_PB / tm['p_only']:.0f}x; "
                     f"/ panelboot with CI: {secs['wre'] * B_PB / tm['with_ci']:.0f}x")
    for c in res.get("ci_ends", []):
        lines.append(f"- CI end {c['end']:.8g} (G = 8 WRE, info only): reference p just below {c['p_minus']:.4f}, "
                     f"just above {c['p_plus']:.4f} (alpha {c['alpha']:.3f})")
    lines.append("")
    lines += [f"{'PASS' if c['ok'] else 'FAIL'} {c['check']} {c['detail']}" for c in checks]
    res["checks"] = checks
    text = "\n".join(lines)
    json.dump(res, open(os.path.join(a.out, "wre_peer.json"), "w"), indent=2, default=float)
    open(os.path.join(a.out, "wre_peer.md"), "w").write(text + "\n")
    print(text)
    if not all(c["ok"] for c in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
