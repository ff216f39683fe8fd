"""Data handed to the engine: pandas or polars DataFrames, dicts of arrays, or a file path.

Only the columns a command names are handed over. float64 and int64 columns whose buffer is
contiguous are borrowed in place (the engine reads the numpy buffer itself; nothing is copied);
other numeric types are converted to float64 (missing values as NaN); text, categorical and
other non-numeric columns are factorized once, their levels in order of first appearance, as the
command line's CSV reader orders them.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ._errors import InputError

_TOKEN = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")
_QUOTED_NAME = re.compile(r"`([^`]*)`")  # a name with spaces or symbols, as the formulas quote it


@dataclass
class Frame:
    """What _core.run receives: the columns, the names left out, and what keeps them alive."""

    columns: list = field(default_factory=list)  # (name, kind, array, levels)
    other_names: list = field(default_factory=list)
    source: str = ""
    n_rows: int = 0
    path: str | None = None  # a file: the engine reads it (--data)
    embedded: bool = False  # no data: the embedded simulated dataset


def names_used(texts: Iterable[str]) -> set[str]:
    """Every name the command's text arguments could refer to (a superset of the columns used)."""
    out: set[str] = set()
    for t in texts:
        out.add(t.strip())
        for piece in re.split(r"[,\s]+", t):
            if piece:
                out.add(piece)
        out.update(_TOKEN.findall(t))
        out.update(_QUOTED_NAME.findall(t))
    return out


def _is_polars(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "polars" and hasattr(data, "get_column")


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "pandas" and hasattr(data, "iloc")


def _factorized(values: Any) -> tuple[np.ndarray, list[str]]:
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    levels = [str(u) for u in (uniques.tolist() if hasattr(uniques, "tolist") else list(uniques))]
    return np.ascontiguousarray(codes, dtype=np.int32), levels


def _numeric(name: str, arr: np.ndarray) -> tuple:
    """A numpy array as the engine takes it: borrowed when float64/int64 and contiguous."""
    if arr.dtype == np.float64 or arr.dtype == np.int64:
        kind = "f64" if arr.dtype == np.float64 else "i64"
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)  # a strided view (a column of a 2-D block): one copy
        return (name, kind, arr, [])
    if arr.dtype.kind in "iub":  # other integers, unsigned, bool: as doubles
        return (name, "f64", arr.astype(np.float64), [])
    if arr.dtype.kind == "f":
        return (name, "f64", arr.astype(np.float64), [])
    codes, levels = _factorized(arr)
    return (name, "codes", codes, levels)


def _pandas_column(name: str, s: Any) -> tuple:
    import pandas as pd
    from pandas.api import types as pt

    dt = s.dtype
    if isinstance(dt, np.dtype) and dt.kind in "fiub":
        return _numeric(name, s.to_numpy(copy=False))
    if isinstance(dt, pd.CategoricalDtype) and pt.is_numeric_dtype(dt.categories.dtype):
        # numbers stored as categories are numbers (a CSV of them reads as numbers)
        return (name, "f64", np.asarray(s.astype(np.float64), dtype=np.float64), [])
    if pt.is_extension_array_dtype(dt) and (pt.is_numeric_dtype(dt) or pt.is_bool_dtype(dt)):
        return (name, "f64", s.to_numpy(dtype=np.float64, na_value=np.nan), [])
    if dt == object:
        kind = pd.api.types.infer_dtype(s, skipna=True)
        if kind in ("integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty"):
            return (name, "f64", pd.to_numeric(s, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan), [])
    codes, levels = _factorized(s)
    return (name, "codes", codes, levels)


def _polars_column(name: str, s: Any) -> tuple:
    import polars as pl

    dt = s.dtype
    if dt.is_numeric() or dt == pl.Boolean:
        if s.null_count() == 0 and dt in (pl.Float64, pl.Int64):
            return _numeric(name, s.to_numpy())  # zero-copy for one chunk without nulls
        return (name, "f64", s.cast(pl.Float64).fill_null(float("nan")).to_numpy(), [])
    codes, levels = _factorized(s.cast(pl.Utf8).to_numpy() if dt != pl.Utf8 else s.to_numpy())
    return (name, "codes", codes, levels)


def _array_column(name: str, values: Any) -> tuple:
    if _is_pandas(values):  # a Series (nullable dtypes, categoricals)
        return _pandas_column(name, values)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"column '{name}' of the dict must be one-dimensional (it has shape {arr.shape})")
    if arr.dtype == object:  # numbers with None for missing, or text: as pandas reads them
        import pandas as pd

        return _pandas_column(name, pd.Series(arr, dtype=object))
    return _numeric(name, arr)


def frame_of(data: Any, texts: Iterable[str]) -> Frame:
    """The data as the engine takes it; only the columns that `texts` (the formula, clusters,
    --where, ...) name are handed over."""
    if data is None:
        return Frame(embedded=True)
    if isinstance(data, (str, os.PathLike)):
        return Frame(path=os.fspath(data))
    used = names_used(texts) | {"simulated"}  # a column that marks simulated data (the report says so)
    if _is_pandas(data):
        names = [str(c) for c in data.columns]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise InputError(f"the DataFrame has two columns named '{dup}'; rename one")
        f = Frame(source="pandas DataFrame", n_rows=len(data))
        for col, name in zip(data.columns, names):
            if name in used:
                f.columns.append(_pandas_column(name, data[col]))
            else:
                f.other_names.append(name)
        return f
    if _is_polars(data):
        f = Frame(source="polars DataFrame", n_rows=data.height)
        for name in data.columns:
            if name in used:
                f.columns.append(_polars_column(name, data.get_column(name)))
            else:
                f.other_names.append(name)
        return f
    if isinstance(data, dict):
        f = Frame(source="dict of arrays")
        lengths = {}
        for k, v in data.items():
            if np.ndim(v) != 1:
                raise InputError(f"column '{k}' of the dict must be one-dimensional (it has shape {np.shape(v)})")
            lengths[str(k)] = len(v)
        if len(set(lengths.values())) > 1:
            raise InputError("the dict's arrays have different lengths: " + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
        f.n_rows = next(iter(lengths.values()), 0)
        for k, v in data.items():
            name = str(k)
            if name in used:
                f.columns.append(_array_column(name, v))
            else:
                f.other_names.append(name)
        return f
    raise TypeError(
        "data must be a pandas or polars DataFrame, a dict of arrays, a path to a CSV or .dta file, "
        f"or None (the embedded dataset), not {type(data).__name__}"
    )
