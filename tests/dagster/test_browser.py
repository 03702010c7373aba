"""The Dagster UI in a real browser: Debian's chromium, headless, driven by Playwright.

No browser download: Playwright launches ``/usr/bin/chromium`` (``executable_path``).
On the stack's webserver the test checks the lineage graph (three assets, two edges, in
order), the runs page (sensor-launched supervisor and worker runs) and the lag plot of
``raw_events`` (a chart with its points), and the headline pair: the worker runs the lag
sensor scaled up to, and the dead-letter counts by tenant and kind on ``dead_letters``.
Screenshots go to ``test-output/dagster-ui/`` (or ``$STREAMPLANE_TEST_OUTPUT/dagster-ui/``);
with ``STREAMPLANE_UPDATE_DOCS_IMG=1`` the pair is also written to ``docs/img/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import AssetKey

from streamplane.assets.topics import GROUP as STREAMING_GROUP
from tests.dagster.services import DagsterStack, require
from tests.support.deadline import wait_until
from tests.support.procs import REPO_ROOT

pytestmark = pytest.mark.kafka

CHROMIUM = Path(os.environ.get("STREAMPLANE_CHROMIUM", "/usr/bin/chromium"))
# From FACTS.md: what Debian's chromium needs to run headless in a container, and no
# traffic of its own (updates, sync, QUIC) to slow it down or fail offline.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ASSETS = ("raw_events", "feature_events", "feature_snapshot")
DOCS_IMG = REPO_ROOT / "docs" / "img"
UI_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def screenshots() -> Path:
    root = Path(os.environ.get("STREAMPLANE_TEST_OUTPUT", REPO_ROOT / "test-output"))
    folder = root / "dagster-ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Module scope, not session: Playwright's sync API registers a running asyncio loop on
# the main thread while it is open, which would break every later test that calls
# asyncio.run(). It comes first in the page's arguments, so a missing chromium skips
# before any service starts.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require(CHROMIUM.exists(), f"chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(browser: object, dagster_stack: DagsterStack) -> Iterator[object]:
    """One page for the module, past Dagster's first-visit community dialog."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(UI_TIMEOUT_MS)
    tab = context.new_page()
    tab.goto(f"{dagster_stack.url}/asset-groups")
    dismiss_community_dialog(tab)
    try:
        yield tab
    finally:
        context.close()


def dismiss_community_dialog(tab: object) -> None:
    """Press "Skip" on the "Join the Dagster community" dialog a fresh instance shows."""
    skip = tab.get_by_role("button", name="Skip")  # type: ignore[attr-defined]
    try:
        skip.wait_for(state="visible", timeout=20_000)
    except Exception:
        return
    skip.click()
    skip.wait_for(state="hidden")


def observation_count(stack: DagsterStack) -> int:
    with stack.instance() as instance:
        records = instance.fetch_observations(AssetKey("raw_events"), limit=100).records
    return len(records)


def test_asset_graph_shows_the_lineage(page: object, screenshots: Path) -> None:
    tab = page
    # The streaming group's own graph: the global one collapses groups once the RL assets
    # form a second group, which hides the node names.
    base = tab.url.split("/asset-groups")[0]  # type: ignore[attr-defined]
    tab.goto(f"{base}/locations/streamplane/asset-groups/{STREAMING_GROUP}")  # type: ignore[attr-defined]
    # The graph is an SVG; its nodes hold the asset names (in full or compact form,
    # depending on the zoom the layout picks), the sidebar's list is outside it.
    graph = tab.locator("svg")  # type: ignore[attr-defined]
    nodes = [graph.get_by_text(name, exact=True) for name in ASSETS]
    for node in [*nodes, graph.get_by_text("dead_letters", exact=True)]:
        node.wait_for(state="visible")
    # raw_events -> feature_events -> feature_snapshot, and raw_events -> dead_letters.
    edges = tab.locator('svg path[marker-end^="url(#arrow"]')  # type: ignore[attr-defined]
    wait_until(lambda: edges.count() >= 3, 30, message=lambda: f"{edges.count()} edges drawn")
    tab.screenshot(path=str(screenshots / "asset-graph.png"))  # type: ignore[attr-defined]
    # The layout runs upstream to downstream, left to right.
    xs = [node.bounding_box()["x"] for node in nodes]
    assert xs == sorted(xs), dict(zip(ASSETS, xs, strict=True))


def test_runs_page_lists_sensor_launched_runs(
    page: object, dagster_stack: DagsterStack, screenshots: Path
) -> None:
    wait_until(
        lambda: (
            dagster_stack.sensor_runs("kafka_lag_sensor")
            and dagster_stack.sensor_runs("supervisor_liveness_sensor")
        ),
        240,
        interval=1,
        message=lambda: f"no sensor-launched runs yet\n{dagster_stack.report()}",
    )
    tab = page
    tab.goto(f"{dagster_stack.url}/runs")  # type: ignore[attr-defined]
    for text in ("worker_job", "supervisor_job", "kafka_lag_sensor", "supervisor_liveness_sensor"):
        tab.get_by_text(text).first.wait_for(state="visible")  # type: ignore[attr-defined]
    tab.screenshot(path=str(screenshots / "runs.png"))  # type: ignore[attr-defined]


def test_lag_plot_has_points(page: object, dagster_stack: DagsterStack, screenshots: Path) -> None:
    wait_until(
        lambda: observation_count(dagster_stack) >= 3,
        240,
        interval=1,
        message=lambda: f"fewer than 3 lag observations\n{dagster_stack.report()}",
    )
    tab = page
    tab.goto(f"{dagster_stack.url}/assets/raw_events")  # type: ignore[attr-defined]
    tab.get_by_role("button", name="Plots").click()  # type: ignore[attr-defined]
    title = tab.get_by_text("total_lag", exact=True)  # type: ignore[attr-defined]
    title.wait_for(state="visible")
    title.scroll_into_view_if_needed()
    # The chart of total_lag: the canvas right after its title. Its data line and points
    # are drawn in the accent colour (blue-violet), unlike the grey axes and grid.
    chart = title.locator("xpath=following::canvas[1]")
    chart.wait_for(state="visible")
    wait_until(lambda: _line_pixels(chart) > 200, 30, message="the lag chart has no points")
    tab.screenshot(path=str(screenshots / "lag-plot.png"))  # type: ignore[attr-defined]
    chart.screenshot(path=str(screenshots / "lag-plot-total-lag.png"))


def _line_pixels(chart: object) -> int:
    """Pixels of a canvas in the series colour (clearly blue): the line and its points."""
    script = """canvas => {
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 0; i < data.length; i += 4) {
            const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
            if (a > 128 && b > 150 && b > r + 60 && b > g + 60) n++;
        }
        return n;
    }"""
    return int(chart.evaluate(script))  # type: ignore[attr-defined]


def dead_letter_counts(stack: DagsterStack) -> dict[str, object]:
    """The newest dead_letters observation's total and per-tenant and per-kind counts."""
    with stack.instance() as instance:
        records = instance.fetch_observations(AssetKey("dead_letters"), limit=1).records
    if not records:
        return {}
    observation = records[0].asset_observation
    assert observation is not None
    return {
        key: entry.value
        for key, entry in observation.metadata.items()
        if key == "dead_letters_total"
        or key.startswith(("dead_letters_tenant_", "dead_letters_kind_"))
    }


def _save(tab: object, screenshots: Path, name: str) -> None:
    path = screenshots / name
    tab.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    if os.environ.get("STREAMPLANE_UPDATE_DOCS_IMG") == "1":
        shutil.copyfile(path, DOCS_IMG / name)


def test_workers_scaled_up_by_lag(
    page: object, dagster_stack: DagsterStack, screenshots: Path
) -> None:
    """The headline: worker runs launched on the lag."""
    wait_until(
        lambda: len(dagster_stack.sensor_runs("kafka_lag_sensor")) >= 2,
        300,
        interval=1,
        message=lambda: f"the lag never asked for two workers\n{dagster_stack.report()}",
    )
    tab = page
    tab.goto(f"{dagster_stack.url}/runs")  # type: ignore[attr-defined]
    workers = tab.get_by_text("worker_job")  # type: ignore[attr-defined]
    wait_until(lambda: workers.count() >= 2, 60, message="fewer than two worker runs listed")
    _save(tab, screenshots, "dagster-workers-scaled.png")


def test_dead_letters_counted_by_tenant_and_kind(
    page: object, dagster_stack: DagsterStack, screenshots: Path
) -> None:
    """The dead letters of the demo's malformed records, counted per tenant and kind."""
    tab = page
    wait_until(
        lambda: any(k.startswith("dead_letters_kind_") for k in dead_letter_counts(dagster_stack)),
        300,
        interval=1,
        message=lambda: f"no dead letters counted by kind\n{dagster_stack.report()}",
    )
    counts = dead_letter_counts(dagster_stack)
    kinds = sum(int(v) for k, v in counts.items() if k.startswith("dead_letters_kind_"))  # type: ignore[call-overload]
    tenants = sum(int(v) for k, v in counts.items() if k.startswith("dead_letters_tenant_"))  # type: ignore[call-overload]
    # One read gives all three: they agree whatever the letters' timestamps.
    assert counts["dead_letters_total"] == kinds == tenants > 0, counts
    tab.goto(f"{dagster_stack.url}/assets/dead_letters?view=events")  # type: ignore[attr-defined]
    tab.get_by_text("dead_letters_total").first.wait_for(state="visible")  # type: ignore[attr-defined]
    tab.get_by_text("dead_letters_kind_parse").first.wait_for(state="visible")  # type: ignore[attr-defined]
    _save(tab, screenshots, "dagster-dead-letters.png")
