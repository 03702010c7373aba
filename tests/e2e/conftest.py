"""End-to-end fixtures: real supervisor and worker processes on the session's broker.

Each test gets a `Processes` group (stopped at teardown whatever happens; a failing
test's report carries the tails of every process log) and its own topics and group.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support.procs import Processes, Stack, processes
from tests.support.topics import FreshTopics

_PROCESSES = pytest.StashKey[Processes]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the process logs to the report of a failed setup or call."""
    report = yield
    group = item.stash.get(_PROCESSES, None)
    if report.failed and group is not None and call.when in ("setup", "call"):
        report.sections.append(("streamplane process logs", group.report()))
    return report


@pytest.fixture
def procs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Processes]:
    """Processes for this test; logs under tmp_path/procs; all stopped at teardown."""
    with processes(tmp_path / "procs") as group:
        request.node.stash[_PROCESSES] = group
        yield group


@pytest.fixture
def stack(kafka_bootstrap: str, fresh_topics: FreshTopics) -> Stack:
    return Stack(kafka_bootstrap, fresh_topics)
