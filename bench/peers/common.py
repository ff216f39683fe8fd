"""What every bench-peers family shares: running a process and measuring it, the peers' prelude,
agreement checks, seeded datasets and the row every family reports.

A row (one case) is
    {"family", "case", "ladder", "ladder_value", "series", "size": {...},
     "panelboot": {"seconds", "seconds_min", "seconds_max", "runs", "peak_mb", "what", "command",
                   "backend", "threads_1_equal", ...},
     "peers": [{"tool", "status", "detail", "seconds", "seconds_min", "seconds_max", "runs", "peak_mb",
                "what", "ratio", "extrapolated"}]}
status: one of bench/peers/report.py's STATUSES. "ratio" is the peer's median seconds (or its
extrapolated seconds) over panelboot's median, set whenever the peer ran; the summary's headline
takes it only from agreeing, measured entries.
"""
import hashlib, inspect, json, os, shlex, signal, statistics, subprocess, tempfile, threading, time
from dataclasses import dataclass, field

import numpy as np

from .options import ROOT  # noqa: F401 (the repository; the families use common.ROOT)
from .report import AGREE, PLAUSIBLE, DIFFER, NOT_COMPARABLE, CANNOT_RUN, FAILED  # noqa: F401 (common.X)

COEF_TOL, SE_TOL = 1e-8, 1e-6
GNU_TIME = "/usr/bin/time"  # Debian's `time`: the peak RSS of the process it starts


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
    backend: str = "cpu"  # panelboot --backend
    log: callable = print
    versions: dict = field(default_factory=dict)


@dataclass
class Proc:
    rc: int
    wall: float
    peak_mb: float      # None where GNU time is not installed
    out: str
    err: str
    timed_out: bool = False


def run_process(cmd, timeout, env=None, peak=True):
    """Runs cmd to the end, or kills its process group after timeout seconds (timed_out, rc 124):
    wall time, peak RSS, stdout and stderr. The peak comes from GNU time wrapped around cmd: a
    child's own ru_maxrss starts from its parent's high-water mark (Linux carries it over exec),
    so bench-peers' size would floor every figure; time's child starts from time's few MB. With
    peak=False cmd runs alone (peak_mb None): GNU time's own start adds about a millisecond to the
    wall time, which matters for a process of 15 ms."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        with_time = peak and os.access(GNU_TIME, os.X_OK)
        wrapped = ([GNU_TIME, "-f", "%M", "-o", rss.name] if with_time else []) + list(cmd)
        t0 = time.perf_counter()
        p = subprocess.Popen(wrapped, stdout=out, stderr=err, env=env, start_new_session=True)
        killed = []

        def kill_group():
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

        def on_timeout():
            killed.append(True)
            kill_group()
        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            _, status, _ = os.wait4(p.pid, 0)
        except BaseException:  # Ctrl-C or a kill of bench-peers: its peer (own session) goes too
            kill_group()
            os.wait4(p.pid, 0)
            raise
        finally:
            timer.cancel()
            kill_group()       # anything the peer left running in its group
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        timed_out = bool(killed) and p.returncode != 0
        out.seek(0)
        err.seek(0)
        return Proc(124 if timed_out else p.returncode, wall, peak_of(rss.name, with_time),
                    out.read(), without_time_notes(err.read()), timed_out)


def peak_of(path, with_time):
    """GNU time's %M (KiB) from its -o file: the last line (a "Command exited..." note may precede it)."""
    if not with_time:
        return None
    try:
        lines = [l for l in open(path).read().splitlines() if l.strip()]
        return int(lines[-1]) / 1024 if lines else None
    except (OSError, ValueError):
        return None


def without_time_notes(err):
    return "\n".join(l for l in err.splitlines() if not l.startswith("Command exited with non-zero status"))


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""


def spread(seconds):
    s = sorted(seconds)
    return {"seconds": statistics.median(s), "seconds_min": s[0], "seconds_max": s[-1], "runs": len(s)}


class PanelbootFailed(RuntimeError):
    pass


# A panelboot process under SHORT_PROCESS seconds is timed alone (GNU time's own start adds about
# 1 ms to a 15 ms process), at least SHORT_PROCESS_RUNS times where more than one run was asked
# for (three runs of a 15 ms process spread 15-29 ms on the 2-vCPU VM); a longer one under GNU time.
SHORT_PROCESS, SHORT_PROCESS_RUNS = 0.1, 11


def checked_panelboot_run(cmd, ctx, peak):
    p = run_process(cmd, ctx.timeout, peak=peak)
    if p.rc != 0:
        raise PanelbootFailed(f"`{shlex.join(cmd)}` exited {p.rc}: {last_line(p.err)}")
    try:
        doc = json.loads(p.out)
    except json.JSONDecodeError as e:
        raise PanelbootFailed(f"`{shlex.join(cmd)}` printed no JSON: {e}") from None
    return p, doc


def panelboot(ctx, args, what="whole process: start, CSV read, fit and inference", repeats=None, threads=None):
    """panelboot as a whole process, repeats times: the median and range of their wall times, the
    largest peak RSS, the JSON of the last run. The first run is under GNU time; where it took
    under SHORT_PROCESS, it gives only the peak RSS and the timed runs (SHORT_PROCESS_RUNS of
    them, where more than one was asked for) run alone. Raises PanelbootFailed with its stderr's
    last line."""
    cmd = [ctx.exe] + list(args) + ["--format", "json", "--threads", str(threads or ctx.threads),
                                    "--backend", ctx.backend]
    runs = repeats or ctx.repeats
    first, doc = checked_panelboot_run(cmd, ctx, peak=True)
    peaks = [first.peak_mb]
    short = first.wall < SHORT_PROCESS
    walls = [] if short else [first.wall]
    if short and runs > 1:
        runs = max(runs, SHORT_PROCESS_RUNS)
    while len(walls) < runs:
        p, doc = checked_panelboot_run(cmd, ctx, peak=not short)
        walls.append(p.wall)
        if not short:
            peaks.append(p.peak_mb)
    peak = None if None in peaks else max(peaks)
    return dict(spread(walls), peak_mb=peak, what=what, command=shlex.join(cmd), backend=doc.get("backend"),
                json=doc)


def without_timing(doc):
    """The JSON with every field that may differ between equal runs taken out (times, threads)."""
    if isinstance(doc, dict):
        return {k: without_timing(v) for k, v in doc.items() if k not in ("timing", "threads", "command_line")}
    if isinstance(doc, list):
        return [without_timing(v) for v in doc]
    return doc


def check_threads(ctx, args, pb):
    """panelboot again with --threads 1: the same JSON bit for bit (times and the thread count
    aside) is the engine's promise; the row records it and the run fails where it breaks."""
    if ctx.threads == 1:
        return
    one = panelboot(ctx, args, repeats=1, threads=1)
    pb["threads_1_equal"] = without_timing(one["json"]) == without_timing(pb["json"])
    pb["threads_1_seconds"] = one["seconds"]


# Every Python peer snippet starts with this: measure(fn) calls fn once untimed (imports, numba's
# compilation, caches), then `repeats` times; emit() prints the JSON line (run_peer adds the peak RSS).
PY_PRELUDE = r"""
import json, os, statistics, sys, time, warnings
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
  v <- ifelse(is.finite(x), sprintf("%.17g", x), "null")  # NA, NaN, Inf: JSON null (then no agreement)
  if (length(x) == 1) v else paste0("[", paste(v, collapse = ","), "]") }
emit <- function(fields) {
  parts <- vapply(names(fields), function(k) sprintf('"%s": %s', k, json_num(fields[[k]])), "")
  cat("{", paste(parts, collapse = ", "), "}\n")
}
"""


def run_peer(ctx, code, args, timeout=None, repeats=None):
    """A Python peer snippet in its own process: its JSON line with the process's peak RSS, or
    {"error": why} ("timeout": True when it ran out of time)."""
    env = dict(os.environ, BENCH_PEERS_REPEATS=str(repeats or ctx.repeats))
    p = run_process([ctx.python, "-c", PY_PRELUDE + code] + [str(a) for a in args], timeout or ctx.timeout, env)
    return peer_answer(p, timeout or ctx.timeout)


def run_r(ctx, code, args, timeout=None, repeats=None):
    if not ctx.rscript:
        return {"error": "R is not installed (Rscript not found; scripts/bench-peers installs r-base-core)"}
    env = dict(os.environ, BENCH_PEERS_REPEATS=str(repeats or ctx.repeats))
    p = run_process([ctx.rscript, "-e", R_PRELUDE + code] + [str(a) for a in args], timeout or ctx.timeout, env)
    return peer_answer(p, timeout or ctx.timeout)


def error_line(err):
    """The line of a peer's stderr that says what broke: R's "Error ..." or Python's last line."""
    lines = [l for l in err.strip().splitlines() if l.strip()]
    first_error = next((l for l in lines if l.startswith("Error")), None)
    return (first_error or (lines[-1] if lines else "no message"))[:200]


def peer_answer(p, timeout):
    if p.timed_out:
        return {"error": f"did not finish in {timeout} s", "timeout": True}
    if p.rc != 0:
        return {"error": f"exit {p.rc}: {error_line(p.err)}"}
    try:
        ans = json.loads(last_line(p.out))
    except json.JSONDecodeError:
        return {"error": f"no JSON on its last line: {last_line(p.out)[:200]}"}
    ans["peak_mb"] = p.peak_mb
    return ans


def max_rel_diff(a, b):
    """max |a - b| / |b|; infinite for nothing to compare, unequal lengths, or a NaN / None."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.size == 0:
        return float("inf")
    d = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
    return float("inf") if np.isnan(d).any() else float(np.max(d))


def p_values_agree(p1, b1, p2, b2):
    """Two bootstrap p-values from independent draws: within 4 binomial standard errors plus one
    replication's step."""
    p = min(max((p1 + p2) / 2, 1e-9), 1 - 1e-9)
    se = np.sqrt(p * (1 - p) * (1 / b1 + 1 / b2))
    return abs(p1 - p2) <= 4 * se + 1 / min(b1, b2), 4 * se + 1 / min(b1, b2)


def peer(tool, ans, status, detail, pb, what):
    """A peer's entry in a row. ans: the peer's JSON answer (its timing) or {"error": why}: then
    FAILED (its process broke), or "cannot run" when it ran out of time."""
    e = {"tool": tool, "status": status, "detail": detail, "what": what}
    if "error" in ans:
        e.update(status=CANNOT_RUN if ans.get("timeout") else FAILED, detail=ans["error"])
        return e
    for k in ("seconds", "seconds_min", "seconds_max", "runs", "peak_mb", "extrapolated"):
        if ans.get(k) is not None:
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


def coef_se_status(pb_coef, pb_se, coef, se, coef_tol=COEF_TOL, se_tol=SE_TOL):
    """AGREE / DIFFER for coefficients (coef_tol) and SEs of the same convention (se_tol), with the
    detail the table shows."""
    dc, ds = max_rel_diff(pb_coef, coef), max_rel_diff(pb_se, se)
    ok = dc <= coef_tol and ds <= se_tol
    return (AGREE if ok else DIFFER), f"coef rel. diff {dc:.1e}, SE {ds:.1e}"


def write_atomically(path, write):
    """write(f) into path's temporary twin (this process's own), then rename: a killed run leaves no
    half dataset, and two runs at once do not write into one file."""
    tmp = f"{path}.{os.getpid()}.tmp.csv"
    try:
        with open(tmp, "w") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def dataset(ctx, name, write):
    """The dataset `name` (its parameters in the name) written once by write(f); the name also
    carries a hash of the writer's code, so a changed DGP writes a new file instead of reusing the
    old one."""
    code = inspect.getsource(write) + repr([c.cell_contents for c in (write.__closure__ or ())
                                            if isinstance(c.cell_contents, (int, float, str, tuple))])
    stem, ext = os.path.splitext(name)
    path = os.path.join(ctx.data, f"{stem}-{hashlib.sha1(code.encode()).hexdigest()[:8]}{ext}")
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


def coef_and_se_factor_status(pb_coef, pb_se, coef, se, expected, convention, coef_tol=COEF_TOL, se_tol=SE_TOL):
    """For a peer whose SEs follow another small-sample convention: the coefficients must agree
    (coef_tol) and SE_panelboot / SE_peer must equal `expected`, the square root of the ratio of the
    two conventions' factors, for every coefficient (se_tol)."""
    dc = max_rel_diff(pb_coef, coef)
    r = np.asarray(pb_se, float) / np.asarray(se, float) if len(pb_se) == len(se) else np.array([])
    dr = max_rel_diff(r, np.full_like(r, expected))
    ok = dc <= coef_tol and dr <= se_tol
    return (AGREE if ok else DIFFER), (f"coef rel. diff {dc:.1e}; SE: {convention}, so SE_panelboot / SE_peer "
                                       f"should be {expected:.8f} for every coefficient: rel. diff {dr:.1e}")


def by_name(names, ans_names, values):
    """values (the peer's, in ans_names' order) in panelboot's order of names; NaN where missing."""
    d = dict(zip(ans_names, values))
    return [d.get(k, float("nan")) for k in names]
