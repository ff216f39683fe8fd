"""panelboot for Python: fixed-effects regressions and their inference (cluster-robust variance,
wild cluster bootstrap, panel thresholds, Monte Carlo power), computed by the same engine as the
`panelboot` command line, to the last bit.

    import panelboot as pb
    res = pb.fit(df, "y ~ x1 + x2 | firm + year", cluster="firm")
    res.tidy()
    boot = res.wild(test="x1 = 0", B=9999, seed=1)
    boot.pvalue, boot.confint
"""
from ._core import __version__, cuda_compiled
from ._api import fit, power, threshold, wild
from ._etable import etable
from ._results import FitResult, PowerResult, ThresholdResult, WildResult
from ._errors import InputError, PanelbootWarning

__all__ = ["fit", "wild", "threshold", "power", "etable", "FitResult", "WildResult", "ThresholdResult", "PowerResult",
           "InputError", "PanelbootWarning", "__version__", "cuda_compiled"]
