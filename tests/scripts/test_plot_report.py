#!/usr/bin/env python3
"""scripts/plot-report draws the figures of a `panelboot replicate` report from its results.json.

    python3 tests/scripts/test_plot_report.py build/panelboot scripts/plot-report

Builds a results.json from a small `panelboot power` study (embedded data, --split region
--split devlevel, crve and wild, R = 50), `panelboot threshold` with and without --time-effects
(B = 20) and a hand-made histogram of bootstrap t*, and runs plot-report on it as replicate does
(`python3 plot-report results.json DIR`). Checks the three PNGs (signature; size from the IHDR
chunk, which plot-report fixes at 100 dpi: lr_gamma.png 1200 x 550 with both threshold variants,
600 x 550 with one; power_curves.png 1200 x 550 for two splits; bootstrap_t.png 600 x 550) and the
stdout lines `figure <file> <caption>`. Then: "threshold": null gives no lr_gamma.png, a line
`skipped lr_gamma.png ...` and exit 0; every section null, three skipped lines and no figure; a
JSON that is not replicate's, exit 2 with one line on stderr and no figure; a matplotlib that
cannot be imported, exit 3 with one line on stderr. Needs matplotlib (scripts/install-deps
installs it); any failure exits 1 with the reason.
"""
import json, os, random, sys, tempfile

from pngcheck import fail, png_size, run  # beside this script

POWER_FORMULA = "newqua ~ rgzn + urban | province + year"
THRESHOLD_FORMULA = "newqua ~ rgzn + urban + ind + fdi + open | province"
FIGURES = ("lr_gamma.png", "power_curves.png", "bootstrap_t.png")


def panelboot_json(panelboot, args, path):
    p = run([panelboot] + args + ["--format", "json", "--output", path])
    if p.returncode != 0:
        fail(f"panelboot {args[0]} exited {p.returncode}: {p.stderr.strip()}")
    with open(path) as f:
        return json.load(f)


def histogram():
    """Counts of 9,999 draws of t* in 40 bins of width 0.25 on [-5, 5]."""
    rng = random.Random(20250101)
    edges = [-5 + 0.25 * i for i in range(41)]
    counts = [0] * 40
    for _ in range(9999):
        i = int((rng.gauss(0, 1.1) + 5) / 0.25)
        if 0 <= i < 40:
            counts[i] += 1
    return {"edges": edges, "counts": counts}


def report(tmp, name, doc, plot, how="python3", env=None):
    """Writes doc as results.json in a fresh folder, runs plot-report there."""
    d = os.path.join(tmp, name)
    os.mkdir(d)
    js = os.path.join(d, "results.json")
    with open(js, "w") as f:
        json.dump(doc, f)
    # replicate runs `python3 plot-report`; a user runs it through its #! line
    cmd = [sys.executable, plot] if how == "python3" else [plot]
    return d, run(cmd + [js, d], env=env)


def figures_in(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".png"))


def check_drawn(what, d, p, sizes):
    """Exit 0; a `figure` line per expected file, in order, and a `skipped` line for the others;
    each expected PNG with its size, and no other."""
    if p.returncode != 0:
        fail(f"{what}: plot-report exited {p.returncode}: {p.stderr.strip()}")
    lines = p.stdout.splitlines()
    if len(lines) != len(FIGURES):
        fail(f"{what}: expected {len(FIGURES)} lines on stdout, got {p.stdout!r}")
    for name, line in zip(FIGURES, lines):
        word = "figure" if name in sizes else "skipped"
        parts = line.split(" ", 2)
        if len(parts) != 3 or parts[0] != word or parts[1] != name or not parts[2].strip():
            fail(f"{what}: expected a line '{word} {name} <text>', got {line!r}")
    if figures_in(d) != sorted(sizes):
        fail(f"{what}: figures written {figures_in(d)}, expected {sorted(sizes)}")
    for name, want in sizes.items():
        png = os.path.join(d, name)
        size = png_size(png)
        if size != want:
            fail(f"{what}: {name} is {size[0]} x {size[1]} pixels, expected {want[0]} x {want[1]}")
        if os.path.getsize(png) < 15000:
            fail(f"{what}: {name} has only {os.path.getsize(png)} bytes: an empty figure?")
        print(f"ok: {what}: {name} {size[0]} x {size[1]}, {os.path.getsize(png)} bytes")
    return lines


def expect_error(what, d, p, status, start):
    lines = p.stderr.splitlines()
    if p.returncode != status or len(lines) != 1 or not lines[0].startswith(start):
        fail(f"{what}: expected exit {status} and one line '{start}...' on stderr, got exit "
             f"{p.returncode}, stderr {p.stderr!r}")
    if figures_in(d):
        fail(f"{what}: figures were written: {figures_in(d)}")
    if p.stdout:
        fail(f"{what}: stdout is not empty: {p.stdout!r}")
    print(f"ok: {what}: exit {status}: {lines[0]}")


def main():
    if len(sys.argv) != 3:
        fail("usage: test_plot_report.py PANELBOOT PLOT_REPORT")
    panelboot, plot = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="pb_plot_report_") as tmp:
        power = panelboot_json(panelboot, [
            "power", "-f", POWER_FORMULA, "--cluster", "province", "--target", "rgzn",
            "--effects", "0,0.002,0.004", "--split", "region", "--split", "devlevel",
            "--tests", "crve,wild", "--R", "50"], os.path.join(tmp, "power.json"))
        if not isinstance(power.get("full_sample_estimate"), float):
            fail("the power JSON has no full_sample_estimate")
        threshold = ["threshold", "-f", THRESHOLD_FORMULA, "--panel", "province,year",
                     "--regime", "fin", "--threshold-var", "fin", "--B", "20"]
        hansen = panelboot_json(panelboot, threshold, os.path.join(tmp, "hansen.json"))
        two_way = panelboot_json(panelboot, threshold + ["--time-effects"],
                                 os.path.join(tmp, "two_way.json"))
        for t in (hansen, two_way):
            if not t["lr_curve"]["gamma"] or not isinstance(t.get("c95"), float):
                fail("the threshold JSON has no LR curve or no c95")
        doc = {"program": "panelboot", "command": "replicate", "version": "test",
               "simulated_data": True, "data_source": "<embedded>", "power": power,
               "threshold": {"hansen": hansen, "two_way": two_way},
               "baseline_bootstrap": {"variable": "rgzn", "spec": "table5_2", "t_stat": 3.1,
                                      "df": 29, "n_boot": 9999, "method": "WCR",
                                      "weight_type": "rademacher", "enumerated": False,
                                      "histogram": histogram()}}

        d, p = report(tmp, "full", doc, plot)
        lines = check_drawn("all sections", d, p, {"lr_gamma.png": (1200, 550),
                                                   "power_curves.png": (1200, 550),
                                                   "bootstrap_t.png": (600, 550)})
        for line, words in zip(lines, (("Hansen (1999), one-way FE", "two-way FE"),
                                       ("rgzn", "full-sample estimate"),
                                       ("rgzn", "WCR", "9999", "t(29)"))):
            missing = [w for w in words if w not in line]
            if missing:
                fail(f"the caption {line!r} does not mention {missing}")

        one = dict(doc, threshold={"hansen": hansen, "two_way": None})
        d, p = report(tmp, "hansen_only", one, plot)
        check_drawn("threshold.two_way null", d, p, {"lr_gamma.png": (600, 550),
                                                     "power_curves.png": (1200, 550),
                                                     "bootstrap_t.png": (600, 550)})

        d, p = report(tmp, "no_threshold", dict(doc, threshold=None), plot, how="#!")
        check_drawn("threshold null", d, p, {"power_curves.png": (1200, 550),
                                             "bootstrap_t.png": (600, 550)})

        none = dict(doc, power=None, threshold=None, baseline_bootstrap=None)
        d, p = report(tmp, "none", none, plot)
        check_drawn("every section null", d, p, {})

        d, p = report(tmp, "power_json", dict(doc, command="power"), plot)
        expect_error("command power", d, p, 2, "plot-report: ")
        nocmd = {k: v for k, v in doc.items() if k != "command"}
        d, p = report(tmp, "no_command", nocmd, plot)
        expect_error("no command", d, p, 2, "plot-report: ")
        bad = dict(doc, baseline_bootstrap=dict(doc["baseline_bootstrap"],
                                                histogram={"edges": [0, 1], "counts": [1, 2]}))
        d, p = report(tmp, "bad_histogram", bad, plot)
        expect_error("malformed histogram", d, p, 2, "plot-report: ")

        # a matplotlib that fails to import, ahead of the real one (/usr/bin/python3 too)
        fake = os.path.join(tmp, "fake")
        os.makedirs(os.path.join(fake, "matplotlib"))
        with open(os.path.join(fake, "matplotlib", "__init__.py"), "w") as f:
            f.write("raise ImportError('blocked by test_plot_report.py')\n")
        env = dict(os.environ, PYTHONPATH=fake)
        d, p = report(tmp, "no_matplotlib", doc, plot, env=env)
        expect_error("no matplotlib", d, p, 3, "plot-report: matplotlib is not available (")
    print("PASS")


if __name__ == "__main__":
    main()
