"""bench-peers: panelboot against the tools users run today, same data, same run.

Run through scripts/bench-peers (it installs the peers first); this module is its engine:

    python -m bench.peers [--quick] [--only fit,wild,...] [--repeats N] [--threads N] [--backend B]
                          [--exe PATH] [--data DIR] [--output JSON] [--timeout S] [--allow-peer-failures]

Each family (fit, wild, threshold, iv, wre, power: bench/peers/<family>.py) writes its datasets
with a fixed seed, runs panelboot and each peer on them, checks the answers first and then times
both. The table has one line per case and peer; the last line sums the ratios up. Exit status: 0
when every comparable answer agrees; 1 when one differs, panelboot fails or is not the same at
--threads 1, a family breaks, or a peer's process breaks (unless --allow-peer-failures); 2 on a
usage error.
"""
import importlib, json, os, platform, shlex, shutil, signal, sys, time, traceback

from . import common
from .options import ROOT, parse
from .report import summary, table


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def machine():
    cpu = "?"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    kb = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cpus": len(os.sched_getaffinity(0)), "memory_gib": round(kb / 2**20, 1),
            "gpus": gpus(), "os": platform.platform(), "python": platform.python_version()}


def gpus():
    """The GPUs nvidia-smi lists (none where it is not installed or finds none)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    p = common.run_process([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"], 60)
    return [l.strip() for l in p.out.splitlines() if l.strip()] if p.rc == 0 else []


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


def run_family(ctx, fam):
    """The family's rows; a family that breaks (a bug, a peer's answer in an unexpected shape) gives
    one failed row with the reason, and the run goes on to the next."""
    try:
        return importlib.import_module(f".{fam}", __package__).cases(ctx)
    except Exception as e:  # noqa: BLE001 (reported in the table and the exit status)
        log(traceback.format_exc())
        where = traceback.extract_tb(e.__traceback__)[-1]
        return [common.failed_row(fam, f"the {fam} family stopped", "", 0, {},
                                  f"{type(e).__name__} at {os.path.basename(where.filename)}:{where.lineno}: {e}")]


def exit_status(s, allow_peer_failures):
    broken = s["differ"] or s["panelboot_failed"] or s["threads_unequal"]
    return 1 if broken or (s["failed"] and not allow_peer_failures) else 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parse(argv)
    # a kill of bench-peers raises SystemExit where it waits, so the running peer (own session) goes too
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _: sys.exit(128 + signum))
    os.makedirs(a.data, exist_ok=True)
    ctx = common.Context(exe=a.exe, python=sys.executable, rscript=shutil.which("Rscript") or "",
                         data=a.data, quick=a.quick, repeats=a.repeats, threads=a.threads, timeout=a.timeout,
                         backend=a.backend, log=log)
    t0 = time.perf_counter()
    ctx.versions = versions(ctx)
    rows = []
    for fam in a.only:
        log(f"bench-peers: {fam} ...")
        t = time.perf_counter()
        rows += run_family(ctx, fam)
        log(f"bench-peers: {fam} done in {time.perf_counter() - t:.0f} s")
    s = summary(rows)
    doc = {"command": "bench-peers", "command_line": shlex.join(["scripts/bench-peers"] + argv),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": a.quick, "repeats": a.repeats,
           "threads": a.threads, "backend": a.backend, "total_s": time.perf_counter() - t0, "machine": machine(),
           "versions": ctx.versions, "rows": rows, "summary": s}
    save(a.output, doc)
    print("\n".join(table(rows)))
    print(f"\nJSON: {os.path.relpath(a.output, ROOT) if a.output.startswith(ROOT) else a.output}; "
          f"{doc['total_s']:.0f} s in all")
    print(s["line"])
    return exit_status(s, a.allow_peer_failures)


if __name__ == "__main__":
    sys.exit(main())
