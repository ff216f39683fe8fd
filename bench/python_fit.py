#!/usr/bin/env python3
"""pb.fit from a pandas frame in memory against the CLI engine and pyfixest (issue 20's benchmark).

Model: y ~ x1 + ... + x5 | unit + period, clustered by unit, on --rows rows (default 10^7) of a
balanced panel (20 periods). Three measurements, each in its own process so that peak memory is
its own:
  * pb.fit on the frame: wall time of the call, and the peak resident memory the call added over
    the frame (VmHWM after /proc/self/clear_refs reset it, minus VmRSS before);
  * the CLI engine on the same data: `panelboot fit` on a CSV of it, its JSON timing (design_s +
    fit_s: the in-memory work after reading);
  * pyfixest.feols on the frame, the same model and vcov: wall time and peak memory.
The budget of the issue: pb.fit's peak extra memory at most (k + 2) columns of doubles plus 4 bytes
per row per FE and cluster dimension; its time within 10% of the engine's.

    .deps/py-venv/bin/python bench/python_fit.py [--rows 10000000] [--threads 0] [--no-pyfixest]
(run after ./scripts/build with .deps/py-venv made by scripts/python-env)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K, PERIODS = 5, 20
FORMULA = "y ~ x1 + x2 + x3 + x4 + x5 | unit + period"

MAKE_FRAME = textwrap.dedent("""
    import numpy as np, pandas as pd
    def make_frame(rows, seed=20):
        rng = np.random.default_rng(seed)
        units = rows // %d
        unit = np.repeat(np.arange(units, dtype=np.int64), %d)
        period = np.tile(np.arange(%d, dtype=np.int64), units)
        n = unit.size
        cols = {"unit": unit, "period": period}
        alpha = rng.normal(size=units)
        y = alpha[unit] + 0.1 * period
        for j in range(1, %d + 1):
            x = rng.normal(size=n) + 0.5 * alpha[unit]
            cols["x%%d" %% j] = x
            y = y + 0.1 * j * x
        cols["y"] = y + rng.normal(size=n)
        return pd.DataFrame(cols, copy=False)
""" % (PERIODS, PERIODS, PERIODS, K))

MEMORY = textwrap.dedent("""
    def rss_kib(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    def reset_peak():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
""")


def child(code, rows, threads):
    """Runs `code` in a fresh interpreter (the frame made first); returns its last line as JSON."""
    script = MAKE_FRAME + MEMORY + textwrap.dedent(f"""
        import json, time, sys
        rows, threads = {rows}, {threads}
        df = make_frame(rows)
        import gc; gc.collect()
    """) + textwrap.dedent(code)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "build", "python"))
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


PANELBOOT = """
import panelboot as pb
pb.fit(df.iloc[:1000], "%s", cluster="unit", threads=threads)  # warm: module loaded, threads started
before = rss_kib("VmRSS"); reset_peak()
t0 = time.perf_counter()
res = pb.fit(df, "%s", cluster="unit", threads=threads)
wall = time.perf_counter() - t0
peak = rss_kib("VmHWM")
print(json.dumps({"wall_s": wall, "extra_peak_mib": (peak - before) / 1024, "timing": res.model["timing"],
                  "coef": res.coef().tolist(), "se": res.se().tolist()}))
""" % (FORMULA, FORMULA)

PYFIXEST = """
import warnings; warnings.simplefilter("ignore")
import pyfixest as pf
pf.feols("%s", data=df.iloc[:1000], vcov={"CRV1": "unit"})
before = rss_kib("VmRSS"); reset_peak()
t0 = time.perf_counter()
m = pf.feols("%s", data=df, vcov={"CRV1": "unit"}, ssc=pf.ssc(k_fixef="nonnested"))
wall = time.perf_counter() - t0
peak = rss_kib("VmHWM")
print(json.dumps({"wall_s": wall, "extra_peak_mib": (peak - before) / 1024, "coef": m.coef().tolist(),
                  "se": m.se().tolist()}))
""" % (FORMULA, FORMULA)

WRITE_CSV = """
import pyarrow as pa, pyarrow.csv as pc
pc.write_csv(pa.Table.from_pandas(df, preserve_index=False), sys.argv[1] if len(sys.argv) > 1 else "%s")
print(json.dumps({}))
"""


def cli_engine(rows, threads, exe):
    with tempfile.TemporaryDirectory(prefix="pb-bench-") as tmp:
        csv = os.path.join(tmp, "panel.csv")
        child(WRITE_CSV % csv, rows, threads)
        t0 = time.perf_counter()
        p = subprocess.run([exe, "fit", "-f", FORMULA, "--cluster", "unit", "--threads", str(threads), "--data", csv,
                            "--format", "json"], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(p.stderr)
        m = json.loads(p.stdout)["models"][0]
        return {"wall_s": wall, "timing": m["timing"], "coef": [c["estimate"] for c in m["coefficients"]],
                "se": [c["std_error"] for c in m["coefficients"]]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each (the median is reported)")
    ap.add_argument("--no-pyfixest", action="store_true")
    ap.add_argument("--exe", default=os.path.join(ROOT, "build", "panelboot"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "python_fit.json"))
    a = ap.parse_args()
    med = lambda xs: sorted(xs)[len(xs) // 2]
    runs = {"panelboot_python": [child(PANELBOOT, a.rows, a.threads) for _ in range(a.repeat)],
            "cli": [cli_engine(a.rows, a.threads, a.exe) for _ in range(a.repeat)]}
    if not a.no_pyfixest:
        runs["pyfixest"] = [child(PYFIXEST, a.rows, a.threads) for _ in range(max(1, a.repeat - 2))]
    py = med([r["wall_s"] for r in runs["panelboot_python"]])
    engine = med([r["timing"]["design_s"] + r["timing"]["fit_s"] for r in runs["cli"]])
    extra = med([r["extra_peak_mib"] for r in runs["panelboot_python"]])
    budget_mib = a.rows * ((K + 2) * 8 + 4 * 3) / 2**20  # unit, period and the cluster (unit)
    out = {"rows": a.rows, "k": K, "periods": PERIODS, "formula": FORMULA, "threads": a.threads,
           "cpu": os.cpu_count(), "pb_fit_s": py, "cli_engine_s": engine, "pb_over_engine": py / engine,
           "pb_extra_peak_mib": extra, "memory_budget_mib": budget_mib,
           "same_numbers_as_cli": runs["panelboot_python"][0]["coef"] == runs["cli"][0]["coef"]
           and runs["panelboot_python"][0]["se"] == runs["cli"][0]["se"], "runs": runs}
    if "pyfixest" in runs:
        pf = med([r["wall_s"] for r in runs["pyfixest"]])
        out.update({"pyfixest_s": pf, "pyfixest_over_pb": pf / py,
                    "pyfixest_extra_peak_mib": med([r["extra_peak_mib"] for r in runs["pyfixest"]]),
                    "max_rel_diff_se_vs_pyfixest": max(abs(s / t - 1) for s, t in
                                                       zip(runs["panelboot_python"][0]["se"], runs["pyfixest"][0]["se"]))})
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"rows {a.rows:,}, k = {K}, 2 FE, clustered; threads {a.threads or os.cpu_count()}")
    print(f"pb.fit from pandas     {py:8.3f} s   peak extra memory {extra:8.1f} MiB (budget {budget_mib:.1f} MiB)")
    print(f"CLI engine (in memory) {engine:8.3f} s   pb.fit / engine = {py / engine:.3f}")
    if "pyfixest" in runs:
        print(f"pyfixest.feols         {out['pyfixest_s']:8.3f} s   peak extra memory {out['pyfixest_extra_peak_mib']:8.1f} MiB"
              f"   pyfixest / pb.fit = {out['pyfixest_over_pb']:.2f}x   max SE rel. diff {out['max_rel_diff_se_vs_pyfixest']:.1e}")
    print(f"same numbers as the CLI: {out['same_numbers_as_cli']}   (written to {a.out})")


if __name__ == "__main__":
    main()
