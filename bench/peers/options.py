"""bench-peers' options (the standard library only: scripts/bench-peers checks them with the
system's python3 before it installs or builds anything)."""
import argparse, os

FAMILIES = ("fit", "wild", "threshold", "iv", "wre", "power")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def from_callers_dir(path):
    """A path as the user typed it, relative to where they ran scripts/bench-peers (which changes
    into the repository; it passes the user's directory on as BENCH_PEERS_CWD)."""
    return os.path.abspath(os.path.join(os.environ.get("BENCH_PEERS_CWD", os.getcwd()), path))


class OneLineErrors(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit status 2 (--help has the usage)."""

    def error(self, message):
        self.exit(2, f"bench-peers: {message} (see --help)\n")


def parse(argv, check_exe=True):
    ap = OneLineErrors(prog="bench-peers", description="panelboot against the tools users run today, same data, "
                       "same run")
    ap.add_argument("--quick", action="store_true", help="the small ladder (under 10 minutes on 2 cores)")
    ap.add_argument("--only", default=",".join(FAMILIES), help=f"families to run (default: all of {','.join(FAMILIES)})")
    ap.add_argument("--repeats", type=int, help="timed runs per tool and case, median quoted (1-50; default 3, 5 full)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="panelboot --threads (1-4096; default: the CPUs this process may use)")
    ap.add_argument("--backend", default="cpu", choices=("cpu", "cuda", "auto"),
                    help="panelboot --backend (default cpu: the peers run on the CPU)")
    ap.add_argument("--exe", help="the panelboot executable (default: build/panelboot, built first)")
    ap.add_argument("--data", help="folder for the datasets (default: bench/out/peers)")
    ap.add_argument("--output", help="the JSON (default: bench/results/peers-quick.json or peers-full.json; "
                    "with --only, bench/out/peers/peers-<families>.json)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds for one peer process (10-86400; "
                    "a peer that runs out says 'cannot run')")
    ap.add_argument("--allow-peer-failures", action="store_true",
                    help="exit 0 even when a peer's process broke (FAILED: not installed, crashed)")
    a = ap.parse_args(argv)
    fams = [f.strip() for f in a.only.split(",") if f.strip()]
    bad = [f for f in fams if f not in FAMILIES]
    if bad or not fams:
        ap.error(f"--only: unknown family {', '.join(bad) or '(none given)'}; choose from {', '.join(FAMILIES)}")
    if len(set(fams)) != len(fams):
        ap.error("--only: a family is named twice")
    if a.repeats is None:
        a.repeats = 3 if a.quick else 5
    if not 1 <= a.repeats <= 50:
        ap.error("--repeats: must be in 1..50")
    if not 1 <= a.threads <= 4096:
        ap.error("--threads: must be in 1..4096")
    if not 10 <= a.timeout <= 86400:
        ap.error("--timeout: must be in 10..86400")
    a.exe = from_callers_dir(a.exe) if a.exe else os.path.join(ROOT, "build", "panelboot")
    if check_exe and not (os.path.isfile(a.exe) and os.access(a.exe, os.X_OK)):
        ap.error(f"--exe: '{a.exe}' is not an executable (build it: scripts/build)")
    a.data = from_callers_dir(a.data) if a.data else os.path.join(ROOT, "bench", "out", "peers")
    a.output = from_callers_dir(a.output) if a.output else default_output(a.quick, fams)
    a.only = fams
    return a


def default_output(quick, fams):
    """bench/results/ holds the committed whole runs; a run of some families goes beside its data."""
    mode = "quick" if quick else "full"
    if tuple(fams) == FAMILIES:
        return os.path.join(ROOT, "bench", "results", f"peers-{mode}.json")
    return os.path.join(ROOT, "bench", "out", "peers", f"peers-{mode}-{'-'.join(fams)}.json")
