"""pb.fit, pb.wild, pb.threshold, pb.power: the command line's commands on in-memory data."""
from __future__ import annotations

from typing import Any, Mapping, Sequence, Union

import numpy as np

from ._run import InputError, TempPath, run
from ._results import FitResult, PowerResult, ThresholdResult, WildResult

Names = Union[str, Sequence[str]]

# pyfixest's vcov names -> the command line's --vcov
_VCOV_NAMES = {"iid": "iid", "hetero": "hc1", "HC1": "hc1", "hc1": "hc1", "CRV1": "cluster", "crv1": "cluster",
               "cluster": "cluster", "dk": "dk", "DK": "dk"}


def _cluster_text(cluster: Names | None) -> str | None:
    if cluster is None:
        return None
    if isinstance(cluster, str):
        return ",".join(p.strip() for p in cluster.replace("+", ",").split(",") if p.strip())
    return ",".join(cluster)


def _vcov_options(vcov: str | Mapping[str, str] | None, cluster: Names | None) -> dict[str, Any]:
    """--vcov and --cluster from pyfixest's spellings: vcov="hetero", vcov={"CRV1": "g1+g2"}."""
    cl = _cluster_text(cluster)
    if isinstance(vcov, Mapping):
        if len(vcov) != 1:
            raise InputError("vcov= as a dict takes one entry, e.g. {'CRV1': 'g1+g2'}")
        (kind, var), = vcov.items()
        if _VCOV_NAMES.get(kind) != "cluster":
            raise InputError(f"vcov={{{kind!r}: ...}}: only CRV1 (cluster-robust, as fixest and reghdfe) is available")
        vc = _cluster_text(var)
        if cl is not None and cl != vc:
            raise InputError(f"cluster={cluster!r} and vcov={vcov!r} name different clusters")
        return {"vcov": "cluster", "cluster": vc}
    if vcov is None:
        return {"cluster": cl}
    return {"vcov": _VCOV_NAMES.get(vcov, vcov), "cluster": cl}


def _formulas(formula: Names) -> list[str]:
    return [formula] if isinstance(formula, str) else list(formula)


def fit(data: Any, formula: Names, *, cluster: Names | None = None, vcov: str | Mapping[str, str] | None = None,
        weights: str | None = None, where: str | None = None, **options: Any) -> FitResult | list[FitResult]:
    """Fixed-effects OLS or IV (`panelboot fit`): `formula` as 'y ~ x1 + x2 | fe1 + fe2' (a list:
    several models, a list of results); `cluster` a name or names (multiway); `vcov` 'iid',
    'hetero' (HC1), 'CRV1' or {'CRV1': 'g1+g2'}, 'dk'; every other option of `panelboot fit` in
    snake_case (dof_fe='all', multiway_adj='each', small=False, keep_singletons=True, panel='id,t',
    wald='x1 = 0, x2 = 0', threads=...). `data`: a pandas or polars DataFrame, a dict of arrays, a
    CSV/.dta path, or None (the embedded dataset)."""
    formulas = _formulas(formula)
    opts = {"formula": formulas, **_vcov_options(vcov, cluster), "weights": weights, "where": where, **options}
    r = run("fit", data, opts)
    results = [FitResult(m, r.report, r.text, _wild_of(data, f, opts)) for m, f in zip(r.report["models"], formulas)]
    return results if len(formulas) > 1 else results[0]


# fit's options that wild does not take
_FIT_ONLY = ("formula", "wald", "first_stage", "vcov", "vcov_psd_fix", "dk_lag")


def _wild_of(data: Any, formula: str, fit_options: dict[str, Any]) -> Any:
    """FitResult.wild: pb.wild on the fit's data, formula and options."""
    same = {k: v for k, v in fit_options.items() if k not in _FIT_ONLY}
    if fit_options.get("vcov") == "hc1" and same.get("cluster") is None:
        same["cluster"] = "none"
    return lambda **wild_options: wild(data, formula, **{**same, **wild_options})


def wild(data: Any, formula: str, test: Names, *, cluster: Names | None = None,
         vcov: str | Mapping[str, str] | None = None, B: int = 9999, seed: int | None = None,
         weight_type: str = "rademacher", impose_null: bool = True, ci: bool = True, keep_draws: bool = False,
         **options: Any) -> WildResult:
    """Wild cluster bootstrap tests (`panelboot wild`): WCR (impose_null=True) or WCU, with the
    test-inversion interval (ci=False skips it); IV models: WRE/WUE, ar=True adds the AR test.
    Every other option of `panelboot wild` in snake_case: joint, enumerate, pvalue, bootcluster,
    ties, padjust, small, chunk, level, threads, backend ('cpu', 'cuda'), max_memory, ...
    keep_draws=True keeps each replication's bootstrap statistic (`.draws`)."""
    opts = {"formula": [formula], "test": [test] if isinstance(test, str) else list(test),
            **_vcov_options(vcov, cluster), "B": B, "seed": seed, "weight_type": weight_type,
            "impose_null": impose_null, "no_ci": not ci, **options}
    vc = opts.pop("vcov", None)  # wild's variance: the clusters' (cluster=), or HC1 (cluster='none')
    if vc == "hc1" and opts.get("cluster") is None:
        opts["cluster"] = "none"
    elif vc not in (None, "cluster", "hc1"):
        raise InputError(f"vcov={vc!r}: the wild bootstrap is cluster-robust (cluster=) or heteroskedasticity-robust "
                         "(vcov='hetero')")
    if keep_draws:
        with TempPath("draws.csv") as tmp:
            r = run("wild", data, opts, ["--save-draws", tmp.path])
            table = np.loadtxt(tmp.path, delimiter=",", skiprows=1, ndmin=2)
        draws = [np.ascontiguousarray(table[table[:, 0] == k + 1, 2]) for k in range(len(r.report["tests"]))]
        return WildResult(r.report, r.text, draws)
    r = run("wild", data, opts)
    return WildResult(r.report, r.text)


def threshold(data: Any, formula: str, *, panel: Names, regime: Names, threshold_var: str, thresholds: int = 1,
              B: int = 300, seed: int | None = None, **options: Any) -> ThresholdResult:
    """Hansen's (1999) fixed-effects panel threshold model (`panelboot threshold`): `formula`
    'y ~ x1 + x2 | id', `panel` 'id,time' (or ('id', 'time')), `regime` the regime-dependent
    regressor(s), `threshold_var` q. Other options in snake_case: trim, grid, gammas, mode
    ('xthreg'), vcov, cluster, bootstrap, robust_ci, time_effects, where, threads, ..."""
    opts = {"formula": [formula], "panel": panel if isinstance(panel, str) else ",".join(panel),
            "regime": regime if isinstance(regime, str) else ",".join(regime), "threshold_var": threshold_var,
            "thresholds": thresholds, "B": B, "seed": seed, **options}
    r = run("threshold", data, opts)
    return ThresholdResult(r.report, r.text)


def power(data: Any, formula: str | None = None, *, effects: Any, target: str | None = None,
          cluster: Names | None = None, split: Names | None = None, R: int = 1000, seed: int | None = None,
          **options: Any) -> PowerResult:
    """Monte Carlo size and power (`panelboot power`): the rejection rate of each test (tests=
    'crve,wild,...') at each effect of `target`, per group of `split` (a list: several
    groupings). Other options in snake_case: alpha, wild_B, errors, rho, placebo, calibrate,
    pooled, design (synthetic designs, data=None), power_target, threads, ..."""
    if data is not None and options.get("design") is not None:
        raise InputError("design= simulates its own data; pass data=None (or drop design=)")
    opts = {"formula": None if formula is None else [formula], "target": target, "effects": effects,
            "cluster": _cluster_text(cluster), "split": [split] if isinstance(split, str) else split, "R": R,
            "seed": seed, **options}
    r = run("power", data, opts)
    return PowerResult(r.report, r.text)
