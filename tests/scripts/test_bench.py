#!/usr/bin/env python3
"""ctest Bench.LimitsRatesAndResultsAsAUserMeetsThem: `panelboot bench` and scripts/bench-results.

    python3 tests/scripts/test_bench.py build/panelboot scripts/bench-results

Runs `panelboot bench --quick --problems wild-enum,ols-batch` as a user does and
checks its JSON against the arithmetic it claims: the CPU's peak is threads x lanes x 2 x clock;
each case's seconds are the median of its runs; reps_per_s, achieved and fraction_of_limit follow
from the seconds, the work model and the limit of the bound the roofline picks; the Gray walk's
work is exactly 2 (G + 3) FLOPs per step; an enumerated p-value is its exceedances over its 2^(G-1)
pairs. Then bench-results' table, RESULTS.md update and plots, and the errors
(unknown problem or backend, --repeats 0, a JSON that is not bench's): exit 2, one line.
Any failure exits 1 with the reason.
"""
import json, math, os, shutil, sys, tempfile

from pngcheck import fail, png_size, run  # beside this script


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b))


def expect_exit2(cmd, needle, what):
    p = run(cmd)
    lines = p.stderr.strip().splitlines()
    if p.returncode != 2 or len(lines) != 1 or needle not in lines[0]:
        fail(f"{what}: expected exit 2 and one line with {needle!r}, got exit {p.returncode}, "
             f"stderr {p.stderr!r}")
    print(f"ok: {what}: {lines[0]}")


def check_case(r, limits):
    runs = sorted(r["runs"])
    if len(runs) != 3:
        fail(f"{r['problem']} {r['size']}: {len(runs)} warm runs, expected --repeats 3")
    if r["seconds"] != runs[1] or r["seconds_min"] != runs[0] or r["seconds_max"] != runs[2]:
        fail(f"{r['problem']} {r['size']}: median/min/max {r['seconds']}, {r['seconds_min']}, "
             f"{r['seconds_max']} do not match the runs {runs}")
    if not close(r["reps_per_s"], r["replications"] / r["seconds"]):
        fail(f"{r['problem']}: reps_per_s {r['reps_per_s']} != replications / seconds")
    t_compute = r["flops"] / limits["fp64_flops"]
    t_memory = r["bytes"] / limits["bytes_per_s"]
    bound = "memory" if t_memory > t_compute else "compute"
    if r["bound"] != bound:
        fail(f"{r['problem']} {r['size']}: bound {r['bound']}, the roofline says {bound} "
             f"({t_compute:.3g} s of FLOPs, {t_memory:.3g} s of bytes)")
    work = r["bytes"] if bound == "memory" else r["flops"]
    limit = limits["bytes_per_s"] if bound == "memory" else limits["fp64_flops"]
    if not close(r["achieved"], work / r["seconds"]) or not close(r["limit"], limit):
        fail(f"{r['problem']}: achieved {r['achieved']} / limit {r['limit']} do not follow from the work model")
    if not close(r["fraction_of_limit"], r["achieved"] / r["limit"]) or not 0 < r["fraction_of_limit"] < 2:
        fail(f"{r['problem']}: fraction_of_limit {r['fraction_of_limit']}")
    if not r["verdict"].startswith(bound + "-bound: "):
        fail(f"{r['problem']}: verdict {r['verdict']!r}")


def main():
    if len(sys.argv) != 3:
        fail("usage: test_bench.py PANELBOOT BENCH_RESULTS")
    pb, results = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="pb_bench_") as tmp:
        js = os.path.join(tmp, "bench.json")
        p = run([pb, "bench", "--quick", "--problems", "wild-enum,ols-batch", "--repeats", "3",
                 "--backends", "cpu", "--format", "json", "--output", js])
        if p.returncode != 0:
            fail(f"panelboot bench exited {p.returncode}: {p.stderr.strip()}")
        if "bench: wild-enum G=28" not in p.stderr:
            fail(f"no progress line per case on stderr: {p.stderr!r}")
        with open(js) as f:
            doc = json.load(f)
        cpu = doc["machine"]["cpu"]
        peak = cpu["units"] * cpu["fp64_lanes"] * 2 * cpu["clock_hz"]
        if not close(cpu["fp64_flops"], peak) or cpu["fp64_lanes"] not in (2, 4, 8):
            fail(f"CPU peak {cpu['fp64_flops']} != units x lanes x 2 x clock ({peak})")
        if not 1e8 < cpu["bytes_per_s"] < 1e13:
            fail(f"copy bandwidth {cpu['bytes_per_s']} B/s is not plausible")
        if doc["command_line"] != "panelboot bench --quick --backends cpu --problems wild-enum,ols-batch":
            fail(f"command_line {doc['command_line']!r}")
        res = doc["results"]
        sizes = [(r["problem"], r["ladder_value"]) for r in res]
        if sizes != [("wild-enum", 12), ("wild-enum", 18), ("wild-enum", 24), ("wild-enum", 28),
                     ("ols-batch", 2000), ("ols-batch", 20000)]:
            fail(f"unexpected cases {sizes}")
        for r in res:
            if r["backend"] != "cpu":
                fail(f"backend {r['backend']} with --backends cpu")
            check_case(r, cpu)
        g24 = res[2]
        if g24["flops"] != 2 * (24 + 3) * 2 ** 23 or g24["replications"] != 2 ** 23 or g24["bytes"] != 0:
            fail(f"the Gray walk's work model at G = 24: {g24['flops']} FLOPs for {g24['replications']} steps")
        if res[4]["bytes"] != 2000 * 8 * (200 * 10 + 200 + 10 + 1):
            fail(f"batched OLS bytes {res[4]['bytes']}")
        print(f"ok: {len(res)} cases; CPU {cpu['fp64_flops'] / 1e9:.1f} GFLOP/s, "
              f"copy {cpu['bytes_per_s'] / 1e9:.1f} GB/s; G=24 {g24['verdict']}")
        # the enumerated p-value: the third value; exceedances and finite counts first
        n_exceed, n_finite, p_bench = res[1]["values"]
        if n_finite != 2 ** 18 or not 0 <= n_exceed <= n_finite or not close(p_bench, n_exceed / n_finite, 1e-12):
            fail(f"wild-enum G=18 values {res[1]['values']}")

        # bench-results: the table, the RESULTS.md section, the plots
        p = run([results, "--table", js])
        rows = [l for l in p.stdout.splitlines() if l.startswith("| wild-enum") or l.startswith("| ols-batch")]
        if p.returncode != 0 or len(rows) != 6:
            fail(f"bench-results --table: exit {p.returncode}, {len(rows)} rows: {p.stderr.strip()}")
        md = os.path.join(tmp, "RESULTS.md")
        with open(md, "w") as f:
            f.write("# Results\n\nkept above\n<!-- generated: panelboot bench -->\nold\n"
                    "<!-- end generated: panelboot bench -->\nkept below\n")
        p = run([results, "--update", md, js])
        text = open(md).read()
        if (p.returncode != 0 or "\nold\n" in text or "kept above" not in text or "kept below" not in text
                or "`panelboot bench --quick --backends cpu --problems wild-enum,ols-batch`" not in text
                or text.count("| wild-enum |") != 4):
            fail(f"bench-results --update: exit {p.returncode}, {p.stderr.strip()}, file:\n{text}")
        figs = os.path.join(tmp, "figs")
        p = run([results, "--plots", figs, js])
        for name in ("bench-wild-enum.png", "bench-ols-batch.png"):
            path = os.path.join(figs, name)
            if p.returncode != 0 or not os.path.isfile(path) or png_size(path) != (600, 450):
                fail(f"bench-results --plots: exit {p.returncode}, {p.stderr.strip()}, {name}")
        print("ok: bench-results table, update and plots")

        # errors as a user meets them
        out = os.path.join(tmp, "never.json")
        expect_exit2([pb, "bench", "--problems", "wild-enm", "--output", out], "did you mean 'wild-enum'", "unknown problem")
        expect_exit2([pb, "bench", "--backends", "gpu", "--output", out], "unknown backend 'gpu'", "unknown backend")
        expect_exit2([pb, "bench", "--repeats", "0", "--output", out], "--repeats", "--repeats 0")
        if os.path.exists(out):
            fail("a refused bench wrote its output")
        if shutil.which("nvidia-smi") is None:
            expect_exit2([pb, "bench", "--backends", "cuda", "--problems", "fit", "--output", out], "--backends cuda",
                         "cuda without a GPU")
        fit = os.path.join(tmp, "fit.json")
        with open(fit, "w") as f:
            json.dump({"command": "fit"}, f)
        expect_exit2([results, "--table", fit], "bench-results: ", "bench-results on fit's JSON")
    print("PASS")


if __name__ == "__main__":
    main()
