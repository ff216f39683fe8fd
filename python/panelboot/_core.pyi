# The compiled engine (python/src/module.cpp); use the functions of the panelboot package.
from typing import Any

__version__: str
cuda_compiled: bool

def run(args: list[str], columns: list[tuple[str, str, Any, list[str]]], other_names: list[str], source: str,
        n_rows: int, with_frame: bool, text_too: bool,
        catch_sigint: bool) -> tuple[int, str, str, str, dict[str, int], bool]: ...
