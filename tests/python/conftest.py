"""Shared helpers: the executable of the same build (PANELBOOT_EXE) and random panels."""
import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXE = os.environ.get("PANELBOOT_EXE", os.path.join(ROOT, "build", "panelboot"))
EMBEDDED_CSV = os.path.join(ROOT, "data", "nqpf_synthetic.csv")

# fields of a report that say where the data came from or how long the run took, not its numbers
VOLATILE = {"timing", "data", "data_source"}


def cli_json(args, csv_path=None):
    """`panelboot ARGS --format json` (with --data CSV_PATH), parsed; fails the test on a non-zero exit."""
    cmd = [EXE] + list(args) + ["--format", "json"] + (["--data", csv_path] if csv_path else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def cli_error(args, csv_path=None):
    cmd = [EXE] + list(args) + (["--data", csv_path] if csv_path else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""


def without_volatile(x):
    if isinstance(x, dict):
        return {k: without_volatile(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [without_volatile(v) for v in x]
    return x


def write_csv(df: pd.DataFrame, path) -> str:
    """The frame as a CSV the command line reads back to the same doubles (17 digits)."""
    df.to_csv(path, index=False, float_format="%.17g", na_rep="")
    return str(path)


def random_panel(seed, n_units=40, n_periods=8, n_groups=8, missing=0.0, text_groups=False):
    """A balanced-or-not random panel: unit and period FE, a cluster grouping coarser than units,
    regressors x1..x3, a weight, y with unit and period effects."""
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_periods)
    period = np.tile(np.arange(n_periods), n_units) + 2000
    keep = rng.random(unit.size) > 0.1  # unbalanced
    unit, period = unit[keep], period[keep]
    n = unit.size
    group = (unit * 7919 % n_groups).astype(np.int64)
    x = rng.normal(size=(n, 3)) + rng.normal(size=(n_units, 1))[unit]
    y = (x @ np.array([0.5, -0.25, 1.0]) + rng.normal(size=n_units)[unit] + 0.3 * rng.normal(size=n_periods)[period - 2000]
         + rng.normal(size=n) * (1 + 0.5 * np.abs(x[:, 0])))
    df = pd.DataFrame({"y": y, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "unit": unit.astype(np.int64),
                       "period": period.astype(np.int64), "g": group, "w": rng.uniform(0.5, 2.0, n),
                       "z": x[:, 0] + rng.normal(size=n)})
    df["y2"] = df["y"] + 0.5 * df["z"]
    if missing:
        df.loc[rng.random(n) < missing, "x2"] = np.nan
    if text_groups:
        df["gname"] = np.array(["grp_%02d" % k for k in range(n_groups)])[(group * 5 + 3) % n_groups]
    return df


@pytest.fixture
def nqpf():
    return pd.read_csv(EMBEDDED_CSV)
