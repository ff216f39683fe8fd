"""What a Python user meets: columns read in place, the CLI's errors as exceptions, missing values
as the CLI treats them, Ctrl-C, the GIL released, the bootstrap draws."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pandas as pd
import pytest

import panelboot as pb
from panelboot import _run
from conftest import cli_error, cli_json, random_panel, without_volatile, write_csv

FORMULA = "y ~ x1 + x2 + x3 | unit + period"


def test_float_and_int_columns_are_read_in_place():
    df = random_panel(1)
    r = _run.run("fit", df, {"formula": [FORMULA], "cluster": "g"})
    for name in ("y", "x1", "x2", "x3", "unit", "period", "g"):
        assert r.addresses[name] == df[name].to_numpy().__array_interface__["data"][0], name
    assert "w" not in r.addresses and "z" not in r.addresses  # columns the command does not name stay out
    d = {c: df[c].to_numpy() for c in df.columns}
    r = _run.run("fit", d, {"formula": [FORMULA], "cluster": "g"})
    assert r.addresses["x1"] == d["x1"].__array_interface__["data"][0]


def test_polars_columns_without_nulls_are_read_in_place():
    pl = pytest.importorskip("polars")
    df = pl.from_pandas(random_panel(2))
    r = _run.run("fit", df, {"formula": [FORMULA], "cluster": "g"})
    assert r.addresses["x1"] == df.get_column("x1").to_numpy().__array_interface__["data"][0]


def test_an_unknown_column_raises_the_cli_message_with_the_nearest_name():
    df = random_panel(3)
    with pytest.raises(pb.InputError, match=r"unknown variable 'x4' in pandas DataFrame; did you mean 'x1'\?"):
        pb.fit(df, "y ~ x4 | unit", cluster="g")
    # a column not handed over (not named by the command) is still offered
    with pytest.raises(pb.InputError, match=r"did you mean 'y2'\?"):
        pb.fit(df, "yy2 ~ x1 | unit", cluster="g")
    assert issubclass(pb.InputError, ValueError)


def test_a_text_regressor_raises_as_the_cli_does(tmp_path):
    df = random_panel(4, text_groups=True)
    with pytest.raises(pb.InputError) as e:
        pb.fit(df, "y ~ x1 + gname | unit", cluster="g")
    status, line = cli_error(["fit", "-f", "y ~ x1 + gname | unit", "--cluster", "g"], write_csv(df, tmp_path / "d.csv"))
    assert status == 2
    ours = str(e.value)
    assert "holds text (e.g. 'grp_" in ours and "use i(gname) for dummies" in ours
    assert ours.replace("pandas DataFrame", "F") == line.removeprefix("panelboot: error: ").replace(
        "file '" + str(tmp_path / "d.csv") + "'", "F").replace(str(tmp_path / "d.csv"), "F")


def test_an_infinite_value_is_named_by_its_row():
    df = random_panel(5)
    df.loc[7, "x2"] = np.inf
    with pytest.raises(pb.InputError, match=r"non-finite value 'inf' at pandas DataFrame, row 7 \(x2\)"):
        pb.fit(df, FORMULA, cluster="g")
    pb.fit(df, "y ~ x1 | unit", cluster="g")  # raised only when the column is used, as the CLI does


def test_missing_values_are_dropped_as_the_cli_drops_empty_cells(tmp_path):
    df = random_panel(6, missing=0.1)
    df.loc[3, "unit"] = 0  # keep int64
    df["gf"] = df["g"].astype(float)
    df.loc[[5, 9], "gf"] = np.nan  # a missing cluster
    df["x3n"] = pd.array(df["x3"].to_numpy(), dtype="Float64")
    df.loc[11, "x3n"] = pd.NA
    res = pb.fit(df, "y ~ x1 + x2 + x3n | unit + period", cluster="gf")
    want = cli_json(["fit", "-f", "y ~ x1 + x2 + x3n | unit + period", "--cluster", "gf"], write_csv(df, tmp_path / "d.csv"))
    assert without_volatile(res.to_dict()) == without_volatile(want)
    dropped = res.model["dropped"]["missing_by_variable"]
    assert dropped["gf"] == 2 and dropped["x2"] == int(df["x2"].isna().sum())


def test_option_errors_are_the_cli_option_errors():
    df = random_panel(7)
    with pytest.raises(pb.InputError, match="--B: '0' is not a whole number from 1 to 1000000000000"):
        pb.wild(df, FORMULA, test="x1 = 0", cluster="g", B=0)
    with pytest.raises(pb.InputError, match="unknown option '--weigth-type'.*did you mean '--weight-type'"):
        pb.wild(df, FORMULA, test="x1 = 0", cluster="g", weigth_type="webb")
    with pytest.raises(pb.InputError, match="wild needs --cluster"):
        pb.wild(df, FORMULA, test="x1 = 0")
    with pytest.raises(TypeError):
        pb.fit(df, FORMULA, output="x.json")


def test_warnings_become_python_warnings():
    df = random_panel(8)
    with pytest.warns(pb.PanelbootWarning, match="--B 50 is below 99"):
        pb.wild(df, FORMULA, test="x1 = 0", cluster="g", B=50, ci=False)


@pytest.mark.parametrize("where", [None, "g == 0"])  # 40 units: drawn; 5 units: all 32 sign vectors
def test_kept_draws_give_the_reported_p_value(where):
    df = random_panel(9)
    res = pb.wild(df, FORMULA, test=["x1 = 0.5", "x2 = -0.2"], cluster="unit", B=999, keep_draws=True, where=where)
    assert [t["enumerated"] for t in res.tests] == [where is not None] * 2
    for k, t in enumerate(res.tests):
        d = res.draws[k]
        assert d.shape == (t["n_boot"] // (2 if t["enumerated"] else 1),)
        exceed = np.sum(np.abs(d) > abs(t["t_stat"]) + 1e-10 * abs(t["t_stat"]))
        assert exceed / d.size == pytest.approx(t["p_value"], abs=1e-12)


def test_the_gil_is_released_while_the_engine_runs():
    df = random_panel(10, n_units=300, n_periods=10)
    ticks, run = [], []
    done = threading.Event()

    def boot():
        run.append(time.perf_counter())
        pb.wild(df, FORMULA, test="x1 = 0.5", cluster="unit", B=600000, ci=False, threads=1)
        run.append(time.perf_counter())
        done.set()

    t = threading.Thread(target=boot)
    t.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.01)
    t.join()
    # the main thread kept running Python code all along the engine's run (which is long enough
    # to tell: about 0.5 s on a fast core); with the GIL held it would tick once at most
    during = [x for x in ticks if run[0] < x < run[1]]
    assert run[1] - run[0] > 0.1
    assert len(during) > 0.5 * (run[1] - run[0]) / 0.01


def test_ctrl_c_interrupts_a_long_run_and_the_session_goes_on():
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = {sys.path!r}
        import panelboot as pb
        from conftest import random_panel
        df = random_panel(11, n_units=300, n_periods=10)
        print("ready", flush=True)
        t0 = time.perf_counter()
        try:
            pb.wild(df, "{FORMULA}", test="x1 = 0.5", cluster="unit", B=10**9, ci=False, threads=1)
            print("finished")
        except KeyboardInterrupt:
            print("interrupted after %.1f s" % (time.perf_counter() - t0), flush=True)
        r = pb.fit(df, "{FORMULA}", cluster="unit")
        print("then fit", r.nobs, flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=os.path.dirname(__file__))
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(1.5)
        sent = time.perf_counter()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert time.perf_counter() - sent < 10, "the run did not stop"
    assert p.returncode == 0, err
    assert "interrupted after" in out and "then fit" in out, out + err


def test_a_runs_threads_do_not_outlive_it():
    df = random_panel(12)
    a = pb.wild(df, FORMULA, test="x1 = 0", cluster="g", B=99, threads=1, ci=False)
    b = pb.wild(df, FORMULA, test="x1 = 0", cluster="g", B=99, ci=False)
    assert a.to_dict()["threads"] == 1
    assert b.to_dict()["threads"] == os.cpu_count()


def test_joint_and_several_tests_read_as_the_report(tmp_path):
    df = random_panel(13)
    res = pb.wild(df, FORMULA, test=["x1 = 0", "x2 = 0"], cluster="g", B=99, joint=True)
    t = res.tidy()
    assert t["test"].tolist() == ["wald", "t", "t"]
    assert t["statistic"].iloc[0] == res.tests[0]["f_stat"] and res.t_stat.iloc[0] == res.tests[0]["f_stat"]
    assert list(res.pvalue.index) == [x["hypothesis"] for x in res.tests]


def test_names_in_backticks_are_handed_over(tmp_path):
    df = random_panel(14).rename(columns={"x3": "my var"})
    res = pb.fit(df, "y ~ x1 | unit", cluster="g", where="`my var` > 0")
    want = cli_json(["fit", "-f", "y ~ x1 | unit", "--cluster", "g", "--where", "`my var` > 0"],
                    write_csv(df, tmp_path / "d.csv"))
    assert without_volatile(res.to_dict()) == without_volatile(want)


def test_a_dict_of_lists_with_none_and_numeric_categoricals_read_as_the_cli_reads_them(tmp_path):
    df = random_panel(15, missing=0.1)
    d = {c: df[c].tolist() for c in df.columns}
    d["x2"] = [None if v != v else v for v in d["x2"]]
    res = pb.fit(d, "y ~ x1 + x2 | unit", cluster="g")
    csv = write_csv(df, tmp_path / "d.csv")
    assert without_volatile(res.to_dict()) == without_volatile(cli_json(["fit", "-f", "y ~ x1 + x2 | unit", "--cluster", "g"], csv))
    df2 = df.assign(g=pd.Categorical(df["g"]))
    res = pb.fit(df2, "y ~ x1 | unit", cluster="g", where="g >= 3")
    want = cli_json(["fit", "-f", "y ~ x1 | unit", "--cluster", "g", "--where", "g >= 3"], csv)
    assert without_volatile(res.to_dict()) == without_volatile(want)


def test_inputs_the_package_cannot_take_raise_input_errors():
    df = random_panel(16)
    with pytest.raises(pb.InputError, match="two columns named 'x1'"):
        pb.fit(pd.concat([df, df[["x1"]]], axis=1), FORMULA, cluster="g")
    with pytest.raises(pb.InputError, match="different lengths"):
        pb.fit({"y": [1.0, 2.0, 3.0], "x1": [1.0, 2.0]}, "y ~ x1")
    with pytest.raises(pb.InputError, match="one-dimensional"):
        pb.fit({"y": 1.0, "x1": [1.0]}, "y ~ x1")
    with pytest.raises(pb.InputError, match="shard= writes a shard's partial result"):
        pb.wild(df, FORMULA, test="x1 = 0", cluster="g", shard="1/2")
    with pytest.raises(pb.InputError, match="design= simulates its own data"):
        pb.power(df, effects=[0, 0.1], design="clusters=8,periods=6,obs=48")
    with pytest.raises(pb.InputError, match="^pandas DataFrame has no rows"):
        pb.fit(df.iloc[:0], FORMULA, cluster="g")


def test_threshold_without_replications_has_its_tests_table():
    res = pb.threshold(None, "newqua ~ urban + ind | province", panel=("province", "year"), regime="rgzn",
                       threshold_var="fin", B=0)
    t = res.tests()
    assert t["n_boot"].tolist() == [0] and t["crit95"].isna().all()
