#!/usr/bin/env python3
"""Monte Carlo size and power of cluster-robust tests in split samples: `panelboot power` against
the Python loop users write today (numpy + pyfixest.feols + pyfixest's wildboottest), same run.

How to run (the peers live in a venv; this script itself needs only the standard library):

    python3 -m venv .deps/bench-venv && .deps/bench-venv/bin/pip install pyfixest wildboottest
    python3 bench/peer_power.py [--quick] [--out bench/out] [--exe build/panelboot] [--python PY]

--python is the interpreter that runs the peer (default: <repo>/.deps/bench-venv/bin/python when
it exists, else this interpreter). --quick: panelboot timed once instead of best of 3, and fewer
peer replications. Writes power_peer.json and power_peer.md into --out and prints the tables.
If `<exe> power --help` does not describe the power command (no binary yet, or one built before
the command: that binary answers `power --help` with its top-level help and exit status 0, so the
check looks for the --effects option), the panelboot part is skipped with a message and the peer
is measured alone.

The study (the embedded data, 30 provinces x 12 years): `newqua ~ rgzn + urban + ind + fdi + open
+ fin | province + year`, clustered by province, target rgzn, 21 effects 0..0.004, five split
samples (region East 11 clusters / Central 8 / West 11; devlevel high / average).
(a) CRVE only, R = 10,000 per cell: 105 cells x 10^4 = 1.05 million regressions (goal: under 5 s
    on the 2-core VM);
(b) CRVE + WCR (wild cluster bootstrap, null imposed, Rademacher, B = 399), R = 2,000 per cell
    (goal: under 20 s).
panelboot is timed as a whole process, wall clock, best of 3 (`--threads 2`); its own `timing`
field (seconds per stage) is recorded beside it.

The peer, per group, does what panelboot's DGP does: fit the group's two-way FE model (singleton
FE groups dropped, as both tools do by default), keep the residuals u and the fitted values; per
replication y_sim = fitted - b_rgzn * rgzn + effect * rgzn + sqrt(N / (N - K)) * u_g * v_g, with
one standard normal v_g per cluster g and K = regressors + FE levels (provinces + years - 1, as
panelboot's power.cpp counts them: one level per extra FE dimension is redundant); then
`pyfixest.feols(..., vcov={"CRV1": "province"})` (reject when its p-value, t(G-1), is <= alpha,
panelboot's rule) and, for (b), `.wildboottest(param="rgzn", reps=399, seed=...)` (pyfixest's
wrapper of the wildboottest package; with 2^G < 399, as for Central's 8 clusters, it enumerates
all 2^G sign vectors, as panelboot does). The peer runs in its own process; per group and
configuration one untimed warm-up replication first (numba's compilation excluded), then a subset
of replications (20 per group for (a), 10 for (b); 4 and 2 with --quick) spread evenly over the 21
effects, each timed from drawing y_sim to the last p-value. wildboottest 0.3.x defines its
denominator kernel with @njit inside WildboottestCL.get_denom, so numba compiles it again on every
call (0.3-0.5 s on the 2-core VM, about 90% of a replication's time), which no warm-up removes.
(b) is therefore timed twice: with that kernel compiled once and reused (njit memoized by the
kernel's code object; the same p-values as shipped), the headline figure, and as shipped, what a
user's loop pays today. The full study's peer time is extrapolated: for each group, its mean
seconds per replication x 21 effects x R, summed over the five groups; the ratio is that over
panelboot's best wall time. The peer's rejections on the subset are checked against panelboot's
rejection rates in the same cells (a z score of the count of rejections under independent
Bernoulli draws with panelboot's rates; the draws differ, so only plausibility is checked:
|z| < 3), and the number of clusters per group against panelboot's n_clusters.
"""
import argparse, json, os, platform, subprocess, sys, time

FORMULA = "newqua ~ rgzn + urban + ind + fdi + open + fin | province + year"
CLUSTER, TARGET = "province", "rgzn"
SPLITS = ("region", "devlevel")
EFFECTS = (0.0, 0.004, 21)  # --effects a:b:n
ALPHA, WILD_B, SEED = 0.05, 399, 1
CONFIGS = {  # name: (panelboot --tests, R per cell, peer tests)
    "a": ("crve", 10000, ("crve",)),
    "b": ("crve,wild", 2000, ("crve", "wild")),
}
GOALS_S = {"a": 5.0, "b": 20.0}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
DATA = os.path.join(ROOT, "data", "nqpf_synthetic.csv")  # the embedded data, for the peer

PEER = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")  # pyfixest's full-enumeration notice for 2^G < B, etc.
from importlib.metadata import version
import numpy as np, pandas as pd
import pyfixest as pf
import wildboottest.wildboottest as wbt

# wildboottest defines its denominator kernel with @njit inside WildboottestCL.get_denom, so every
# call makes a new function and numba compiles it again (about 0.3-0.5 s here). For the configuration
# marked "cached", njit is memoized by the kernel's code object (the kernel captures nothing from
# its enclosing scope, so the first compiled dispatcher serves every later call unchanged).
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
target, cl, alpha, B = cfg["target"], cfg["cluster"], cfg["alpha"], cfg["wild_B"]
a, b, n = cfg["effects"]
effects = np.linspace(a, b, int(n))
sim_formula = "y_sim ~ " + " + ".join(xs) + " | " + " + ".join(fes)
data = pd.read_csv(cfg["data"])


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


out = {"versions": {p: version(p) for p in ("pyfixest", "wildboottest", "numpy", "pandas", "numba")},
       "python": sys.version.split()[0], "groups": []}
for gi, (split, group) in enumerate((s, g) for s in cfg["splits"] for g in pd.unique(data[s])):
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

    def rep(effect, tests):
        t0 = time.perf_counter()
        d["y_sim"] = base + effect * x + scale * u * rng.standard_normal(G)[codes]
        fit = pf.feols(sim_formula, data=d, vcov={"CRV1": "_cl"})
        rej = {"crve": bool(float(fit.pvalue()[target]) <= alpha)}
        if "wild" in tests:
            r = fit.wildboottest(param=target, reps=B, seed=int(rng.integers(2**31)))
            rej["wild"] = bool(float(np.asarray(r["Pr(>|t|)"])) <= alpha)
        return rej, time.perf_counter() - t0

    g = {"split": split, "group": str(group), "rows": N, "n_clusters": G, "K": K, "scale": float(scale),
         "b_target": float(fit0.coef()[target]), "se_target": float(fit0.se()[target]), "configs": {}}
    for name, (tests, n_rep, cached) in cfg["peer"].items():
        wbt.njit = njit_cached if cached else _njit
        rep(effects[-1], tests)  # warm-up, untimed (numba compiles on the first call)
        reps = []
        for k in spread(n_rep):
            rej, s = rep(effects[k], tests)
            reps.append({"effect": float(effects[k]), "reject": rej, "seconds": s})
        sec = [r["seconds"] for r in reps]
        g["configs"][name] = {"tests": list(tests), "wild_kernel_cached": cached, "reps": reps,
                              "mean_s": sum(sec) / len(sec), "median_s": sorted(sec)[len(sec) // 2]}
    wbt.njit = _njit
    out["groups"].append(g)
print(json.dumps(out))
"""


def machine():
    cpu = "?"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "?"
    try:
        kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "memory": mem,
            "os": platform.platform(), "python": platform.python_version()}


def panelboot_ready(exe):
    """None when `exe power --help` describes the power command, else the reason it does not."""
    try:
        p = subprocess.run([exe, "power", "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run {exe}: {e}"
    if p.returncode != 0 or "--effects" not in p.stdout:
        return f"`{exe} power --help` does not describe the power command (exit {p.returncode}): not built yet?"
    return None


def run_panelboot(exe, name, n_runs, threads, out_dir):
    tests, R, _ = CONFIGS[name]
    path = os.path.join(out_dir, f"power_pb_{name}.json")
    cmd = [exe, "power", "-f", FORMULA, "--cluster", CLUSTER, "--target", TARGET,
           "--effects", "%g:%g:%d" % EFFECTS]
    for s in SPLITS:
        cmd += ["--split", s]
    cmd += ["--tests", tests, "--R", str(R), "--alpha", str(ALPHA), "--seed", str(SEED),
            "--threads", str(threads), "--format", "json", "--output", path]
    if "wild" in tests:
        cmd[cmd.index("--alpha"):cmd.index("--alpha")] = ["--wild-B", str(WILD_B)]
    walls, best = [], None
    for _ in range(n_runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            return {"command": cmd, "error": (p.stderr or p.stdout).strip()[-400:]}
        walls.append(wall)
        if best is None or wall < best[0]:
            best = (wall, json.load(open(path)))
    j = best[1]
    return {"command": cmd, "wall_s": best[0], "all_wall_s": walls, "timing": j.get("timing"),
            "backend": j.get("backend"), "results": j.get("results", []), "mde": j.get("mde"),
            "calibration": j.get("calibration"), "cells": len(j.get("results", []))}


def timing_total(timing):
    if not isinstance(timing, dict):
        return None
    for k, v in timing.items():
        if "total" in k and isinstance(v, (int, float)):
            return float(v)
    return None


def pb_rate(results, split, group, effect, test):
    aliases = {"wild": ("wild", "wcr", "wild-wcr"), "crve": ("crve", "crv", "crv1")}[test]
    for r in results:
        if (r.get("split") == split and str(r.get("group")) == group and str(r.get("test")).lower() in aliases
                and abs(float(r.get("effect")) - effect) <= 1e-9 * max(1.0, abs(effect))):
            return float(r["rejection_rate"]), r.get("n_clusters")
    return None, None


def plausibility(peer, pb, names, test):
    """Peer's rejections on its subsets (configs `names`) against panelboot's rates in the same cells."""
    obs = n = missing = 0
    exp = var = 0.0
    have = pb is not None and "results" in pb
    for g in peer["groups"]:
        for name in names:
            for r in g["configs"][name]["reps"]:
                n += 1
                obs += r["reject"][test]
                if not have:
                    continue
                p, _ = pb_rate(pb["results"], g["split"], g["group"], r["effect"], test)
                if p is None:
                    missing += 1
                    continue
                exp += p
                var += p * (1 - p)
    row = {"test": test, "peer_configs": list(names), "reps": n, "rejections": obs}
    if not have:
        row["check"] = "no panelboot results to compare against"
    elif missing:
        row["check"] = f"panelboot has no result for {missing} of the {n} cells (test/group names?)"
    else:
        z = (obs - exp) / max(var, 0.25) ** 0.5
        row.update(expected=exp, z=z, plausible=abs(z) < 3)
        row["check"] = f"expected {exp:.1f} from panelboot's rates, z = {z:+.2f}: {'ok' if abs(z) < 3 else 'IMPLAUSIBLE'}"
    return row


# peer runs: name -> (configuration, tests, wildboottest's kernel cached); "b" (compilation
# excluded) is the headline for (b), "b_shipped" is wildboottest as installed (compiles per call)
PEER_RUNS = {"a": ("a", ("crve",), False), "b": ("b", ("crve", "wild"), True),
             "b_shipped": ("b", ("crve", "wild"), False)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--exe", default="build/panelboot")
    default_py = os.path.join(ROOT, ".deps", "bench-venv", "bin", "python")
    ap.add_argument("--python", default=default_py if os.path.exists(default_py) else sys.executable,
                    help="interpreter with pyfixest and wildboottest installed")
    ap.add_argument("--quick", action="store_true", help="panelboot once, 4 and 2 peer replications per group")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer-reps-crve", type=int, help="peer replications per group for (a) (default 20; 4 with --quick)")
    ap.add_argument("--peer-reps-wild", type=int,
                    help="peer replications per group for (b), each way (default 10; 2 with --quick)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds for the peer process")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    n_rep = {"a": a.peer_reps_crve or (4 if a.quick else 20), "b": a.peer_reps_wild or (2 if a.quick else 10)}
    n_cells = 5 * EFFECTS[2]
    res = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "formula": FORMULA,
           "effects": "%g:%g:%d" % EFFECTS, "splits": list(SPLITS), "alpha": ALPHA, "wild_B": WILD_B,
           "configs": {k: {"tests": v[0], "R": v[1], "regressions": n_cells * v[1], "goal_s": GOALS_S[k]}
                       for k, v in CONFIGS.items()}}

    # panelboot
    why = panelboot_ready(a.exe)
    pb = {}
    if why:
        print(f"panelboot skipped: {why}", file=sys.stderr)
        res["panelboot_skipped"] = why
    else:
        for name in CONFIGS:
            pb[name] = run_panelboot(a.exe, name, 1 if a.quick else 3, a.threads, a.out)
            if "error" in pb[name]:
                print(f"panelboot ({name}) failed: {pb[name]['error']}", file=sys.stderr)
    res["panelboot"] = {k: {kk: vv for kk, vv in v.items() if kk != "results"} for k, v in pb.items()}

    # the peer, in its own process
    cfg = {"data": DATA, "formula": FORMULA, "target": TARGET, "cluster": CLUSTER,
           "splits": list(SPLITS), "effects": list(EFFECTS), "alpha": ALPHA, "wild_B": WILD_B, "seed": SEED,
           "peer": {k: [tests, n_rep[c], cached] for k, (c, tests, cached) in PEER_RUNS.items()}}
    t0 = time.perf_counter()
    try:
        p = subprocess.run([a.python, "-c", PEER, json.dumps(cfg)], capture_output=True, text=True, timeout=a.timeout)
        peer = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {"error": p.stderr.strip()[-800:]}
    except subprocess.TimeoutExpired:
        peer = {"error": f"timeout after {a.timeout} s"}
    res["peer_process_s"] = time.perf_counter() - t0
    res["peer"] = peer
    if "error" in peer:
        print(f"peer failed: {peer['error']}", file=sys.stderr)

    # extrapolation, ratios, checks
    summary = {}
    for name, (_, R, tests) in CONFIGS.items():
        s = {"R": R, "regressions": n_cells * R, "goal_s": GOALS_S[name]}
        runs = [k for k, v in PEER_RUNS.items() if v[0] == name]
        q = pb.get(name)
        if "error" not in peer:
            for k in runs:
                per_group = {f"{g['split']}={g['group']}": g["configs"][k]["mean_s"] for g in peer["groups"]}
                s[k] = {"wild_kernel_cached": PEER_RUNS[k][2], "peer_s_per_rep": per_group,
                        "peer_extrapolated_s": sum(v * EFFECTS[2] * R for v in per_group.values())}
                if q and "wall_s" in q:
                    s[k]["ratio_peer_over_panelboot"] = s[k]["peer_extrapolated_s"] / q["wall_s"]
            s["checks"] = [plausibility(peer, q, runs, t) for t in tests]
        if q and "wall_s" in q:
            s["panelboot_wall_s"] = q["wall_s"]
            s["panelboot_total_s"] = timing_total(q["timing"])
            s["goal_met"] = q["wall_s"] < GOALS_S[name]
            if "error" not in peer:
                s["cluster_counts_peer_panelboot"] = {f"{g['split']}={g['group']}": [g["n_clusters"], next(
                    (r.get("n_clusters") for r in q["results"] if r.get("split") == g["split"]
                     and str(r.get("group")) == g["group"]), None)] for g in peer["groups"]}
        summary[name] = s
    res["summary"] = summary

    md = report(res, pb, peer, a)
    json.dump(res, open(os.path.join(a.out, "power_peer.json"), "w"), indent=2)
    open(os.path.join(a.out, "power_peer.md"), "w").write(md)
    print(md)


def fmt_s(x):
    return "-" if x is None else (f"{x:.3f} s" if x < 100 else f"{x:,.0f} s ({x / 3600:.1f} h)")


def report(res, pb, peer, a):
    m = res["machine"]
    L = [f"# panelboot power vs a pyfixest loop ({res['date']})", "",
         f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, {m['os']}.",
         ("Peer: " + ", ".join(f"{k} {v}" for k, v in peer["versions"].items()) + f", Python {peer['python']}."
          if "versions" in peer else f"Peer failed: {peer.get('error', '?')[-300:]}"),
         f"Study: `{FORMULA}`, cluster {CLUSTER}, target {TARGET}, effects {res['effects']}, splits "
         f"{', '.join(SPLITS)} (5 groups, {5 * EFFECTS[2]} cells), alpha {ALPHA}; panelboot --threads {a.threads}, "
         f"wall clock, best of {1 if a.quick else 3}. Peer time extrapolated from its subset (mean per "
         f"replication per group x {EFFECTS[2]} effects x R).", ""]
    if "panelboot_skipped" in res:
        L += [f"**panelboot skipped**: {res['panelboot_skipped']}", ""]
    L += ["| configuration | regressions | panelboot wall (its timing total) | goal | peer extrapolated | peer / panelboot |",
          "|---|---:|---:|---:|---:|---:|"]
    labels = {"a": "(a) CRVE, R = 10,000", "b": f"(b) CRVE + WCR (B = {WILD_B}), R = 2,000",
              "b_shipped": "(b) the same, wildboottest as shipped (recompiles its kernel every call)"}
    for name, s in res["summary"].items():
        q = pb.get(name, {})
        if "panelboot_wall_s" in s:
            pbc = f"{s['panelboot_wall_s']:.2f} s ({fmt_s(s['panelboot_total_s'])})"
            goal = f"< {s['goal_s']:.0f} s: {'met' if s['goal_met'] else '**not met**'}"
        else:
            pbc = "failed: " + q["error"][:60] if "error" in q else "-"
            goal = f"< {s['goal_s']:.0f} s"
        for k in [k for k, v in PEER_RUNS.items() if v[0] == name] or [name]:
            e = s.get(k, {})
            ratio = f"{e['ratio_peer_over_panelboot']:,.0f}x" if "ratio_peer_over_panelboot" in e else "-"
            first = k == name
            L.append(f"| {labels[k]} | {s['regressions']:,} | {pbc if first else '〃'} | {goal if first else ''} | "
                     f"{fmt_s(e.get('peer_extrapolated_s'))} | {ratio} |")
    if "groups" in peer:
        L += ["", "Peer seconds per replication (mean; median; replications), per group:", "",
              "| group | rows | clusters | K | CRVE | CRVE + WCR | CRVE + WCR, as shipped |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        for g in peer["groups"]:
            cell = lambda c: f"{c['mean_s'] * 1e3:.1f} ms; {c['median_s'] * 1e3:.1f} ms; {len(c['reps'])}"
            c = g["configs"]
            L.append(f"| {g['split']} = {g['group']} | {g['rows']} | {g['n_clusters']} | {g['K']} | "
                     f"{cell(c['a'])} | {cell(c['b'])} | {cell(c['b_shipped'])} |")
        L += ["", "Peer rejections on its subsets (effects spread over the grid) against panelboot's rates:", ""]
        for name, s in res["summary"].items():
            for c in s.get("checks", []):
                L.append(f"- ({name}) {c['test']}: {c['rejections']}/{c['reps']} rejected; {c['check']}")
            mism = {k: v for k, v in s.get("cluster_counts_peer_panelboot", {}).items() if v[0] != v[1]}
            if mism:
                L.append(f"- ({name}) clusters per group differ (peer, panelboot): {mism}")
    for name, q in pb.items():
        if "timing" in q:
            L.append(f"- panelboot ({name}) timing: {json.dumps(q['timing'])}; backend {json.dumps(q.get('backend'))}; "
                     f"all walls {[round(w, 3) for w in q['all_wall_s']]}")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
