"""Every entry point gives the command line's report on the same data, to the last bit (the same
engine reads the frame in place); only the data's name and the timings differ."""
import numpy as np
import pandas as pd
import pytest

import panelboot as pb
from conftest import EMBEDDED_CSV, cli_json, random_panel, without_volatile, write_csv

FIT_CASES = [
    dict(formula="newqua ~ rgzn + urban + ind | province + year", cluster="province"),
    dict(formula="newqua ~ rgzn + urban | province + year", vcov="hetero"),
    dict(formula="newqua ~ rgzn + urban | province + year", vcov="iid"),
    dict(formula="newqua ~ rgzn + urban | province + year", cluster=["province", "year"], multiway_adj="each"),
    dict(formula="newqua ~ rgzn + urban | province + year", vcov={"CRV1": "province+year"}),
    dict(formula="newqua ~ rgzn + urban | province + year", cluster="province", dof_fe="all", small=False),
    dict(formula="newqua ~ rgzn + i(region) + I(urban^2) | year", cluster="province", where='year >= 2014'),
    dict(formula="newqua ~ rgzn + urban | province + year", cluster="province", weights="tec"),
    dict(formula="newqua ~ urban | province + year | rgzn ~ tec + fin", cluster="province"),
    dict(formula="newqua ~ rgzn + l(urban, 1) | province + year", vcov="dk", panel="province,year", dk_lag=2),
]

CLI_OF = {"cluster": "--cluster", "vcov": "--vcov", "multiway_adj": "--multiway-adj", "dof_fe": "--dof-fe",
          "small": "--small", "where": "--where", "weights": "--weights", "panel": "--panel", "dk_lag": "--dk-lag"}
VCOV_CLI = {"hetero": "hc1", "iid": "iid", "dk": "dk"}


def cli_args_of(case):
    args = ["-f", case["formula"]]
    for k, v in case.items():
        if k == "formula":
            continue
        if k == "vcov" and isinstance(v, dict):
            args += ["--vcov", "cluster", "--cluster", list(v.values())[0].replace("+", ",")]
        elif k == "vcov":
            args += ["--vcov", VCOV_CLI[v]]
        elif k == "cluster":
            args += ["--cluster", v if isinstance(v, str) else ",".join(v)]
        elif k == "small":
            args += ["--small", "yes" if v else "no"]
        else:
            args += [CLI_OF[k], str(v)]
    return args


@pytest.mark.parametrize("case", FIT_CASES, ids=[c["formula"][:40] + "/" + str(i) for i, c in enumerate(FIT_CASES)])
def test_fit_equals_cli(nqpf, case):
    kw = {k: v for k, v in case.items() if k != "formula"}
    res = pb.fit(nqpf, case["formula"], **kw)
    want = cli_json(["fit"] + cli_args_of(case), EMBEDDED_CSV)
    assert without_volatile(res.to_dict()) == without_volatile(want)
    # the pyfixest-style accessors read the same numbers
    m = want["models"][0]
    assert list(res.coef().index) == [c["name"] for c in m["coefficients"]]
    np.testing.assert_array_equal(res.se().to_numpy(), [c["std_error"] for c in m["coefficients"]])
    np.testing.assert_array_equal(res.vcov().to_numpy(), np.array(m["vcov_matrix"]))


def test_fit_summary_is_the_cli_text(nqpf):
    res = pb.fit(nqpf, "newqua ~ rgzn + urban | province + year", cluster="province")
    import subprocess
    from conftest import EXE
    text = subprocess.run([EXE, "fit", "-f", "newqua ~ rgzn + urban | province + year", "--cluster", "province",
                           "--data", EMBEDDED_CSV], capture_output=True, text=True).stdout
    assert res.summary().replace("pandas DataFrame", "X") == text.replace(EMBEDDED_CSV, "X")


def test_several_formulas_give_one_result_each(nqpf):
    res = pb.fit(nqpf, ["newqua ~ rgzn | province + year", "newqua ~ rgzn + urban | province + year"],
                 cluster="province")
    assert [r.formula for r in res] == ["newqua ~ rgzn | province + year", "newqua ~ rgzn + urban | province + year"]
    assert list(res[1].coef().index) == ["rgzn", "urban"]


@pytest.mark.parametrize("seed", [11, 12])
def test_random_panel_with_text_clusters_and_missing_values_equals_cli(tmp_path, seed):
    df = random_panel(seed, missing=0.05, text_groups=True)
    df["cat"] = pd.Categorical(df["gname"], categories=sorted(df["gname"].unique(), reverse=True))
    csv = write_csv(df, tmp_path / "d.csv")
    for cl in ("gname", "cat", "g"):
        res = pb.fit(df, "y ~ x1 + x2 + x3 | unit + period", cluster=cl)
        want = cli_json(["fit", "-f", "y ~ x1 + x2 + x3 | unit + period", "--cluster", cl], csv)
        assert without_volatile(res.to_dict()) == without_volatile(want), cl


WILD_CASES = [
    dict(test="rgzn = 0.002", B=999),
    dict(test=["rgzn = 0.002", "urban = 0.5"], B=499, impose_null=False, weight_type="webb"),
    dict(test=["rgzn = 0", "urban = 0"], B=299, joint=True, ci=False),
    dict(test="rgzn = 0.002", B=4999, where='region == "East"'),  # 11 clusters: enumerated
    dict(test="rgzn = 0.002", B=999, cluster="none"),
]


@pytest.mark.parametrize("case", WILD_CASES, ids=[str(i) for i in range(len(WILD_CASES))])
def test_wild_equals_cli(nqpf, case):
    formula = "newqua ~ rgzn + urban | province + year"
    kw = dict(case)
    kw.setdefault("cluster", "province")
    res = pb.wild(nqpf, formula, seed=7, **kw)
    args = ["wild", "-f", formula, "--seed", "7", "--cluster", kw["cluster"], "--B", str(kw["B"])]
    for t in [kw["test"]] if isinstance(kw["test"], str) else kw["test"]:
        args += ["--test", t]
    if "impose_null" in kw:
        args += ["--impose-null", "no"]
    if "weight_type" in kw:
        args += ["--weight-type", kw["weight_type"]]
    if kw.get("joint"):
        args += ["--joint"]
    if kw.get("ci") is False:
        args += ["--no-ci"]
    if "where" in kw:
        args += ["--where", kw["where"]]
    want = cli_json(args, EMBEDDED_CSV)
    assert without_volatile(res.to_dict()) == without_volatile(want)


def test_fit_then_wild_equals_direct_wild(nqpf):
    f = pb.fit(nqpf, "newqua ~ rgzn + urban | province + year", cluster="province", where="year > 2011")
    a = f.wild(test="urban = 0.5", B=999, seed=3)
    b = pb.wild(nqpf, "newqua ~ rgzn + urban | province + year", test="urban = 0.5", cluster="province",
                where="year > 2011", B=999, seed=3)
    assert without_volatile(a.to_dict()) == without_volatile(b.to_dict())
    assert a.pvalue == b.tests[0]["p_value"] and a.n_boot == 999 and a.enumerated is False
    assert a.confint == (b.tests[0]["ci_low"], b.tests[0]["ci_high"])


def test_threshold_equals_cli(nqpf):
    res = pb.threshold(nqpf, "newqua ~ urban + ind | province", panel="province,year", regime="rgzn",
                       threshold_var="fin", thresholds=2, B=50, seed=5)
    want = cli_json(["threshold", "-f", "newqua ~ urban + ind | province", "--panel", "province,year", "--regime",
                     "rgzn", "--threshold-var", "fin", "--thresholds", "2", "--B", "50", "--seed", "5"], EMBEDDED_CSV)
    assert without_volatile(res.to_dict()) == without_volatile(want)
    assert list(res.tests().index) == [1, 2]
    assert res.thresholds == want["models"][-1]["gammas"] and len(res.thresholds) == 2
    assert res.coef().to_dict() == {c["name"]: c["estimate"] for c in want["models"][-1]["coefficients"]}


def test_power_equals_cli(nqpf):
    res = pb.power(nqpf, "newqua ~ rgzn + urban | province + year", target="rgzn", effects=[0, 0.002],
                   cluster="province", split="region", R=40, seed=9, tests="crve,wild", wild_B=99)
    want = cli_json(["power", "-f", "newqua ~ rgzn + urban | province + year", "--target", "rgzn", "--effects",
                     "0,0.002", "--cluster", "province", "--split", "region", "--R", "40", "--seed", "9",
                     "--tests", "crve,wild", "--wild-B", "99"], EMBEDDED_CSV)
    assert without_volatile(res.to_dict()) == without_volatile(want)
    t = res.tidy()
    assert len(t) == 3 * 2 * 2 and set(t["group"]) == {"Central", "East", "West"}


def test_polars_and_dict_inputs_give_the_pandas_result(nqpf):
    pl = pytest.importorskip("polars")
    formula = "newqua ~ rgzn + urban | province + year"
    a = pb.wild(nqpf, formula, test="rgzn = 0.002", cluster="province", B=199, seed=2)
    b = pb.wild(pl.from_pandas(nqpf), formula, test="rgzn = 0.002", cluster="province", B=199, seed=2)
    d = {c: nqpf[c].to_numpy() for c in nqpf.columns}
    c = pb.wild(d, formula, test="rgzn = 0.002", cluster="province", B=199, seed=2)
    e = pb.wild(EMBEDDED_CSV, formula, test="rgzn = 0.002", cluster="province", B=199, seed=2)
    ref = without_volatile(a.to_dict())
    assert without_volatile(b.to_dict()) == ref
    assert without_volatile(c.to_dict()) == ref
    assert without_volatile(e.to_dict()) == ref


@pytest.mark.parametrize("fmt", ["md", "tex", "text"])
@pytest.mark.parametrize("formulas,options", [
    (["newqua ~ rgzn | province + year", "newqua ~ rgzn + urban | year"], dict(cluster="province,year")),
    (["newqua ~ rgzn", "newqua ~ rgzn + urban | year"], dict(vcov="hetero")),
    (["newqua ~ rgzn + urban | province + year", "newqua ~ urban | province + year | rgzn ~ tec + fin"],
     dict(cluster="province")),
])
def test_etable_is_the_cli_side_by_side_table(nqpf, fmt, formulas, options):
    import subprocess
    from conftest import EXE
    models = [pb.fit(nqpf, f, **options) for f in formulas]  # fitted one by one, put together
    args = [EXE, "fit", "--data", EMBEDDED_CSV, "--format", {"md": "markdown", "tex": "latex", "text": "text"}[fmt]]
    for f in formulas:
        args += ["-f", f]
    for k, v in options.items():
        args += ["--" + k, {"hetero": "hc1"}.get(v, v)]
    cli = subprocess.run(args, capture_output=True, text=True).stdout
    table = pb.etable(models, type=fmt)
    start = {"md": lambda: cli.index("|  | (1)"), "tex": lambda: cli.index("\\begin{tabular}"),
             "text": lambda: cli.index("== Side by side ==\n") + len("== Side by side ==\n")}[fmt]()
    assert cli[start:] == table  # character for character, the note included
    df = pb.etable(models, type="df")
    assert list(df.columns) == ["(1)", "(2)"] and df.loc["Observations"].tolist() == ["360", "360"]
