"""scripts/bench-peers' engine (python -m bench.peers) as a user meets it, and its checks on planted values.

Runs in .deps/py-venv (pyfixest is there; linearmodels may not be). The fit family on the quick
ladder, once with R kept off the PATH and --allow-peer-failures (pyfixest must agree and a ratio be
quoted, R's plm must say FAILED, panelboot must give the same JSON at --threads 1, peak memory must
be panelboot's own) and once through a panelboot whose first coefficient is nudged by 1e-6 (the run
must say DIFFER and exit 1); the refusals (exit 2, one line); run_process's peak memory and time
limit; scripts/bench-results' table, RESULTS.md section and plots from the JSON.
"""
import glob, json, os, subprocess, sys, textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from bench.peers import common, report  # noqa: E402

EXE = os.environ.get("PANELBOOT_EXE", os.path.join(ROOT, "build", "panelboot"))


def bench_peers(*args, exe=EXE, env=None):
    return subprocess.run([sys.executable, "-m", "bench.peers", "--exe", exe, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)


# ---- the checks, on planted values

def test_coefficients_and_ses_agree_within_their_tolerances_and_not_beyond():
    b, s = [1.0, -2.0], [0.1, 0.2]
    assert common.coef_se_status(b, s, [1.0 + 5e-9, -2.0], s)[0] == common.AGREE
    assert common.coef_se_status(b, s, [1.0 + 2e-8, -2.0], s)[0] == common.DIFFER
    assert common.coef_se_status(b, s, b, [0.1 * (1 + 5e-7), 0.2])[0] == common.AGREE
    assert common.coef_se_status(b, s, b, [0.1 * (1 + 2e-6), 0.2])[0] == common.DIFFER


def test_another_se_convention_agrees_only_when_one_factor_explains_every_se():
    b, s = [1.0, -2.0, 3.0], [0.1, 0.2, 0.3]
    status, detail = common.coef_and_se_factor_status(b, s, b, [x / 1.02 for x in s], 1.02, "its convention")
    assert status == common.AGREE and "1.02000000" in detail
    assert common.coef_and_se_factor_status(b, s, b, [0.1 / 1.02, 0.2 / 1.02, 0.3 / 1.03], 1.02, "")[0] == common.DIFFER
    # the ratio must be the one the conventions predict, not just any constant
    assert common.coef_and_se_factor_status(b, s, b, [x / 1.03 for x in s], 1.02, "")[0] == common.DIFFER


def test_nothing_to_compare_or_a_missing_value_never_agrees():
    assert common.max_rel_diff([], []) == float("inf")
    assert common.max_rel_diff([1.0, float("nan")], [1.0, 2.0]) == float("inf")
    assert common.coef_se_status([1.0], [0.1], [1.0, 2.0], [0.1, 0.2])[0] == common.DIFFER
    assert common.by_name(["a", "b"], ["b", "c"], [2.0, 3.0])[0] != common.by_name(["a"], ["a"], [1.0])[0]


def test_bootstrap_p_values_agree_within_binomial_error():
    ok, within = common.p_values_agree(0.05, 9999, 0.05 + 0.008, 9999)
    assert ok and within == pytest.approx(4 * (0.054 * 0.946 * 2 / 9999) ** 0.5 + 1 / 9999)
    assert not common.p_values_agree(0.05, 9999, 0.07, 9999)[0]


def test_the_summary_quotes_only_agreeing_measured_ratios_and_keeps_extrapolated_ones_apart():
    entry = lambda status, ratio=None, **kw: dict({"tool": "t", "status": status, "detail": ""},
                                                  **({"ratio": ratio} if ratio else {}), **kw)
    rows = [{"panelboot": {"seconds": 1, "seconds_min": 1, "seconds_max": 1, "peak_mb": 9}, "case": "c", "family": "f",
             "peers": [entry(report.AGREE, 4.0), entry(report.AGREE, 16.0), entry(report.NOT_COMPARABLE, 1000.0),
                       entry(report.AGREE, 900.0, extrapolated=True), entry(report.PLAUSIBLE, 7000.0, extrapolated=True)]},
            {"panelboot": None, "panelboot_error": "x", "peers": [entry(report.CANNOT_RUN), entry(report.FAILED)]}]
    s = report.summary(rows)
    assert (s["agree"], s["plausible"], s["not_comparable"], s["cannot_run"], s["failed"], s["differ"],
            s["panelboot_failed"]) == (3, 1, 1, 1, 1, 0, 1)
    assert s["ratio"]["geometric_mean"] == pytest.approx(8.0) and s["ratio"]["max"] == 16.0
    assert (s["ratio_extrapolated"]["min"], s["ratio_extrapolated"]["max"]) == (900.0, 7000.0)
    assert s["line"].startswith("bench-peers: 2 cases, 7 peer comparisons: 3 agree, 1 plausible, 0 differ")
    lines = report.table(rows[:1])
    assert "| 4.0x | agree" in lines[2] and "| (1,000.0x) | not comparable" in lines[4]


def test_a_broken_peer_fails_the_run_unless_allowed():
    from bench.peers.__main__ import exit_status
    base = {"differ": 0, "panelboot_failed": 0, "threads_unequal": 0, "failed": 0}
    assert exit_status(base, False) == 0
    assert exit_status(dict(base, failed=1), False) == 1 and exit_status(dict(base, failed=1), True) == 0
    assert exit_status(dict(base, differ=1), True) == 1 and exit_status(dict(base, threads_unequal=1), True) == 1


def test_run_process_measures_the_childs_own_peak_and_kills_it_at_its_time_limit():
    ballast = bytearray(300 * 2**20)  # this process's high-water mark: a child must not inherit it
    ballast[::4096] = b"x" * len(ballast[::4096])
    p = common.run_process(["/bin/true"], 60)
    assert p.rc == 0 and p.peak_mb is not None and p.peak_mb < 20, p.peak_mb
    p = common.run_process([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"], 60)
    assert 200 < p.peak_mb < 280, p.peak_mb
    p = common.run_process(["sleep", "30"], 1)
    assert p.timed_out and p.rc == 124 and p.wall < 10
    del ballast


# ---- the run, as a user meets it

@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("peers")
    out = d / "peers.json"
    no_r = d / "bin"          # a PATH without Rscript: R's peer must say FAILED, not stop the run
    no_r.mkdir()
    env = dict(os.environ, PATH=str(no_r))
    p = bench_peers("--quick", "--only", "fit", "--repeats", "1", "--data", str(d / "data"), "--output", str(out),
                    "--allow-peer-failures", env=env)
    return p, out, d


def test_fit_family_runs_checks_and_times_against_pyfixest(fit_run):
    p, out, d = fit_run
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[-1].startswith("bench-peers: 2 cases, 6 peer comparisons:")
    doc = json.loads(out.read_text())
    assert doc["command"] == "bench-peers" and doc["summary"]["line"] == lines[-1]
    assert [r["ladder_value"] for r in doc["rows"]] == [10000, 100000]
    for r in doc["rows"]:
        pb = r["panelboot"]
        assert pb["runs"] == 1 and pb["seconds"] == pb["seconds_min"] == pb["seconds_max"] > 0
        assert 1 < pb["peak_mb"] < 150, pb["peak_mb"]  # panelboot's own, not the driver's
        assert pb["backend"] == "cpu" and pb["threads_1_equal"] is True
        pf = next(e for e in r["peers"] if e["tool"] == "pyfixest")
        assert pf["status"] == report.AGREE, pf["detail"]
        assert pf["ratio"] == pytest.approx(pf["seconds"] / pb["seconds"]) and pf["peak_mb"] > 50
        plm = next(e for e in r["peers"] if e["tool"].startswith("R plm"))
        assert plm["status"] == report.FAILED and "R is not installed" in plm["detail"]
        for e in r["peers"]:  # linearmodels agrees where it is installed; otherwise it broke
            assert e["status"] in (report.AGREE, report.FAILED), e
    assert glob.glob(str(d / "data" / "fit_500x20-*.csv"))


def test_a_panelboot_answer_off_by_1e_6_is_reported_as_differing(tmp_path, fit_run):
    nudged = tmp_path / "panelboot"
    nudged.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, subprocess, sys
        p = subprocess.run([{EXE!r}] + sys.argv[1:], capture_output=True, text=True)
        if p.returncode or "--format" not in sys.argv:
            sys.stdout.write(p.stdout); sys.stderr.write(p.stderr); sys.exit(p.returncode)
        doc = json.loads(p.stdout)
        doc["models"][0]["coefficients"][0]["estimate"] *= 1 + 1e-6
        print(json.dumps(doc))
        """))
    nudged.chmod(0o755)
    out = tmp_path / "peers.json"
    p = bench_peers("--quick", "--only", "fit", "--repeats", "1", "--data", str(fit_run[2] / "data"),
                    "--output", str(out), exe=str(nudged))
    assert p.returncode == 1, p.stderr
    doc = json.loads(out.read_text())
    pf = [e for r in doc["rows"] for e in r["peers"] if e["tool"] == "pyfixest"]
    assert [e["status"] for e in pf] == [report.DIFFER, report.DIFFER]
    ran = [e for r in doc["rows"] for e in r["peers"] if e["status"] not in (report.CANNOT_RUN, report.FAILED)]
    assert all(e["status"] == report.DIFFER for e in ran)  # every peer that ran (R's plm where installed)
    assert "| DIFFER: coef rel. diff 1.0e-06, SE" in p.stdout
    assert f" 0 agree, 0 plausible, {len(ran)} differ," in p.stdout.splitlines()[-1]


@pytest.mark.parametrize("args, needle", [
    (["--only", "fit,bogus"], "--only: unknown family bogus"),
    (["--only", "fit,fit"], "--only: a family is named twice"),
    (["--repeats", "0"], "--repeats: must be in 1..50"),
    (["--timeout", "5"], "--timeout: must be in 10..86400"),
])
def test_usage_errors_exit_2_with_one_message_and_write_nothing(tmp_path, args, needle):
    out = tmp_path / "peers.json"
    p = bench_peers(*args, "--output", str(out), "--data", str(tmp_path / "data"))
    assert p.returncode == 2 and needle in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not out.exists() and not (tmp_path / "data").exists()


def test_a_missing_executable_is_named(tmp_path):
    p = bench_peers("--only", "fit", exe=str(tmp_path / "nope"))
    assert p.returncode == 2 and p.stderr.strip() == (
        f"bench-peers: --exe: '{tmp_path / 'nope'}' is not an executable (build it: scripts/build) (see --help)")


def test_bench_results_makes_the_table_the_section_and_the_plots(tmp_path, fit_run):
    _, out, _ = fit_run
    script = os.path.join(ROOT, "scripts", "bench-results")
    p = subprocess.run([sys.executable, script, "--table", str(out)], capture_output=True, text=True)
    assert p.returncode == 0 and "| fit | two-way FE OLS, k=5, N=10,000" in p.stdout
    md = tmp_path / "RESULTS.md"
    md.write_text("head\n<!-- generated: bench-peers -->\nold\n<!-- end generated: bench-peers -->\ntail\n")
    p = subprocess.run([sys.executable, script, "--update", str(md), str(out)], capture_output=True, text=True)
    text = md.read_text()
    assert p.returncode == 0 and "old" not in text and text.startswith("head\n") and text.endswith("tail\n")
    assert "Generated by `scripts/bench-results`" in text and json.loads(out.read_text())["summary"]["line"] in text
    p = subprocess.run([sys.executable, script, "--plots", str(tmp_path / "fig"), str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    png = (tmp_path / "fig" / "peers-fit.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"command": "bench-peers", "date": "x"}))
    p = subprocess.run([sys.executable, script, "--table", str(bad)], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip() == f"bench-results: '{bad}' lacks \"total_s\""
