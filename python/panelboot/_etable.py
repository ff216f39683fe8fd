"""pb.etable: fitted models side by side (pyfixest's etable), laid out as the command line's `fit`
with several formulas lays them out (its Markdown and LaTeX tables row for row), from the
results' JSON, so models fitted on different data or options can stand together."""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from ._results import FitResult, Text

_NOTE = ("Standard errors in parentheses; *** p<0.01, ** p<0.05, * p<0.1 under each model's reference "
         "distribution (t(G-1) when clustered; N(0,1) with --small no).")
_SIMULATED = " SIMULATED DATA: a seeded stand-in for the study's panel, not the paper's data."


def _note(models: Sequence[dict]) -> str:
    return _NOTE + (_SIMULATED if any(m.get("simulated_data") for m in models) else "")


def _stars(p: float | None) -> str:
    if p is None or p != p:
        return ""
    return "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else ""


def _g4(x: float) -> str:
    return "%.4g" % x


def _rows(models: Sequence[dict], tex: bool) -> list[tuple[str, list[str]]]:
    """The table's rows: (head, one cell per model), as report.cpp's side_by_side makes them."""
    names: list[str] = []
    for m in models:
        names += [c["name"] for c in m["coefficients"] if c["name"] not in names]
    rows = [("Dependent variable", [m["depvar"] for m in models])]
    for nm in names:
        est, se = [], []
        for m in models:
            c = next((c for c in m["coefficients"] if c["name"] == nm), None)
            st = _stars(c["p_value"]) if c else ""
            if tex and st:
                st = "$^{" + st + "}$"
            est.append(_g4(c["estimate"]) + st if c else "")
            se.append("(" + _g4(c["std_error"]) + ")" if c else "")
        rows += [(nm, est), ("", se)]
    rows.append(("\\hline", []))
    rows.append(("Fixed effects", [", ".join(f["name"] for f in m.get("fixed_effects", [])) or "none" for m in models]))
    rows.append(("Observations", [str(m["nobs"]) for m in models]))
    rows.append(("R2 (within if FE)", ["%.4f" % (m["r2_within"] if _number(m.get("r2_within")) else m["r2"])
                                       for m in models]))
    rows.append(("Variance", [m["vcov"] + (": " + "+".join(c["name"] for c in m["clusters"]) if m.get("clusters") else "")
                              for m in models]))
    rows.append(("Clusters", [str(m["n_clusters"]) if m.get("clusters") else "" for m in models]))
    if any(m["estimator"] != "ols" for m in models):
        d = [m.get("diagnostics", {}) if m["estimator"] != "ols" else None for m in models]
        rows.append(("Estimator", ["2SLS" if x is not None else "OLS" for x in d]))
        rows.append(("Weak-IV F (KP rk Wald)", ["%.2f" % x["kp_rk_wald_f"] if x is not None and _number(x.get("kp_rk_wald_f"))
                                                 else "" for x in d]))
        rows.append(("Effective F (MOP)", ["%.2f" % x["effective_f"] if x is not None and _number(x.get("effective_f"))
                                            else "" for x in d]))
    return rows


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x))


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _latex(s: str) -> str:
    out = []
    for ch in s:
        if ch in "_&%#${}":
            out.append("\\" + ch)
        elif ch == "^":
            out.append("\\^{}")
        elif ch == "~":
            out.append("\\~{}")
        elif ch == "\\":
            out.append("\\textbackslash{}")
        elif ch in "\n\r":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _text_table(heads: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    """Aligned columns: the heads left, the cells right, each column as wide as its widest + 2
    (at least 12), as the command line's text table."""
    body = [("", heads)] + [(h, cells) for h, cells in rows if h != "\\hline"]
    wh = max([12] + [len(h) + 2 for h, _ in body])
    wc = max([12] + [len(c) + 2 for _, cells in body for c in cells])
    return [h.ljust(wh) + "".join(c.rjust(wc) for c in cells) for h, cells in body]


def etable(models: Sequence[FitResult] | FitResult, type: str = "md") -> Text | pd.DataFrame:  # noqa: A002
    """Models side by side: type "md" (Markdown), "tex" (a LaTeX tabular), "text" (aligned
    columns), or "df" (a DataFrame of the same cells). Columns (1), (2), ... in the order given; coefficients in order of first
    appearance; estimates and standard errors to 4 significant digits with the command line's stars."""
    ms = [models] if isinstance(models, FitResult) else list(models)
    if not ms or not all(isinstance(m, FitResult) for m in ms):
        raise TypeError("etable takes FitResult objects (from panelboot.fit)")
    if type not in ("md", "tex", "text", "df"):
        raise ValueError(f"type must be 'md', 'tex', 'text' or 'df', not {type!r}")
    json_models = [m.model for m in ms]
    heads = ["(%d)" % (i + 1) for i in range(len(ms))]
    rows = _rows(json_models, type == "tex")
    if type == "df":
        body = [(h, cells) for h, cells in rows if h != "\\hline"]
        return pd.DataFrame([cells for _, cells in body], index=[h for h, _ in body], columns=heads)
    if type == "md":
        esc = _md_cell
        lines = ["|  | " + " | ".join(heads) + " |", "|---" + "|---:" * len(ms) + "|"]
        lines += ["| " + esc(h) + "".join(" | " + c for c in cells) + " |" for h, cells in rows if h != "\\hline"]
        return Text("\n".join(lines) + "\n\n" + _note(json_models) + "\n")
    if type == "text":
        return Text("\n".join(_text_table(heads, rows)) + "\n\n" + _note(json_models) + "\n")
    lines = ["\\begin{tabular}{l" + "c" * len(ms) + "}", "\\hline", " & " + " & ".join(heads) + " \\\\", "\\hline"]
    for h, cells in rows:
        lines.append("\\hline" if h == "\\hline" else _latex(h) + "".join(" & " + c for c in cells) + " \\\\")
    lines += ["\\hline", "\\end{tabular}", "% " + _note(json_models)]
    return Text("\n".join(lines) + "\n")
