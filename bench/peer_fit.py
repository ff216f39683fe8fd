#!/usr/bin/env python3
"""Two-way FE OLS + one-way clustered SE: panelboot against pyfixest in the same run.

    python3 bench/peer_fit.py [--units 100000] [--periods 100] [--out bench/out]

Writes one CSV panel (units x periods rows; y, x1..x5, unit, time), then times
  * pyfixest.feols on the data frame in memory (twice; the second, warm call is quoted),
  * pandas.read_csv + pyfixest as a whole process,
  * panelboot from columns in memory (bench/bench_fit, Google Benchmark),
  * panelboot as a whole process from the CSV (/usr/bin/time -v: wall and peak RSS),
checks that the coefficients and clustered SEs agree, and prints a Markdown table.
Needs: pip install pyfixest (not part of the test suite).
"""
import argparse, json, os, subprocess, sys, time, resource

import numpy as np


def write_csv(path, units, periods, seed=42):
    rng = np.random.default_rng(seed)
    n = units * periods
    unit = np.repeat(np.arange(units), periods)
    tt = np.tile(np.arange(periods), units)
    ua, ta = rng.standard_normal(units), rng.standard_normal(periods)
    X = rng.standard_normal((n, 5)) + 0.5 * ua[unit][:, None]
    y = ua[unit] + ta[tt] + rng.standard_normal(n) + X @ (0.1 * np.arange(1, 6))
    with open(path, "w") as f:
        f.write("unit,time,y,x1,x2,x3,x4,x5\n")
        chunk = 500000
        for b in range(0, n, chunk):
            e = min(n, b + chunk)
            block = np.column_stack([unit[b:e], tt[b:e], y[b:e], X[b:e]])
            np.savetxt(f, block, fmt=["%d", "%d"] + ["%.10g"] * 6, delimiter=",")


def timed_process(cmd, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    rss = next(int(l.split()[-1]) for l in p.stderr.splitlines() if "Maximum resident" in l) / 1024
    return wall, rss, p.stdout


PYFIXEST_SNIPPET = r"""
import sys, time, json, resource
import pandas as pd, pyfixest as pf
t0 = time.perf_counter(); df = pd.read_csv(sys.argv[1]); t1 = time.perf_counter()
fits = []
for _ in range(2):
    a = time.perf_counter()
    m = pf.feols("y ~ x1 + x2 + x3 + x4 + x5 | unit + time", data=df, vcov={"CRV1": "unit"})
    fits.append(time.perf_counter() - a)
print(json.dumps({"read_s": t1 - t0, "fit_cold_s": fits[0], "fit_warm_s": fits[1],
                  "coef": m.coef().tolist(), "se": m.se().tolist()}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=100000)
    ap.add_argument("--periods", type=int, default=100)
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    n = a.units * a.periods
    csv = os.path.join(a.out, f"panel_{a.units}x{a.periods}.csv")
    if not os.path.exists(csv):
        write_csv(csv, a.units, a.periods)
    size_mb = os.path.getsize(csv) / 1e6

    # pyfixest: whole process (read + 2 fits) and in-memory fit times
    wall_py, rss_py, out = timed_process([sys.executable, "-c", PYFIXEST_SNIPPET, csv])
    py = json.loads(out.strip().splitlines()[-1])

    # panelboot: whole process from the CSV
    pb = os.path.join(a.build, "panelboot")
    wall_pb, rss_pb, out = timed_process([pb, "fit", "--data", csv, "--formula",
                                          "y ~ x1 + x2 + x3 + x4 + x5 | unit + time",
                                          "--cluster", "unit", "--format", "json"])
    pbj = json.loads(out)["models"][0]["coefficients"]
    coef_pb = [c["estimate"] for c in pbj]
    se_pb = [c["std_error"] for c in pbj]
    coef_diff = max(abs(x - y) / abs(y) for x, y in zip(coef_pb, py["coef"]))
    se_diff = max(abs(x - y) / abs(y) for x, y in zip(se_pb, py["se"]))

    # panelboot: from columns in memory
    bj = os.path.join(a.out, "bench_fit.json")
    subprocess.run([os.path.join(a.build, "bench", "bench_fit"), "--units", str(a.units), "--periods",
                    str(a.periods), "--benchmark_format=json", f"--benchmark_out={bj}"],
                   check=True, capture_output=True)
    bench = {b["name"].split("/")[0]: b for b in json.load(open(bj))["benchmarks"]}
    mem_cols = bench["BM_FitFromColumns"]["real_time"] / 1e3
    mem_fit = bench["BM_FitPreparedDesign"]["real_time"] / 1e3
    data_mb = n * 8 * 8 / 1e6

    res = {"rows": n, "csv_mb": size_mb, "data_doubles_mb": data_mb,
           "pyfixest_fit_warm_s": py["fit_warm_s"], "pyfixest_fit_cold_s": py["fit_cold_s"],
           "pyfixest_read_s": py["read_s"], "pyfixest_process_s": wall_py, "pyfixest_peak_mb": rss_py,
           "panelboot_cols_s": mem_cols, "panelboot_fit_s": mem_fit,
           "panelboot_cols_peak_mb": bench["BM_FitFromColumns"]["peak_rss_MB"],
           "panelboot_process_s": wall_pb, "panelboot_process_peak_mb": rss_pb,
           "max_rel_diff_coef": coef_diff, "max_rel_diff_se": se_diff}
    json.dump(res, open(os.path.join(a.out, "fit_peer.json"), "w"), indent=2)
    print(f"| {n:,} rows | time | peak RSS |\n|---|---:|---:|")
    print(f"| pyfixest feols, data frame in memory (warm) | {py['fit_warm_s']:.2f} s | |")
    print(f"| panelboot, columns in memory (sample + design + fit) | {mem_cols:.2f} s "
          f"| {res['panelboot_cols_peak_mb']:.0f} MB (incl. {data_mb:.0f} MB data) |")
    print(f"| panelboot, prepared design (demean + solve + CRVE) | {mem_fit:.2f} s | |")
    print(f"| pyfixest process: read_csv + 2 fits | {wall_py:.2f} s | {rss_py:.0f} MB |")
    print(f"| panelboot process: CSV parse + fit | {wall_pb:.2f} s | {rss_pb:.0f} MB |")
    print(f"ratio in memory (pyfixest warm / panelboot from columns): {py['fit_warm_s'] / mem_cols:.1f}x")
    print(f"agreement: max rel. diff coef {coef_diff:.2e}, SE {se_diff:.2e}")


if __name__ == "__main__":
    main()
