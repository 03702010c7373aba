"""Start-up loading of an engine: import it, then prove it can compute here.

`get_engine` only imports an engine. A cuDF that imports fine can still fail on its
first computation (no GPU visible, a driver too old for the CUDA build, no device
memory), and a worker should find that out at start, with one line saying what to fix,
rather than on its first task. `load_engine` and `load_window_engine` run one tiny batch
through a GPU engine and turn any failure into `EngineUnavailable`.
"""

from __future__ import annotations

import pyarrow as pa

from streamplane.platform.features.base import FeatureEngine, get_engine
from streamplane.platform.features.exceptions import EngineUnavailable
from streamplane.platform.features.registry import GPU_ENGINES, one_line
from streamplane.platform.features.window import WindowEngine, get_window_engine

_PROBE_EVENT = (
    b'{"event_id":"probe","tenant":"probe","user_id":"probe","event_type":"view",'
    b'"value":1.5,"ts":0}'
)


def load_engine(name: str, *, setting: str = "WORKER_ENGINE") -> FeatureEngine:
    """Return a streaming feature engine that has computed one batch in this process.

    Raises `ValueError` for an unknown name and `EngineUnavailable` (a configuration
    error of `setting`) when the engine's library is missing or cannot compute here.
    """
    engine = get_engine(name, setting=setting)
    if name in GPU_ENGINES:
        try:
            batch = engine.transform([_PROBE_EVENT], [0])
            if len(batch.values) != 1:
                raise RuntimeError(f"probe batch gave {len(batch.values)} rows, not 1")
        except Exception as exc:
            raise _no_gpu(setting, name, exc) from exc
    return engine


def load_window_engine(name: str, *, setting: str = "WORKER_ENGINE") -> WindowEngine:
    """Return a window feature engine that has computed one table in this process."""
    engine = get_window_engine(name, setting=setting)
    if name in GPU_ENGINES:
        probe = pa.table({"user_id": ["probe"], "event_type": ["view"], "value": [1.5], "ts": [0]})
        try:
            result = engine.compute(probe)
            if result.num_rows != 1:
                raise RuntimeError(f"probe table gave {result.num_rows} rows, not 1")
        except Exception as exc:
            raise _no_gpu(setting, name, exc) from exc
    return engine


def _no_gpu(setting: str, name: str, exc: Exception) -> EngineUnavailable:
    return EngineUnavailable(
        setting, name, f"cuDF is installed but found no usable GPU ({one_line(exc)})"
    )
