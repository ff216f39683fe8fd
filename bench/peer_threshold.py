#!/usr/bin/env python3
"""Panel threshold regression: panelboot against pyxthreg (PyPI) in the same run.

    python3 bench/peer_threshold.py [--build build]

(1) Hansen's application (tests/data/hansen1999_invest.csv), all three tests, B = 1000 each,
    393-point grid: panelboot --mode hansen, whole process.
(2) Stata xthreg's example data, one threshold, grid 400, B = 300: panelboot --mode xthreg and
    pyxthreg (ThresholdPanel.fit; one warm-up call, then the median of three timed calls);
    panelboot seven runs on the default threads and seven on one (OMP_NUM_THREADS=1), medians
    (this VM's second vCPU sometimes stalls a process's first parallel region by milliseconds,
    so both are shown). pyxthreg's
    bootstrap is a Gaussian wild bootstrap with the thresholds held fixed, not Hansen's residual
    block bootstrap with re-estimated thresholds: the ratio compares different amounts of work.
Needs: pip install pyxthreg.
"""
import argparse, json, os, subprocess, sys, time

SNIP = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from pyxthreg import ThresholdPanel
df = pd.read_csv(sys.argv[1])
def run():
    m = ThresholdPanel(df, dep="i", rx=["c1"], qx="d1", indep=["q1", "q2", "q3", "d1", "qd1"], entity_col="id", time_col="year")
    return m.fit(thnum=1, trim=0.01, grid=400, bs=300)
run()
times = []
for _ in range(3):
    t0 = time.perf_counter(); r = run(); times.append(time.perf_counter() - t0)
out = {"seconds": sorted(times)[1], "all_seconds": times}
for k in ("thresholds", "gamma", "threshold", "rss", "F", "f_stat"):
    try:
        v = getattr(r, k) if hasattr(r, k) else (r[k] if isinstance(r, dict) and k in r else None)
        if v is not None: out[k] = str(v)[:200]
    except Exception:
        pass
out["repr"] = str(r)[:600]
print(json.dumps(out))
"""


def timed(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(p.stderr)
    return time.perf_counter() - t0, p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    pb = os.path.join(a.build, "panelboot")
    hansen = ["--data", "tests/data/hansen1999_invest.csv", "--panel", "id,year", "--formula",
              "inva ~ l(vala,1) + I(l(vala,1)^2) + I(l(vala,1)^3) + l(debta,1) + I(l(vala,1)*l(debta,1)) | id",
              "--regime", "l(cfa,1)", "--threshold-var", "l(debta,1)", "--format", "json"]
    t_h, out = timed([pb, "threshold", *hansen, "--thresholds", "3", "--B", "1000"])
    h = json.loads(out)
    print(f"(1) Hansen, 3 tests x B=1000, 393 points: {t_h:.3f} s; p = "
          + ", ".join(f"{t['p_value']:.4f}" for t in h["tests"]))
    xt = ["--data", "tests/data/hansen1999_xthreg.csv", "--panel", "id,year", "--formula", "i ~ q1 + q2 + q3 + d1 + qd1 | id",
          "--regime", "c1", "--threshold-var", "d1", "--mode", "xthreg", "--trim", "0.01", "--grid", "400", "--format", "json"]
    runs = {}
    for label, env in (("default threads", None), ("1 thread", "1")):
        rs = []
        for _ in range(7):
            e = dict(os.environ)
            if env:
                e["OMP_NUM_THREADS"] = env
            t0 = time.perf_counter()
            pr = subprocess.run([pb, "threshold", *xt, "--B", "300"], capture_output=True, text=True, env=e)
            whole = time.perf_counter() - t0
            if pr.returncode != 0:
                sys.exit(pr.stderr)
            x = json.loads(pr.stdout)
            tm = x.get("timing", {})
            rs.append((whole, sum(v for k, v in tm.items() if k != "read_s"), tm))
        runs[label] = rs
    p = subprocess.run([sys.executable, "-c", SNIP, "tests/data/hansen1999_xthreg.csv"], capture_output=True, text=True)
    peer = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {"error": p.stderr[-300:]}
    print(f"(2) xthreg example, 1 threshold, 400 points, B=300: gamma {x['models'][0]['gammas'][0]}, "
          f"SSR {x['models'][0]['ssr']:.4f}, F {x['tests'][0]['F']:.2f}, p {x['tests'][0]['p_value']:.4f}")
    med = lambda v: sorted(v)[len(v) // 2]
    for label, rs in runs.items():
        w, i = [r[0] for r in rs], [r[1] for r in rs]
        split = {k: round(med([r[2][k] for r in rs]) * 1000, 2) for k in rs[0][2]}
        line = (f"    panelboot, {label}: whole process median {med(w) * 1000:.1f} ms ({min(w) * 1000:.1f}-{max(w) * 1000:.1f}), "
                f"in-process (setup + search + bootstrap) median {med(i) * 1000:.1f} ms ({min(i) * 1000:.1f}-{max(i) * 1000:.1f}); "
                f"medians ms {split}")
        if "seconds" in peer:
            line += f"; ratio {peer['seconds'] / med(w):.1f}x whole process, {peer['seconds'] / med(i):.1f}x in-process"
        print(line)
    if "seconds" in peer:
        print(f"    pyxthreg (warm, median of 3) {peer['seconds']:.3f} s {[round(t, 3) for t in peer['all_seconds']]}")
    print(json.dumps(peer)[:1200])


if __name__ == "__main__":
    main()
