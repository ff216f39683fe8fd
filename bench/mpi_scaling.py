#!/usr/bin/env python3
"""Strong scaling over MPI ranks (issue: MPI/Slurm scale-out).

Times, in one run on this machine, a long `panelboot wild` (the embedded study panel, G = 30, one
test, counts only, B = 10^8 by default) and a `power` study (the study's region split, crve and
wild tests) as one plain process and under `mpirun -np 1, 2, 4` (one thread per rank, so that
ranks are the only parallelism), each variant's JSON checked equal to the plain run's (timing,
threads aside) before it is timed. Rounds interleave the variants; each figure is the median over
--repeats rounds. With PANELBOOT_MPI_TRACE, rank 0 lists every range with its round trip and the
worker's compute time: their difference is the hand-out's overhead per range (reported as the
median and the 90th percentile over the workers' ranges), and the number of ranges per run.

    python3 bench/mpi_scaling.py [--B 100000000] [--R 50000] [--repeats 3] [--ranks 1,2,4]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import time

from scale_overhead import comparable  # a report without its timings and thread count

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PB = os.path.join(ROOT, "build", "panelboot")
MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root", "-x", "PANELBOOT_PROGRESS", "-x", "PANELBOOT_MPI_TRACE"]
TRACE = re.compile(r"rank (\d+) range (\d+)\.\.(\d+) round trip ([0-9.]+) s compute ([0-9.]+) s")


def run(cmd, trace=False):
    env = dict(os.environ, PANELBOOT_PROGRESS="never", OMPI_MCA_btl_vader_single_copy_mechanism="none")
    if trace:
        env["PANELBOOT_MPI_TRACE"] = "1"
    else:
        env.pop("PANELBOOT_MPI_TRACE", None)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr[-2000:]}")
    return dt, r.stdout, r.stderr


def variants(args, ranks):
    out = [("plain process, 2 threads", [PB] + args + ["--threads", "2"], 2)]
    out.append(("plain process, 1 thread", [PB] + args + ["--threads", "1"], 1))
    for n in ranks:
        out.append((f"mpirun -np {n}, 1 thread each", MPIRUN + ["-np", str(n), PB] + args + ["--threads", "1"], n))
    return out


def overheads(stderr):
    ranges, extra = 0, []
    for m in TRACE.finditer(stderr):
        ranges += 1
        if m.group(1) != "0":
            extra.append(float(m.group(4)) - float(m.group(5)))
    return ranges, extra


def study(name, args, ranks, repeats):
    vs = variants(args, ranks)
    reference = comparable(json.loads(run(vs[0][1])[1]))
    traces = {}
    for label, cmd, _ in vs:  # every variant's answer first, with its trace
        _, out, err = run(cmd, trace=True)
        if comparable(json.loads(out)) != reference:
            raise SystemExit(f"{label}: the result differs from the plain run")
        traces[label] = overheads(err)
    times = {label: [] for label, _, _ in vs}
    for _ in range(repeats):
        for label, cmd, _ in vs:
            times[label].append(run(cmd)[0])
    base = statistics.median(times[vs[1][0]])  # one rank's worth of work: one thread
    print(f"\n{name}: {' '.join(args)}")
    print("| variant | wall time (median) | speed-up vs 1 thread | efficiency (per core used, 2 cores) | ranges | hand-out overhead per range (median / p90) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, _, workers in vs:
        t = statistics.median(times[label])
        cores = min(workers, os.cpu_count() or 2)
        n, extra = traces[label]
        oh = "-"
        if extra:
            extra.sort()
            oh = f"{statistics.median(extra) * 1e3:.2f} / {extra[int(0.9 * (len(extra) - 1))] * 1e3:.2f} ms"
        print(f"| {label} | {t:.3f} s | {base / t:.2f}x | {base / t / cores * 100:.0f}% | {n if n else '-'} | {oh} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--B", type=int, default=100_000_000)
    ap.add_argument("--R", type=int, default=50000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ranks", default="1,2,4")
    a = ap.parse_args()
    ranks = [int(x) for x in a.ranks.split(",")]
    print(f"machine: {os.cpu_count()} cores; {subprocess.run(['mpirun', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}")
    wild = ["wild", "-f", "newqua ~ rgzn + urban | province + year", "--cluster", "province", "--test", "rgzn = 0",
            "--B", str(a.B), "--no-ci", "--format", "json"]
    power = ["power", "-f", "newqua ~ rgzn + urban | province + year", "--cluster", "province", "--target", "rgzn",
             "--split", "region", "--R", str(a.R), "--wild-B", "199", "--tests", "crve,wild", "--effects", "0,0.002",
             "--format", "json"]
    study(f"wild, B = {a.B:,}, counts only", wild, ranks, a.repeats)
    study(f"power, R = {a.R:,} per group, wild B = 199", power, ranks, a.repeats)


if __name__ == "__main__":
    main()
