"""The bench-peers table and summary from its rows (no numpy: scripts/bench-results imports it too).

A peer entry's status (bench/peers/common.py and the families set them):
  agree           the same answer within the stated tolerance; its ratio is a headline figure
  plausible       a Monte Carlo answer from other draws, consistent with panelboot's (power)
  DIFFER          the answers differ: the run exits 1
  not comparable  the peer computes something else (its time is shown, its ratio in parentheses)
  cannot run      by design (what the peer lacks, or a time limit), with the reason
  FAILED          the peer's process broke (not installed, crashed): the run exits 1 unless
                  --allow-peer-failures
"""
import math, statistics

AGREE, PLAUSIBLE, DIFFER = "agree", "plausible", "DIFFER"
NOT_COMPARABLE, CANNOT_RUN, FAILED = "not comparable", "cannot run", "FAILED"
STATUSES = (AGREE, PLAUSIBLE, DIFFER, NOT_COMPARABLE, CANNOT_RUN, FAILED)


def fmt_s(x):
    return "-" if x is None else (f"{x:.3g}" if x < 100 else f"{x:,.0f}")


def fmt_mb(x):
    return "-" if x is None else f"{x:.0f}"


def timing_cell(t):
    cell = f"{fmt_s(t['seconds'])}; {fmt_s(t['seconds_min'])}-{fmt_s(t['seconds_max'])}"
    if t.get("extrapolated"):
        cell += " (extrapolated)"
    if t.get("timed") is False:
        cell += " (one run, answers only)"
    return cell


def ratio_cell(e):
    if "ratio" not in e:
        return "-"
    r = f"{e['ratio']:,.1f}x"
    return r if e["status"] == AGREE else f"({r})"  # only an agreeing answer's ratio is a headline


def case_cell(r):
    pb = r["panelboot"] or {}
    if "threads_1_equal" in pb:
        return f"{r['case']} ({'equal' if pb['threads_1_equal'] else 'NOT EQUAL'} at --threads 1)"
    return r["case"]


def table(rows):
    out = ["| family | case | panelboot s (median; range) | panelboot MB | peer | peer s (median; range) | peer MB | "
           "peer / panelboot | answers |",
           "|---|---|---:|---:|---|---:|---:|---:|---|"]
    for r in rows:
        pb = r["panelboot"]
        if not pb:
            out.append(f"| {r['family']} | {r['case']} | failed | - | - | - | - | - | panelboot: {r['panelboot_error']} |")
            continue
        for i, e in enumerate(r["peers"] or [{"tool": "-", "status": "", "detail": "no peer", "what": ""}]):
            es = timing_cell(e) if "seconds" in e else "-"
            first = i == 0
            out.append(f"| {r['family'] if first else ''} | {case_cell(r) if first else '〃'} | "
                       f"{timing_cell(pb) if first else ''} | {fmt_mb(pb.get('peak_mb')) if first else ''} | "
                       f"{e['tool']} | {es} | {fmt_mb(e.get('peak_mb'))} | {ratio_cell(e)} | "
                       f"{e['status']}: {e['detail']} |")
    return out


def ratio_stats(ratios):
    geo = math.exp(statistics.fmean(math.log(x) for x in ratios))
    return {"median": statistics.median(ratios), "geometric_mean": geo, "min": min(ratios), "max": max(ratios)}


def summary(rows):
    """Counts by status; the ratios where the answers agree and both times were measured (the
    headline), and apart from them the extrapolated ones (agreeing or plausible)."""
    entries = [e for r in rows for e in r["peers"]]
    count = {st: sum(e["status"] == st for e in entries) for st in STATUSES}
    measured = [e["ratio"] for e in entries if e["status"] == AGREE and e.get("ratio") and not e.get("extrapolated")]
    extrapolated = [e["ratio"] for e in entries
                    if e["status"] in (AGREE, PLAUSIBLE) and e.get("ratio") and e.get("extrapolated")]
    failed = sum(r["panelboot"] is None for r in rows)
    unequal = sum(1 for r in rows if r["panelboot"] and r["panelboot"].get("threads_1_equal") is False)
    s = {"cases": len(rows), "comparisons": len(entries), **{k.replace(" ", "_").lower(): v for k, v in count.items()},
         "panelboot_failed": failed, "threads_unequal": unequal}
    line = (f"bench-peers: {len(rows)} cases, {len(entries)} peer comparisons: "
            + ", ".join(f"{count[st]} {st.lower()}" for st in STATUSES))
    if failed:
        line += f"; panelboot failed in {failed} case(s)"
    if unequal:
        line += f"; {unequal} case(s) NOT EQUAL at --threads 1"
    if measured:
        m = s["ratio"] = ratio_stats(measured)
        line += (f"; peer / panelboot where they agree ({len(measured)}): median {m['median']:,.1f}x, "
                 f"geometric mean {m['geometric_mean']:,.1f}x, range {m['min']:,.1f}x-{m['max']:,.1f}x")
    if extrapolated:
        x = s["ratio_extrapolated"] = ratio_stats(extrapolated)
        line += f"; extrapolated peers ({len(extrapolated)}): {x['min']:,.0f}x-{x['max']:,.0f}x"
    s["line"] = line
    return s
