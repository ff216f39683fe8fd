#!/usr/bin/env python3
"""The overhead of splitting and checkpointing a long run (issue: shards and checkpoints).

Times, in one run on this machine, a long `panelboot wild` (the embedded study panel, G = 30,
counts only) as one process, with --checkpoint (written every 2 s, the default), and as n = 1, 4
and 16 shards run one after another followed by `panelboot merge`; and the same with the CI
(each replication's pieces in the parts) at a smaller B. Every variant's JSON is checked equal to
the single run's (timing and threads aside). The variants run in rounds, each once per round,
and each time is the median over --repeats rounds. Goal: under 2% overhead.

    python3 bench/scale_overhead.py [--B 50000000] [--ci-B 2000000] [--repeats 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PB = os.path.join(ROOT, "build", "panelboot")
MODEL = ["-f", "newqua ~ rgzn + urban | province + year", "--cluster", "province", "--test", "rgzn = 0",
         "--format", "json"]


def run(args):
    t0 = time.perf_counter()
    r = subprocess.run([PB] + args, capture_output=True, text=True, env=dict(os.environ, PANELBOOT_PROGRESS="never"))
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"panelboot {' '.join(args)} failed: {r.stderr}")
    return dt, r.stdout


def comparable(j):
    if isinstance(j, dict):
        return {k: comparable(v) for k, v in j.items() if k not in ("timing", "threads")}
    if isinstance(j, list):
        return [comparable(v) for v in j]
    return j


def single(base):
    return run(base)


def checkpointed(base, folder):
    path = os.path.join(folder, "run.ckpt")
    return run(base + ["--checkpoint", path])


def sharded(base, n, folder):
    total, parts = 0.0, []
    for i in range(1, n + 1):
        part = os.path.join(folder, f"part{i}.json")
        dt, _ = run(base + ["--shard", f"{i}/{n}", "--output", part])
        total += dt
        parts.append(part)
    dt, out = run(["merge"] + parts)
    for p in parts:
        os.remove(p)
    return total + dt, out


def table(title, base, repeats, with_checkpoint):
    """Each variant once per round, the rounds repeated (so drift in the machine's speed hits
    every variant alike); the median of each variant's times."""
    with tempfile.TemporaryDirectory() as folder:
        _, out = single(base)
        ref = comparable(json.loads(out))
        variants = [("single process", lambda: single(base))]
        if with_checkpoint:
            variants.append(("--checkpoint (every 2 s)", lambda: checkpointed(base, folder)))
        for n in (1, 4, 16):
            variants.append((f"{n} shards one after another + merge", lambda n=n: sharded(base, n, folder)))
        times = {name: [] for name, _ in variants}
        for _ in range(repeats):
            for name, fn in variants:
                dt, out = fn()
                if comparable(json.loads(out)) != ref:
                    raise SystemExit(f"{name}: the result differs from the single run's")
                times[name].append(dt)
    t_single = statistics.median(times["single process"])
    print(f"\n{title}\n")
    print("| run | wall time (median) | overhead |")
    print("|---|---:|---:|")
    for name, _ in variants:
        t = statistics.median(times[name])
        print(f"| {name} | {t:.3f} s | {100 * (t / t_single - 1):+.1f}% |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--B", type=int, default=50_000_000)
    ap.add_argument("--ci-B", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    table(f"wild, counts only (--no-ci), B = {a.B:,}", ["wild"] + MODEL + ["--B", str(a.B), "--no-ci"], a.repeats, True)
    table(f"wild with the CI (each replication's 5 pieces in the parts), B = {a.ci_B:,}",
          ["wild"] + MODEL + ["--B", str(a.ci_B)], a.repeats, False)


if __name__ == "__main__":
    main()
