"""Keyword arguments to the command line's options, and one run of a command in this process.

Every option of a command is its CLI option in snake_case (`weight_type="webb"` is
`--weight-type webb`); the command line declares them, checks their ranges and gives the errors,
so the package and the executable cannot disagree.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import warnings
from typing import Any, Iterable

from . import _core
from ._data import Frame, frame_of
from ._errors import InputError, PanelbootWarning


# yes/no options that Python users give as booleans
_YES_NO = {"impose_null", "small"}
# options whose name is not the snake_case of the flag
_FLAG_NAMES = {"B": "--B", "R": "--R", "wild_B": "--wild-B"}
# options that repeat on the command line, lists in Python
_REPEATED = {"formula", "test", "wald", "split", "design"}
# handled by the package itself
_RESERVED = {"data", "format", "output", "help", "version"}
# options whose output is not a report the package reads
_CLI_ONLY = {"shard": "shard= writes a shard's partial result for `panelboot merge`: run shards with the command line"}


def flag_of(name: str) -> str:
    return _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def arguments(command: str, options: dict[str, Any]) -> list[str]:
    """The command line of `command` with `options` (None values left out)."""
    args = [command]
    for name, value in options.items():
        if value is None:
            continue
        if name in _RESERVED:
            raise TypeError(f"{name}= is not an option here (the package reads the data and the report itself)")
        if name in _CLI_ONLY:
            raise InputError(_CLI_ONLY[name])
        flag = flag_of(name)
        if name in _YES_NO:
            args += [flag, _text(value) if isinstance(value, bool) else str(value)]
        elif isinstance(value, bool):
            if value:
                args.append(flag)
        elif name in _REPEATED and isinstance(value, (list, tuple)):
            for v in value:
                args += [flag, _text(v)]
        elif isinstance(value, (list, tuple)):  # a comma list (cluster, panel, effects, alpha, ...)
            args += [flag, ",".join(_text(v) for v in value)]
        else:
            args += [flag, _text(value)]
    return args


def texts_of(options: dict[str, Any]) -> list[str]:
    """The text values of the options: where the command names variables."""
    out: list[str] = []
    for v in options.values():
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out += [x for x in v if isinstance(x, str)]
    return out


class Run:
    """A finished run: the parsed JSON report, the text report and the notices."""

    def __init__(self, report: dict, text: str, notices: list[str], addresses: dict[str, int], args: list[str]):
        self.report = report
        self.text = text
        self.notices = notices
        self.addresses = addresses
        self.args = args


def _notices(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def _raise_for(status: int, err: str, interrupted: bool) -> None:
    if interrupted or status == 130:
        raise KeyboardInterrupt("panelboot: interrupted")
    lines = _notices(err)
    last = lines[-1] if lines else f"panelboot exited with status {status}"
    msg = last.removeprefix("panelboot: error: ").removeprefix("panelboot: ")
    if status == 2:
        raise InputError(msg)
    raise RuntimeError(msg)


def run(command: str, data: Any, options: dict[str, Any], extra_args: Iterable[str] = ()) -> Run:
    """Runs `panelboot COMMAND` with `options` on `data` in this process; raises InputError (the
    CLI's message) on bad input and KeyboardInterrupt when Ctrl-C stopped it."""
    frame: Frame = frame_of(data, texts_of(options))
    args = arguments(command, options) + list(extra_args) + ["--format", "json"]
    if frame.path is not None:
        args += ["--data", frame.path]
    main_thread = threading.current_thread() is threading.main_thread()
    status, report, text, err, addresses, interrupted = _core.run(
        args, frame.columns, frame.other_names, frame.source, frame.n_rows,
        not frame.embedded and frame.path is None, True, main_thread)
    if status != 0 or interrupted:
        _raise_for(status, err, interrupted)
    notices = _notices(err)
    for line in notices:
        if line.startswith("panelboot: warning: "):
            warnings.warn(line.removeprefix("panelboot: warning: "), PanelbootWarning, stacklevel=3)
    return Run(json.loads(report), text, notices, dict(addresses), args)


class TempPath:
    """A path in a fresh temporary folder, removed with the folder (side files a run writes)."""

    def __init__(self, name: str):
        self._dir = tempfile.TemporaryDirectory(prefix="panelboot-")
        self.path = os.path.join(self._dir.name, name)

    def __enter__(self) -> "TempPath":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._dir.cleanup()
