"""Result objects: the command line's JSON report, read the way pyfixest users read results."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

# pyfixest's names for the coefficient table's columns
_TIDY = {"estimate": "Estimate", "std_error": "Std. Error", "t_stat": "t value", "p_value": "Pr(>|t|)"}


class Text(str):
    """A report: a str that shows as the text itself (in a notebook and at the prompt)."""

    def __repr__(self) -> str:
        return str(self)


class _Report:
    """A command's report: its JSON (to_dict) and its text (summary)."""

    def __init__(self, report: dict, text: str):
        self._r = report
        self._text = text

    def summary(self) -> Text:
        """The command line's text report."""
        return Text(self._text)

    def to_dict(self) -> dict:
        """The command line's JSON report (`--format json`): the field names of README's contract."""
        return self._r


def _statistic(test: dict) -> float:
    """A wild test's observed statistic: t, or F for a joint test."""
    return test["t_stat"] if "t_stat" in test else test.get("f_stat", float("nan"))


def _level_names(level: float) -> tuple[str, str]:
    lo = 100 * (1 - level) / 2
    return f"{lo:g}%", f"{100 - lo:g}%"


class FitResult(_Report):
    """One fitted model (`panelboot fit`): its coefficient table, variance and statistics.
    summary() is the run's text (for several formulas fitted together: all, side by side) and
    to_dict() the run's JSON."""

    def __init__(self, model: dict, report: dict, text: str, refit: Callable[..., Any] | None = None):
        super().__init__(report, text)
        self._m = model
        self._refit = refit

    # ---- the coefficient table, as pyfixest's Feols ----
    def _column(self, key: str) -> pd.Series:
        names = [c["name"] for c in self._m["coefficients"]]
        s = pd.Series([c[key] for c in self._m["coefficients"]], index=names, name=_TIDY[key], dtype=float)
        s.index.name = "Coefficient"
        return s

    def coef(self) -> pd.Series:
        """The estimates, indexed by coefficient name."""
        return self._column("estimate")

    def se(self) -> pd.Series:
        """The standard errors (the run's variance convention)."""
        return self._column("std_error")

    def tstat(self) -> pd.Series:
        return self._column("t_stat")

    def pvalue(self) -> pd.Series:
        """Two-sided p-values against the reference distribution (`reference`: t(df) or N(0,1))."""
        return self._column("p_value")

    def confint(self) -> pd.DataFrame:
        """The confidence interval at the run's level (0.95 unless `level=` was given)."""
        lo, hi = _level_names(self._m["level"])
        names = [c["name"] for c in self._m["coefficients"]]
        df = pd.DataFrame({lo: [c["ci_low"] for c in self._m["coefficients"]],
                           hi: [c["ci_high"] for c in self._m["coefficients"]]}, index=names, dtype=float)
        df.index.name = "Coefficient"
        return df

    def tidy(self) -> pd.DataFrame:
        """pyfixest's tidy table: Estimate, Std. Error, t value, Pr(>|t|) and the interval."""
        df = pd.concat([self.coef(), self.se(), self.tstat(), self.pvalue(), self.confint()], axis=1)
        return df

    def vcov(self) -> pd.DataFrame:
        names = [c["name"] for c in self._m["coefficients"]]
        return pd.DataFrame(np.array(self._m["vcov_matrix"], dtype=float).reshape(len(names), len(names)),
                            index=names, columns=names)

    # ---- the rest of the report ----
    @property
    def nobs(self) -> int:
        return int(self._m["nobs"])

    @property
    def formula(self) -> str:
        return self._m["formula"]

    @property
    def model(self) -> dict:
        """The model's part of the JSON report (every field the command line writes)."""
        return self._m

    def wild(self, test: str | list[str], **options: Any) -> "WildResult":
        """The wild cluster bootstrap of this model on the same data and options: `pb.wild` with
        this fit's formula, data, clusters and sample options, and `options` added."""
        if self._refit is None:
            raise ValueError("this result was not made by panelboot.fit")
        return self._refit(test=test, **options)

    def __repr__(self) -> str:
        return f"<panelboot.FitResult {self.formula!r}: {self.nobs} observations, {self._m['vcov_label']}>"


class WildResult(_Report):
    """Wild (cluster) bootstrap tests (`panelboot wild`). With one --test, `pvalue`, `t_stat`,
    `n_boot`, `enumerated` and `confint` are that test's; with several, Series indexed by the
    hypothesis (`confint`: a DataFrame)."""

    def __init__(self, report: dict, text: str, draws: list[np.ndarray] | None = None):
        super().__init__(report, text)
        self._draws = draws

    @property
    def tests(self) -> list[dict]:
        return self._r["tests"]

    def _labels(self) -> list[str]:
        """Each test's name: its hypothesis, with the test beside it where that is not the t or
        Wald test (an IV model's AR test of the same hypothesis: 'd = 0 [ar]')."""
        return [t["hypothesis"] + ("" if t["test"] in ("t", "wald", "wre", "wue") else f" [{t['test']}]")
                for t in self.tests]

    def _per_test(self, key: str, dtype: Any = float) -> Any:
        vals = [_statistic(t) if key == "t_stat" else t.get(key) for t in self.tests]
        if len(vals) == 1:
            return vals[0]
        return pd.Series(vals, index=self._labels(), name=key, dtype=dtype)

    @property
    def pvalue(self) -> Any:
        return self._per_test("p_value")

    @property
    def t_stat(self) -> Any:
        """The observed statistic: t (a joint test: its F)."""
        return self._per_test("t_stat")

    @property
    def n_boot(self) -> Any:
        return self._per_test("n_boot", "int64")

    @property
    def enumerated(self) -> Any:
        return self._per_test("enumerated", bool)

    @property
    def confint(self) -> Any:
        """The bootstrap confidence interval by test inversion: (low, high) for one test (NaN when
        it was not computed); several tests: a DataFrame. A set that is not an interval (AR) is in
        `tests[i]["ci_pieces"]`."""
        rows = [(t.get("ci_low", float("nan")), t.get("ci_high", float("nan"))) for t in self.tests]
        rows = [(np.nan if a is None else a, np.nan if b is None else b) for a, b in rows]
        if len(rows) == 1:
            return rows[0]
        lo, hi = _level_names(self._r["level"])
        return pd.DataFrame(rows, index=self._labels(), columns=[lo, hi], dtype=float)

    @property
    def draws(self) -> Any:
        """The bootstrap statistics, replication by replication (keep_draws=True): an array for
        one test, a list of arrays (in test order) for several."""
        if self._draws is None:
            raise ValueError("the bootstrap draws were not kept: run wild with keep_draws=True")
        return self._draws[0] if len(self._draws) == 1 else self._draws

    @property
    def fit(self) -> FitResult:
        """The model the tests restrict."""
        return FitResult(self._r["model"], self._r, "")

    def tidy(self) -> pd.DataFrame:
        """One row per test: statistic, bootstrap p-value, the interval, replications."""
        lo, hi = _level_names(self._r["level"])
        rows = []
        for label, t in zip(self._labels(), self.tests):
            rows.append({"hypothesis": label, "test": t["test"], "statistic": _statistic(t),
                         "Pr(>|t|)": t["p_value"], "p adjusted": t.get("p_value_adjusted"),
                         lo: t.get("ci_low"), hi: t.get("ci_high"), "n_boot": t["n_boot"],
                         "enumerated": t["enumerated"]})
        return pd.DataFrame(rows).set_index("hypothesis")

    def __repr__(self) -> str:
        parts = [f"{label}: p = {t['p_value']:.4g}" for label, t in zip(self._labels(), self.tests)]
        return f"<panelboot.WildResult {self._r['method']}, B = {self.tests[0]['n_boot']}: " + "; ".join(parts) + ">"


class ThresholdResult(_Report):
    """Hansen's panel threshold model (`panelboot threshold`): the models with 1..k thresholds,
    their estimates and LR sets, and the bootstrap tests of the number of thresholds."""

    @property
    def models(self) -> list[dict]:
        return self._r["models"]

    @property
    def thresholds(self) -> list[float]:
        """The estimated thresholds of the last model."""
        return list(self.models[-1]["gammas"]) if self.models else []

    def coef(self) -> pd.Series:
        """The last model's coefficients (regime coefficients named by the command line)."""
        m = self.models[-1]
        s = pd.Series({c["name"]: c["estimate"] for c in m["coefficients"]}, name="Estimate", dtype=float)
        s.index.name = "Coefficient"
        return s

    def se(self) -> pd.Series:
        m = self.models[-1]
        s = pd.Series({c["name"]: c["std_error"] for c in m["coefficients"]}, name="Std. Error", dtype=float)
        s.index.name = "Coefficient"
        return s

    def tests(self) -> pd.DataFrame:
        """The bootstrap tests of k versus k-1 thresholds: F, p-value and critical values."""
        rows = []
        for t in self._r.get("tests", []):
            crit = (list(t.get("crit", [])) + [None, None, None])[:3]  # none with B = 0
            rows.append({"k": t["k"], "F": t["F"], "p_value": t["p_value"], "n_boot": t["n_boot"],
                         "crit90": crit[0], "crit95": crit[1], "crit99": crit[2]})
        return pd.DataFrame(rows).set_index("k") if rows else pd.DataFrame()

    def __repr__(self) -> str:
        return f"<panelboot.ThresholdResult: thresholds {self.thresholds}>"


class PowerResult(_Report):
    """A Monte Carlo size and power study (`panelboot power`)."""

    def tidy(self) -> pd.DataFrame:
        """One row per group, test, alpha and effect: rejection rate and its Monte Carlo interval."""
        rows = []
        for r in self._r["results"]:
            lo, hi = r.get("mc_ci", [None, None])
            rows.append({"split": r.get("split"), "group": r["group"], "test": r["test"], "alpha": r["alpha"],
                         "effect": r["effect"], "rejection_rate": r["rejection_rate"], "mc_se": r["mc_se"],
                         "mc_ci_low": lo, "mc_ci_high": hi, "n_rep": r["n_rep"], "n_clusters": r["n_clusters"]})
        return pd.DataFrame(rows)

    def mde(self) -> pd.DataFrame:
        """The minimum detectable effect of each group and test at the power target."""
        return pd.DataFrame(self._r.get("mde", []))

    def __repr__(self) -> str:
        return f"<panelboot.PowerResult: R = {self._r['R']}, {len(self._r['results'])} rows>"
