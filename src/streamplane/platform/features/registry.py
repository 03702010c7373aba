"""Engine lookup by name, shared by both feature sets (streaming and window).

Engine modules are imported on demand so that asking for polars never touches cuDF's
import machinery, which is slow and may be broken. A cuDF module that fails to import
(cuDF missing, no CUDA driver, a numpy it was not built for) becomes one
`EngineUnavailable` whose message fits on one line.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Final

from streamplane.platform.features.exceptions import EngineUnavailable

GPU_ENGINES: Final = frozenset({"cudf"})
"""Engines that need an NVIDIA GPU and the `gpu`/`gpu-cu13` extra."""

# Longest foreign error text quoted in an EngineUnavailable message.
_MAX_DETAIL = 240


def one_line(exc: BaseException) -> str:
    """``Type: message`` of a foreign exception, whitespace collapsed, length bounded."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def load_class(module_name: str, class_name: str, engine: str, setting: str) -> type[object]:
    """Import `module_name` and return its `class_name`.

    For a GPU engine any import failure is an `EngineUnavailable` naming `setting`; for
    the CPU engine, whose libraries are core dependencies, failures propagate as they are.
    """
    if engine not in GPU_ENGINES:
        engine_class: type[object] = getattr(importlib.import_module(module_name), class_name)
        return engine_class
    if importlib.util.find_spec("cudf") is None:
        raise EngineUnavailable(setting, engine, "cuDF is not installed")
    try:
        module = importlib.import_module(module_name)
    # cuDF can fail to load in more ways than ImportError (no CUDA driver, a numpy it was
    # not built for): whatever the cause, this engine cannot run here.
    except Exception as exc:
        raise EngineUnavailable(
            setting, engine, f"cuDF is installed but failed to load ({one_line(exc)})"
        ) from exc
    engine_class = getattr(module, class_name)
    return engine_class
