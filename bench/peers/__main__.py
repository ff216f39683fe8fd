"""bench-peers: panelboot against the tools users run today, same data, same run.

Run through scripts/bench-peers (it installs the peers first); this module is its engine:

    python -m bench.peers [--quick] [--only fit,wild,...] [--repeats N] [--threads N] [--exe PATH]
                          [--data DIR] [--output JSON] [--timeout S]

Each family (fit, wild, threshold, iv, wre, power: bench/peers/<family>.py) writes its datasets
with a fixed seed, runs panelboot and each peer on them, checks the answers first and then times
both. The table has one line per case and peer; the last line sums the ratios up. Exit status: 0
when every comparable answer agrees, 1 when one differs or panelboot fails, 2 on a usage error.
"""
import argparse, importlib, json, os, platform, shutil, signal, sys, time

from . import common
from .report import summary, table

FAMILIES = ("fit", "wild", "threshold", "iv", "wre", "power")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse(argv):
    ap = argparse.ArgumentParser(prog="bench-peers", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the small ladder (under 10 minutes on 2 cores)")
    ap.add_argument("--only", default=",".join(FAMILIES), help=f"families to run (default: all of {','.join(FAMILIES)})")
    ap.add_argument("--repeats", type=int, help="timed runs per tool and case, median quoted (1-50; default 3, 5 full)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="panelboot --threads (default: the CPUs this process may use)")
    ap.add_argument("--exe", default=os.path.join(ROOT, "build", "panelboot"), help="the panelboot executable")
    ap.add_argument("--data", default=os.path.join(ROOT, "bench", "out", "peers"), help="folder for the datasets")
    ap.add_argument("--output", help="the JSON (default: bench/results/peers-quick.json or peers-full.json)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds for one peer process (10-86400)")
    a = ap.parse_args(argv)
    fams = [f.strip() for f in a.only.split(",") if f.strip()]
    bad = [f for f in fams if f not in FAMILIES]
    if bad or not fams:
        ap.error(f"--only: unknown family {', '.join(bad) or '(none given)'}; choose from {', '.join(FAMILIES)}")
    if len(set(fams)) != len(fams):
        ap.error("--only: a family is named twice")
    a.only = fams
    if a.repeats is None:
        a.repeats = 3 if a.quick else 5
    if not 1 <= a.repeats <= 50:
        ap.error("--repeats: must be in 1..50")
    if not 1 <= a.threads <= 4096:
        ap.error("--threads: must be in 1..4096")
    if not 10 <= a.timeout <= 86400:
        ap.error("--timeout: must be in 10..86400")
    if not (os.path.isfile(a.exe) and os.access(a.exe, os.X_OK)):
        ap.error(f"--exe: '{a.exe}' is not an executable (build it: scripts/build)")
    a.output = a.output or os.path.join(ROOT, "bench", "results", "peers-quick.json" if a.quick else "peers-full.json")
    return a


def machine():
    cpu = "?"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    kb = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cpus": len(os.sched_getaffinity(0)), "memory_gib": round(kb / 2**20, 1),
            "os": platform.platform(), "python": platform.python_version()}


def versions(ctx):
    out = {}
    from importlib.metadata import version, PackageNotFoundError
    for p in ("pyfixest", "wildboottest", "linearmodels", "pyxthreg", "numpy", "pandas", "numba"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    p = common.run_process([ctx.exe, "--version"], 60)
    out["panelboot"] = p.out.strip().removeprefix("panelboot ") if p.rc == 0 else None
    if ctx.rscript:
        p = common.run_process([ctx.rscript, "-e", 'cat(R.version$major, ".", R.version$minor, " sandwich ", '
                                "as.character(packageVersion('sandwich')), ' plm ', as.character(packageVersion('plm')), sep='')"], 60)
        out["R"] = p.out.strip() if p.rc == 0 else None
    return out


def save(path, doc):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.json"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, default=float)
    os.replace(tmp, path)


def main(argv=None):
    a = parse(argv)
    # a kill of bench-peers raises SystemExit where it waits, so the running peer (own session) goes too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(a.data, exist_ok=True)
    ctx = common.Context(exe=os.path.abspath(a.exe), python=sys.executable, rscript=shutil.which("Rscript") or "",
                         data=a.data, quick=a.quick, repeats=a.repeats, threads=a.threads, timeout=a.timeout, log=log)
    t0 = time.perf_counter()
    ctx.versions = versions(ctx)
    rows = []
    for fam in a.only:
        log(f"bench-peers: {fam} ...")
        t = time.perf_counter()
        rows += importlib.import_module(f".{fam}", __package__).cases(ctx)
        log(f"bench-peers: {fam} done in {time.perf_counter() - t:.0f} s")
    s = summary(rows)
    doc = {"command": "bench-peers", "command_line": "scripts/bench-peers " + " ".join(argv or sys.argv[1:]),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": a.quick, "repeats": a.repeats,
           "threads": a.threads, "total_s": time.perf_counter() - t0, "machine": machine(), "versions": ctx.versions,
           "rows": rows, "summary": s}
    save(a.output, doc)
    print("\n".join(table(rows)))
    print(f"\nJSON: {os.path.relpath(a.output, ROOT) if a.output.startswith(ROOT) else a.output}; "
          f"{doc['total_s']:.0f} s in all")
    print(s["line"])
    return 1 if s["differ"] or s["panelboot_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
