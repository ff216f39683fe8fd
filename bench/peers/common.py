"""What every bench-peers family shares: running a process and measuring it, the peers' prelude,
agreement checks, seeded datasets and the row every family reports.

A row (one case) is
    {"family", "case", "ladder", "ladder_value", "size": {...},
     "panelboot": {"seconds", "seconds_min", "seconds_max", "runs", "peak_mb", "what", "command", ...},
     "peers": [{"tool", "status", "detail", "seconds", "seconds_min", "seconds_max", "runs", "peak_mb",
                "what", "ratio"}]}
status is one of AGREE, DIFFER, NOT_COMPARABLE, CANNOT_RUN. "ratio" is the peer's median seconds over
panelboot's, set only when the peer ran; it counts toward the summary only when the answers agree.
"""
import json, os, shlex, signal, statistics, subprocess, tempfile, threading, time
from dataclasses import dataclass, field

import numpy as np

from .report import AGREE, DIFFER, NOT_COMPARABLE, CANNOT_RUN  # noqa: F401 (the families use them as common.X)
COEF_TOL, SE_TOL = 1e-8, 1e-6


@dataclass
class Context:
    exe: str            # the panelboot executable
    python: str         # the interpreter that has the peers (the one running bench-peers)
    rscript: str        # Rscript, or "" when R is not installed
    data: str           # folder for the generated datasets
    quick: bool
    repeats: int        # timed runs per tool and case (the median is quoted)
    threads: int        # panelboot --threads
    timeout: int        # seconds for one peer process
    log: callable = print
    versions: dict = field(default_factory=dict)


@dataclass
class Proc:
    rc: int
    wall: float
    peak_mb: float
    out: str
    err: str


def run_process(cmd, timeout, env=None):
    """Runs cmd to the end (or kills it after timeout seconds: rc 124): wall time and peak RSS of
    that process alone (os.wait4's rusage), stdout and stderr."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        killed = []

        def kill():
            killed.append(True)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        except BaseException:  # Ctrl-C or a kill of bench-peers: its peer (own session) goes too
            kill()
            os.wait4(p.pid, 0)
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        rc = 124 if killed else p.returncode
        return Proc(rc, wall, usage.ru_maxrss / 1024, out.read(), err.read())


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""


def spread(seconds):
    s = sorted(seconds)
    return {"seconds": statistics.median(s), "seconds_min": s[0], "seconds_max": s[-1], "runs": len(s)}


class PanelbootFailed(RuntimeError):
    pass


def panelboot(ctx, args, what="whole process: start, CSV read, fit and inference", repeats=None, env=None):
    """panelboot as a whole process, repeats times (the median, the range, the largest peak RSS) and
    the JSON of its last run. Raises PanelbootFailed with its stderr's last line."""
    cmd = [ctx.exe] + list(args) + ["--format", "json", "--threads", str(ctx.threads)]
    walls, peak, doc = [], 0.0, None
    for _ in range(repeats or ctx.repeats):
        p = run_process(cmd, ctx.timeout, env)
        if p.rc != 0:
            raise PanelbootFailed(f"`{shlex.join(cmd)}` exited {p.rc}: {last_line(p.err)}")
        walls.append(p.wall)
        peak = max(peak, p.peak_mb)
        doc = json.loads(p.out)
    return dict(spread(walls), peak_mb=peak, what=what, command=shlex.join(cmd), json=doc)


# Every Python peer snippet starts with this: measure(fn) calls fn once untimed (imports, numba's
# compilation, caches), then `repeats` times; emit() prints the JSON line with the process's peak RSS.
PY_PRELUDE = r"""
import json, os, resource, statistics, sys, time, warnings
warnings.filterwarnings("ignore")
REPEATS = int(os.environ.get("BENCH_PEERS_REPEATS", "3"))
def measure(fn, repeats=None):
    fn()
    times, r = [], None
    for _ in range(repeats or REPEATS):
        t0 = time.perf_counter(); r = fn(); times.append(time.perf_counter() - t0)
    s = sorted(times)
    return r, {"seconds": statistics.median(s), "seconds_min": s[0], "seconds_max": s[-1], "runs": len(s)}
def emit(d):
    d["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(d, default=float))
"""

R_PRELUDE = r"""
REPEATS <- as.integer(Sys.getenv("BENCH_PEERS_REPEATS", "3"))
measure <- function(fn) {
  fn()
  times <- numeric(REPEATS); r <- NULL
  for (i in seq_len(REPEATS)) { t0 <- proc.time()[["elapsed"]]; r <- fn(); times[i] <- proc.time()[["elapsed"]] - t0 }
  list(r = r, timing = list(seconds = median(times), seconds_min = min(times), seconds_max = max(times), runs = REPEATS))
}
json_num <- function(x) { x <- as.numeric(x)
  if (length(x) == 1) sprintf("%.17g", x) else paste0("[", paste(sprintf("%.17g", x), collapse = ","), "]") }
emit <- function(fields) {
  parts <- vapply(names(fields), function(k) sprintf('"%s": %s', k, json_num(fields[[k]])), "")
  cat("{", paste(parts, collapse = ", "), "}\n")
}
"""


def run_peer(ctx, code, args, timeout=None, repeats=None):
    """A Python peer snippet in its own process: its JSON line, or {"error": why}. The process's
    peak RSS is the snippet's own (from emit)."""
    env = dict(os.environ, BENCH_PEERS_REPEATS=str(repeats or ctx.repeats))
    p = run_process([ctx.python, "-c", PY_PRELUDE + code] + [str(a) for a in args], timeout or ctx.timeout, env)
    return peer_answer(p, timeout or ctx.timeout)


def run_r(ctx, code, args, timeout=None, repeats=None):
    if not ctx.rscript:
        return {"error": "R is not installed (Rscript not found)"}
    env = dict(os.environ, BENCH_PEERS_REPEATS=str(repeats or ctx.repeats))
    p = run_process([ctx.rscript, "-e", R_PRELUDE + code] + [str(a) for a in args], timeout or ctx.timeout, env)
    ans = peer_answer(p, timeout or ctx.timeout)
    if "error" not in ans:
        ans["peak_mb"] = p.peak_mb      # R's own peak: the whole Rscript process
    return ans


def peer_answer(p, timeout):
    if p.rc == 124:
        return {"error": f"did not finish in {timeout} s"}
    if p.rc != 0:
        return {"error": f"exit {p.rc}: {last_line(p.err)[:200]}"}
    try:
        return json.loads(last_line(p.out))
    except json.JSONDecodeError:
        return {"error": f"no JSON on its last line: {last_line(p.out)[:200]}"}


def max_rel_diff(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))) if a.size else 0.0


def p_values_agree(p1, b1, p2, b2):
    """Two bootstrap p-values from independent draws: within 4 binomial standard errors plus one
    replication's step."""
    p = min(max((p1 + p2) / 2, 1e-9), 1 - 1e-9)
    se = np.sqrt(p * (1 - p) * (1 / b1 + 1 / b2))
    return abs(p1 - p2) <= 4 * se + 1 / min(b1, b2), 4 * se + 1 / min(b1, b2)


def peer(tool, ans, status, detail, pb, what):
    """A peer's entry in a row. ans: the peer's JSON answer (its timing) or {"error": why}."""
    e = {"tool": tool, "status": status, "detail": detail, "what": what}
    if "error" in ans:
        e.update(status=CANNOT_RUN, detail=ans["error"])
        return e
    for k in ("seconds", "seconds_min", "seconds_max", "runs", "peak_mb"):
        if k in ans:
            e[k] = ans[k]
    if "seconds" in e and pb and pb.get("seconds"):
        e["ratio"] = e["seconds"] / pb["seconds"]
    return e


def cannot_run(tool, why):
    return {"tool": tool, "status": CANNOT_RUN, "detail": why, "what": ""}


def row(family, case, ladder, ladder_value, size, pb, peers, series=""):
    """series: which line of the family's plot along its ladder the row belongs to, when rows on one
    ladder differ in something else (wild: the grid's B, or the enumeration beside the grid)."""
    pb = {k: v for k, v in pb.items() if k != "json"} if pb else None
    return {"family": family, "case": case, "ladder": ladder, "ladder_value": ladder_value, "size": size,
            "series": series, "panelboot": pb, "peers": peers}


def coef_se_status(pb_coef, pb_se, coef, se, se_comparable=True, coef_tol=COEF_TOL, se_tol=SE_TOL):
    """AGREE / DIFFER for coefficients (coef_tol) and SEs (se_tol, when the peer's SE follows the
    same convention) with the detail the table shows."""
    dc = max_rel_diff(pb_coef, coef)
    if not se_comparable:
        ok = dc <= coef_tol
        return (AGREE if ok else DIFFER), f"coef rel. diff {dc:.1e}; SE another convention (not compared)"
    ds = max_rel_diff(pb_se, se)
    ok = dc <= coef_tol and ds <= se_tol
    return (AGREE if ok else DIFFER), f"coef rel. diff {dc:.1e}, SE {ds:.1e}"


def write_atomically(path, write):
    """write(f) into path's temporary twin, then rename: a killed run leaves no half dataset."""
    tmp = path + ".tmp.csv"
    with open(tmp, "w") as f:
        write(f)
    os.replace(tmp, path)


def dataset(ctx, name, write):
    path = os.path.join(ctx.data, name)
    if not os.path.exists(path):
        ctx.log(f"bench-peers: writing {path}")
        write_atomically(path, write)
    return path


def two_way_panel(units, periods, seed):
    """Unit and period indices, unit and period effects of a balanced panel (the fit and IV DGPs)."""
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(units), periods)
    tt = np.tile(np.arange(periods), units)
    return rng, unit, tt, rng.standard_normal(units), rng.standard_normal(periods)


def save_columns(f, header, cols, int_cols, digits=17):
    """CSV of columns, the first int_cols as integers, the rest with `digits` significant digits
    (17: every double exactly; panelboot and the peers read the same file either way)."""
    f.write(",".join(header) + "\n")
    n = len(cols[0])
    fmt = ["%d"] * int_cols + [f"%.{digits}g"] * (len(cols) - int_cols)
    for b in range(0, n, 500000):
        s = slice(b, min(n, b + 500000))
        np.savetxt(f, np.column_stack([c[s] for c in cols]), fmt=fmt, delimiter=",")


def failed_row(family, case, ladder, ladder_value, size, error):
    """A case whose panelboot run failed: the table says so and the run's exit status is 1."""
    r = row(family, case, ladder, ladder_value, size, None, [])
    r["panelboot_error"] = str(error)
    return r


def coef_and_se_factor_status(pb_coef, pb_se, coef, se, coef_tol=COEF_TOL, se_tol=SE_TOL):
    """For a peer whose SEs follow another small-sample convention: the coefficients must agree
    (coef_tol) and SE_panelboot / SE_peer must be one constant c for every coefficient (within
    se_tol): the same variance up to the convention's scalar factor, which the detail names."""
    dc = max_rel_diff(pb_coef, coef)
    r = np.asarray(pb_se, float) / np.asarray(se, float)
    c = float(np.median(r)) if r.size else float("nan")
    dr = max_rel_diff(r, np.full_like(r, c)) if r.size else 0.0
    ok = dc <= coef_tol and dr <= se_tol
    return (AGREE if ok else DIFFER), (f"coef rel. diff {dc:.1e}; SE another small-sample convention: "
                                       f"SE_panelboot / SE_peer = {c:.6f} for every coefficient (spread {dr:.1e})")
