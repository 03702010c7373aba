"""runtime.tune_gc: start-up objects frozen, young collections rare (in a child process,
since freezing is for the life of the process)."""

from __future__ import annotations

import json
import subprocess
import sys

from streamplane.platform import runtime

_PROBE = """
import gc, json
from streamplane.platform import runtime
before = gc.get_freeze_count()
runtime.tune_gc()
print(json.dumps({"before": before, "after": gc.get_freeze_count(),
                  "threshold": gc.get_threshold(), "enabled": gc.isenabled()}))
"""


def test_tune_gc_freezes_start_up_and_raises_the_young_threshold() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    probe = json.loads(out)
    assert probe["before"] == 0
    assert probe["after"] > 1000  # the imports' modules, classes and functions
    assert probe["threshold"] == [
        runtime.GEN0_THRESHOLD,
        runtime.GEN1_THRESHOLD,
        runtime.GEN2_THRESHOLD,
    ]
    assert probe["enabled"]  # cycles are still collected, only less often
