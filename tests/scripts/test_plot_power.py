#!/usr/bin/env python3
"""ctest PlotPower.WritesAPngFromPowerJson: scripts/plot-power draws a `panelboot power` study.

    python3 tests/scripts/test_plot_power.py build/panelboot scripts/plot-power

Runs a small study (embedded data, --split region --split devlevel --pooled, crve and wild,
R = 50), plots it, and checks the PNG: its signature, and its size from the IHDR chunk, which
plot-power fixes (6 x 4.5 inch panels at 100 dpi, at most 3 a row, 0.5 inch above and below:
3 panels give 1800 x 550 pixels). Then a JSON that is not power's, and an alpha that is not in
the file: exit status 2 with one line on stderr and no figure. Needs matplotlib
(scripts/install-deps installs it); any failure exits 1 with the reason.
"""
import json, os, sys, tempfile

from pngcheck import fail, png_size, run  # beside this script

FORMULA = "newqua ~ rgzn + urban | province + year"


def expect_error(plot, args, png, what):
    p = run([plot] + args + [png])
    lines = p.stderr.splitlines()
    if p.returncode != 2 or len(lines) != 1 or not lines[0].startswith("plot-power: "):
        fail(f"{what}: expected exit 2 and one line 'plot-power: ...' on stderr, got exit "
             f"{p.returncode}, stderr {p.stderr!r}")
    if os.path.exists(png):
        fail(f"{what}: a figure was written")
    print(f"ok: {what}: {lines[0]}")


def main():
    if len(sys.argv) != 3:
        fail("usage: test_plot_power.py PANELBOOT PLOT_POWER")
    panelboot, plot = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="pb_plot_power_") as tmp:
        js = os.path.join(tmp, "power.json")
        p = run([panelboot, "power", "-f", FORMULA, "--cluster", "province", "--target", "rgzn",
                 "--effects", "0,0.002,0.004", "--split", "region", "--split", "devlevel",
                 "--pooled", "--tests", "crve,wild", "--R", "50", "--format", "json",
                 "--output", js])
        if p.returncode != 0:
            fail(f"panelboot power exited {p.returncode}: {p.stderr.strip()}")
        with open(js) as f:
            splits = {r["split"] for r in json.load(f)["results"]}
        if splits != {"pooled", "region", "devlevel"}:
            fail(f"unexpected splits in the study: {sorted(splits)}")

        png = os.path.join(tmp, "power.png")
        p = run([plot, js, png])
        if p.returncode != 0:
            fail(f"plot-power exited {p.returncode}: {p.stderr.strip()}")
        if not os.path.isfile(png):
            fail("plot-power wrote no figure")
        size = png_size(png)
        if size != (1800, 550):
            fail(f"{png} is {size[0]} x {size[1]} pixels, expected 1800 x 550 (3 panels in a row)")
        if os.path.getsize(png) < 20000:
            fail(f"{png} has only {os.path.getsize(png)} bytes: an empty figure?")
        print(f"ok: {size[0]} x {size[1]} PNG, {os.path.getsize(png)} bytes")

        # the default is the file's first alpha; asking for it explicitly gives the same figure size
        png2 = os.path.join(tmp, "power_alpha.png")
        p = run([plot, js, png2, "--alpha", "0.05", "--title", "test"])
        if p.returncode != 0 or png_size(png2) != size:
            fail(f"plot-power --alpha 0.05 exited {p.returncode}: {p.stderr.strip()}")

        other = os.path.join(tmp, "fit.json")
        with open(other, "w") as f:
            json.dump({"program": "panelboot", "command": "fit", "models": []}, f)
        expect_error(plot, [other], os.path.join(tmp, "bad1.png"), "JSON of fit")
        notjson = os.path.join(tmp, "notjson.txt")
        with open(notjson, "w") as f:
            f.write("effect,rate\n0,0.05\n")
        expect_error(plot, [notjson], os.path.join(tmp, "bad2.png"), "not JSON")
        expect_error(plot, [js, "--alpha", "0.1"], os.path.join(tmp, "bad3.png"),
                     "alpha not in the file")
    print("PASS")


if __name__ == "__main__":
    main()
