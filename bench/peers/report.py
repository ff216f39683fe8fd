"""The bench-peers table and summary from its rows (no numpy: scripts/bench-results imports it too).

The statuses a peer's entry has (bench/peers/common.py sets them).
"""
import math, statistics

AGREE, DIFFER, NOT_COMPARABLE, CANNOT_RUN = "agree", "DIFFER", "not comparable", "cannot run"


def fmt_s(x):
    return "-" if x is None else (f"{x:.3g}" if x < 100 else f"{x:,.0f}")


def table(rows):
    out = ["| family | case | panelboot s (median; range) | panelboot MB | peer | peer s (median; range) | peer MB | "
           "peer / panelboot | answers |",
           "|---|---|---:|---:|---|---:|---:|---:|---|"]
    for r in rows:
        pb = r["panelboot"]
        pbs = f"{fmt_s(pb['seconds'])}; {fmt_s(pb['seconds_min'])}-{fmt_s(pb['seconds_max'])}" if pb else "failed"
        pbm = f"{pb['peak_mb']:.0f}" if pb else "-"
        if not pb:
            out.append(f"| {r['family']} | {r['case']} | failed | - | - | - | - | - | panelboot: {r['panelboot_error']} |")
            continue
        for i, e in enumerate(r["peers"] or [{"tool": "-", "status": "", "detail": "no peer", "what": ""}]):
            es = (f"{fmt_s(e['seconds'])}; {fmt_s(e['seconds_min'])}-{fmt_s(e['seconds_max'])}"
                  if "seconds" in e else "-")
            if e.get("extrapolated"):
                es += " (extrapolated)"
            em = f"{e['peak_mb']:.0f}" if "peak_mb" in e else "-"
            ratio = f"{e['ratio']:,.1f}x" if "ratio" in e else "-"
            first = i == 0
            out.append(f"| {r['family'] if first else ''} | {r['case'] if first else '〃'} | {pbs if first else ''} | "
                       f"{pbm if first else ''} | {e['tool']} | {es} | {em} | {ratio} | {e['status']}: {e['detail']} |")
    return out


def summary(rows):
    entries = [e for r in rows for e in r["peers"]]
    count = {s: sum(e["status"] == s for e in entries)
             for s in (AGREE, DIFFER, NOT_COMPARABLE, CANNOT_RUN)}
    ratios = [e["ratio"] for e in entries if e["status"] == AGREE and e.get("ratio")]
    failed = sum(r["panelboot"] is None for r in rows)
    s = {"cases": len(rows), "comparisons": len(entries), **{k.replace(" ", "_").lower(): v for k, v in count.items()},
         "panelboot_failed": failed}
    line = (f"bench-peers: {len(rows)} cases, {len(entries)} peer comparisons: {count[AGREE]} agree, "
            f"{count[DIFFER]} differ, {count[NOT_COMPARABLE]} not comparable, "
            f"{count[CANNOT_RUN]} cannot run")
    if failed:
        line += f"; panelboot failed in {failed} case(s)"
    if ratios:
        geo = math.exp(statistics.fmean(math.log(x) for x in ratios))
        s.update(ratio_median=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
                 ratio_geometric_mean=geo)
        line += (f"; peer / panelboot where they agree: median {statistics.median(ratios):,.1f}x, "
                 f"geometric mean {geo:,.1f}x, range {min(ratios):,.1f}x-{max(ratios):,.1f}x")
    s["line"] = line
    return s
