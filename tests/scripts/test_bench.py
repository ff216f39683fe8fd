#!/usr/bin/env python3
"""ctest Bench.LimitsRatesAndResultsAsAUserMeetsThem: `panelboot bench` and scripts/bench-results.

    python3 tests/scripts/test_bench.py build/panelboot scripts/bench-results

Runs `panelboot bench --quick --problems wild-enum,ols-batch` as a user does and
checks its JSON against the arithmetic it claims: the CPU's peak is the larger of cores x lanes x 2 x
clock and the multiply-add rate it measured;
each case's seconds are the median of its runs; reps_per_s, achieved and fraction_of_limit follow
from the seconds, the work model and the limit of the bound the roofline picks; the Gray walk's
work is exactly 2 (G + 3) FLOPs per step; an enumerated p-value is its exceedances over its 2^(G-1)
pairs. The other problems run with an even --repeats (the median of two) under --max-memory (the
copy shrinks): their work per replication constant along the ladder, fit's bytes by its model.
Then bench-results' table, RESULTS.md update and plots, and the errors (unknown, repeated or empty
names, fit on the GPU alone, --repeats 0, --max-memory too small, cuda in a build without it, a
JSON that is not bench's): exit 2, one line, no output file.
Any failure exits 1 with the reason.
"""
import json, os, sys, tempfile

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


def check_case(r, limits, repeats):
    runs = sorted(r["runs"])
    if len(runs) != repeats:
        fail(f"{r['problem']} {r['size']}: {len(runs)} warm runs, expected --repeats {repeats}")
    median = runs[repeats // 2] if repeats % 2 else (runs[repeats // 2 - 1] + runs[repeats // 2]) / 2
    if not close(r["seconds"], median) or r["seconds_min"] != runs[0] or r["seconds_max"] != runs[-1]:
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
    # a GPU's kernels against the device floor, the whole call against the transfer floor: null
    # where not reported (every CPU case), else in the verdict
    floors = ("device_seconds", "device_floor_seconds", "transfer_floor_seconds")
    if any(k not in r for k in floors):
        fail(f"{r['problem']}: lacks one of {floors}")
    if r["backend"] == "cpu" and any(r[k] is not None for k in floors):
        fail(f"{r['problem']} on the CPU reports GPU floors: {[r[k] for k in floors]}")
    if r["device_seconds"] and f"{r['device_seconds'] / r['device_floor_seconds']:.2f}x the device floor" not in r["verdict"]:
        fail(f"{r['problem']}: verdict {r['verdict']!r} lacks the kernels against the device floor")
    if r["transfer_floor_seconds"] and f"{r['seconds'] / r['transfer_floor_seconds']:.2f}x the transfer floor" not in r["verdict"]:
        fail(f"{r['problem']}: verdict {r['verdict']!r} lacks the whole call against the transfer floor")


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
        if "host_to_device_bytes_per_s" not in cpu or cpu["host_to_device_bytes_per_s"] is not None:
            fail(f"the CPU's limits: host_to_device_bytes_per_s should be null, got {cpu.get('host_to_device_bytes_per_s', 'absent')!r}")
        model = cpu["units"] * cpu["fp64_lanes"] * 2 * cpu["clock_hz"]
        measured = cpu["fp64_flops_measured"]
        if not 0 < measured < 5 * model or cpu["fp64_lanes"] not in (2, 4, 8):
            fail(f"measured FP64 rate {measured} against the model's {model}")
        if not close(cpu["fp64_flops"], max(model, measured)):
            fail(f"CPU peak {cpu['fp64_flops']} != the larger of units x lanes x 2 x clock ({model}) and the "
                 f"measured rate ({measured})")
        if not cpu["fp64_source"].startswith("measured: " if measured > model else "the model: "):
            fail(f"fp64_source {cpu['fp64_source']!r}")
        if not 1e8 < cpu["bytes_per_s"] < 1e13:
            fail(f"copy bandwidth {cpu['bytes_per_s']} B/s is not plausible")
        if doc["command_line"] != f"panelboot bench --quick --backends cpu --problems wild-enum,ols-batch --format json --output {js}":
            fail(f"command_line {doc['command_line']!r}")
        res = doc["results"]
        sizes = [(r["problem"], r["ladder_value"]) for r in res]
        if sizes != [("wild-enum", 12), ("wild-enum", 18), ("wild-enum", 24), ("wild-enum", 28),
                     ("ols-batch", 2000), ("ols-batch", 20000)]:
            fail(f"unexpected cases {sizes}")
        for r in res:
            if r["backend"] != "cpu":
                fail(f"backend {r['backend']} with --backends cpu")
            check_case(r, cpu, 3)
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

        # the other problems, an even number of runs, under --max-memory (the copy shrinks to a
        # quarter of it per array)
        js2 = os.path.join(tmp, "bench2.json")
        p = run([pb, "bench", "--quick", "--problems", "wild,threshold,power,iv-wre,fit,csv", "--repeats", "2",
                 "--max-memory", "400M", "--format", "json", "--output", js2])
        if p.returncode != 0:
            fail(f"panelboot bench (the other problems) exited {p.returncode}: {p.stderr.strip()}")
        with open(js2) as f:
            doc2 = json.load(f)
        if "2 x 100 MB" not in doc2["machine"]["cpu"]["bytes_source"]:
            fail(f"--max-memory 400M: the copy is {doc2['machine']['cpu']['bytes_source']!r}")
        by = {}
        for r in doc2["results"]:
            if r["backend"] == "cpu":
                check_case(r, doc2["machine"]["cpu"], 2)
                by.setdefault(r["problem"], []).append(r)
        if sorted(by) != ["csv", "fit", "iv-wre", "power", "threshold", "wild"]:
            fail(f"problems run: {sorted(by)}")
        for prob in ("wild", "iv-wre", "power"):  # work per replication does not depend on how many
            per = {round(r["flops"] / r["replications"], 6) for r in by[prob]}
            if len(per) != 1 or min(per) <= 0:
                fail(f"{prob}: FLOPs per replication {per} across its ladder")
        for r in by["fit"]:
            if r["bytes"] != r["ladder_value"] * (6 * 8 * 6 + 16) or r["bound"] != "memory":
                fail(f"fit {r['size']}: {r['bytes']} bytes, bound {r['bound']}")
        for r in by["csv"]:  # the text (80-95 bytes a row here) read, 8 columns and a line number written
            per_row = r["bytes"] / r["ladder_value"] - (8 * 8 + 4)
            if not 80 <= per_row <= 95 or r["bound"] != "memory" or r["values"][0] != r["ladder_value"]:
                fail(f"csv {r['size']}: {r['bytes']} bytes, bound {r['bound']}, values {r['values'][:1]}")
        grids = [r["ladder_value"] for r in by["threshold"]]
        if not (300 < grids[0] < 400 and grids[1] > 5000):
            fail(f"threshold grid points {grids}")
        cuda_absent = any(n.startswith("cuda: not run") for n in doc2["notes"])
        print(f"ok: {len(doc2['results'])} more cases, --repeats 2, --max-memory 400M")

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
                or f"`panelboot bench --quick --backends cpu --problems wild-enum,ols-batch --format json --output {js}`" not in text
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
        expect_exit2([pb, "bench", "--backends", "cpu,cpu", "--output", out], "'cpu' is named twice", "a backend twice")
        expect_exit2([pb, "bench", "--quick", "--problems", ",", "--output", out], "an empty list", "an empty list")
        expect_exit2([pb, "bench", "--backends", "cuda", "--problems", "fit", "--output", out], "runs on the CPU only",
                     "fit on the GPU alone")
        if cuda_absent:
            expect_exit2([pb, "bench", "--backends", "cuda", "--problems", "wild", "--output", out], "--backends cuda",
                         "cuda without a GPU")
        expect_exit2([pb, "bench", "--max-memory", "1M", "--output", out], "--max-memory", "--max-memory 1M")
        fit = os.path.join(tmp, "fit.json")
        with open(fit, "w") as f:
            json.dump({"command": "fit"}, f)
        expect_exit2([results, "--table", fit], "bench-results: ", "bench-results on fit's JSON")
    print("PASS")


if __name__ == "__main__":
    main()
