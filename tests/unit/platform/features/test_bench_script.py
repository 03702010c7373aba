"""scripts/bench_features.py at tiny sizes: one JSON line, polars figures, cuDF's status."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from streamplane.platform.features.schema import parse_events

REPO_ROOT = Path(__file__).resolve().parents[4]

SCRIPT = REPO_ROOT / "scripts" / "bench_features.py"


def bench(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [line] = done.stdout.splitlines()
    result: dict[str, object] = json.loads(line)
    return result


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_features", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_line_with_both_sets_at_the_sizes_asked() -> None:
    line = bench("--sizes", "50", "300", "--min-seconds", "0")
    assert line["bench"] == "features"
    engines = line["engines"]
    assert isinstance(engines, dict)
    assert engines["polars"]
    if importlib.util.find_spec("cudf") is None:
        assert engines["cudf"] == "unavailable: cuDF is not installed"
    for feature_set in ("streaming", "window"):
        figures = line[feature_set]
        assert isinstance(figures, dict)
        assert set(figures) == {"50", "300"}
        for entry in figures.values():
            assert isinstance(entry["polars"], int)
            assert entry["polars"] > 0
            assert ("cudf" in entry) == (engines["cudf"][:11] != "unavailable")


def test_a_size_over_the_call_budget_is_skipped_not_run() -> None:
    line = bench(
        "--sizes",
        "20",
        "2000",
        "--sets",
        "window",
        "--engines",
        "polars",
        "--min-seconds",
        "0",
        "--max-call-s",
        "0",
    )
    figures = line["window"]
    assert isinstance(figures, dict)
    assert isinstance(figures["20"]["polars"], int)
    assert str(figures["2000"]["polars"]).startswith("skipped: ")
    assert "streaming" not in line


def test_the_big_batch_generators_make_valid_inputs() -> None:
    module = script()
    values = module.fast_values(2000, seed=1, template_above=0)
    events = parse_events(values, [0] * len(values))
    assert 0.9 * len(values) < len(events.indices) < len(values)  # ~3% bad
    table = module.window_table(5000, seed=1)
    assert table.num_rows == 5000
    assert 0 < table.column("value").null_count < 1000
