"""A stand-in `cudf` (and `cupy`) that imports but, like cuDF without a GPU, cannot compute.

Written into a folder that goes first on `sys.path` (or PYTHONPATH of a subprocess), it
lets CPU machines test what happens where cuDF is installed but no device is usable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

NO_DEVICE = "cudaErrorNoDevice: no CUDA-capable device is detected"

FAKE_CUDF = f'''
class DataFrame:
    @staticmethod
    def from_arrow(table):
        raise RuntimeError("{NO_DEVICE}\\n(second line of a long driver message)")
'''
BROKEN_CUDF = "raise AttributeError(\"module 'numpy' has no attribute 'row_stack'\")\n"
ENGINE_MODULES = (
    "streamplane.platform.features.cudf_engine",
    "streamplane.platform.features.window_cudf",
)


def write_fake_gpu(folder: Path, cudf_source: str = FAKE_CUDF) -> Path:
    """Write `cudf` and `cupy` packages into `folder`; returns it."""
    for name, source in (("cudf", cudf_source), ("cupy", "")):
        package = folder / name
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(source)
    return folder


@contextmanager
def fake_gpu_installed(
    monkeypatch: pytest.MonkeyPatch, folder: Path, cudf_source: str = FAKE_CUDF
) -> Iterator[None]:
    """Make `import cudf` find the stand-in in this process, then forget it again."""
    write_fake_gpu(folder, cudf_source)
    monkeypatch.syspath_prepend(str(folder))
    for name in ("cudf", "cupy", *ENGINE_MODULES):
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        yield
    finally:
        for name in ("cudf", "cupy", *ENGINE_MODULES):
            sys.modules.pop(name, None)
