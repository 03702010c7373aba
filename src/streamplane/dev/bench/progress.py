"""Progress bars on stderr, so that stdout carries only the JSON line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

from tqdm import tqdm

__all__ = ["advance", "bar"]


def bar(label: str, total: int) -> tqdm[NoReturn]:
    """A progress bar on stderr, so stdout carries only the JSON line."""
    return tqdm(
        total=total,
        desc=label,
        unit="msg",
        unit_scale=True,
        file=sys.stderr,
        mininterval=0.5,
        dynamic_ncols=True,
        leave=True,
    )


def advance(progress: tqdm[NoReturn]) -> Callable[[int], None]:
    """A progress callback taking a running total."""

    def step(total: int) -> None:
        progress.update(total - progress.n)

    return step
