"""The publishing pool: never blocks the caller, retries with backoff, gives up cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest

from streamplane.mesh.v1 import mesh_pb2
from streamplane.platform.mesh.exceptions import (
    PermanentPublishError,
    PublishError,
    TransientPublishError,
)
from streamplane.platform.rpc import Backoff
from streamplane.platform.supervisor.mesh_dispatch import PublishJob, PublishPool

# The real schedule, scaled down 1000x: the tests check what happens, never how long.
QUICK = Backoff(first_s=0.0001, cap_s=0.003, attempts=4)


def _job(session: str = "s1", wire_id: str = "t-1.1") -> PublishJob:
    return PublishJob(session, wire_id, mesh_pb2.Envelope(id=wire_id, domain="default"))


class Publisher:
    """Fails the first `failures` calls per envelope with `error`, then succeeds."""

    def __init__(self, failures: int = 0, error: PublishError | None = None) -> None:
        self.failures = failures
        self.error = error or TransientPublishError("UNAVAILABLE", "no-subscriber", "none")
        self.calls: dict[str, int] = {}
        self.running = 0
        self.most_running = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, envelope: mesh_pb2.Envelope) -> None:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            n = self.calls[envelope.id] = self.calls.get(envelope.id, 0) + 1
            if n <= self.failures:
                raise self.error
        finally:
            self.running -= 1


def _run(
    publisher: Publisher,
    body: Callable[[PublishPool, list[tuple[str, str]]], Awaitable[None]],
    *,
    wanted: Callable[[PublishJob], bool] = lambda _job: True,
    concurrency: int = 4,
) -> list[tuple[str, str]]:
    failed: list[tuple[str, str]] = []

    async def main() -> None:
        pool = PublishPool(
            publisher,
            wanted=wanted,
            on_failed=lambda job, why: failed.append((job.wire_id, why)),
            backoff=QUICK,
            concurrency=concurrency,
        )
        try:
            await body(pool, failed)
        finally:
            await pool.close()

    asyncio.run(main())
    return failed


async def _settle(pool: PublishPool) -> None:
    for _ in range(2000):
        if not pool.pending:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{pool.pending} publishes never settled")


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_submit_returns_before_the_publish_and_success_is_counted() -> None:
    publisher = Publisher()
    before = _sample("supervisor_mesh_dispatch_total", status="success")

    async def body(pool: PublishPool, failed: list[tuple[str, str]]) -> None:
        publisher.gate = asyncio.Event()
        pool.submit(_job())
        assert pool.pending == 1
        assert not publisher.calls
        publisher.gate.set()
        await _settle(pool)

    assert _run(publisher, body) == []
    assert publisher.calls == {"t-1.1": 1}
    assert _sample("supervisor_mesh_dispatch_total", status="success") == before + 1


def test_transient_failures_are_retried_until_success() -> None:
    publisher = Publisher(failures=QUICK.attempts - 1)
    retries = _sample("supervisor_mesh_publish_retries_total", reason="no-subscriber")

    async def body(pool: PublishPool, failed: list[tuple[str, str]]) -> None:
        pool.submit(_job())
        await _settle(pool)

    assert _run(publisher, body) == []
    assert publisher.calls == {"t-1.1": QUICK.attempts}
    after = _sample("supervisor_mesh_publish_retries_total", reason="no-subscriber")
    assert after == retries + QUICK.attempts - 1


def test_when_attempts_run_out_the_job_fails_once() -> None:
    publisher = Publisher(failures=100)
    failures = _sample("supervisor_mesh_dispatch_total", status="failure")

    async def body(pool: PublishPool, failed: list[tuple[str, str]]) -> None:
        pool.submit(_job())
        await _settle(pool)

    [(wire_id, why)] = _run(publisher, body)
    assert wire_id == "t-1.1"
    assert f"{QUICK.attempts} attempts failed" in why
    assert publisher.calls == {"t-1.1": QUICK.attempts}
    assert _sample("supervisor_mesh_dispatch_total", status="failure") == failures + 1


def test_a_permanent_error_is_not_retried() -> None:
    error = PermanentPublishError("NOT_FOUND", "unknown-domain", "no node serves 'x'")
    publisher = Publisher(failures=100, error=error)

    async def body(pool: PublishPool, failed: list[tuple[str, str]]) -> None:
        pool.submit(_job())
        await _settle(pool)

    [(_, why)] = _run(publisher, body)
    assert "refused" in why
    assert publisher.calls == {"t-1.1": 1}


def test_an_attempt_no_longer_held_stops_and_releases() -> None:
    publisher = Publisher(failures=100)
    held = {"t-1.1": True}

    async def body(pool: PublishPool, failed: list[tuple[str, str]]) -> None:
        pool.submit(_job())
        for _ in range(1000):
            if publisher.calls:
                break
            await asyncio.sleep(0.001)
        held["t-1.1"] = False  # its lease expired, say
        await _settle(pool)

    [(_, why)] = _run(publisher, body, wanted=lambda job: held[job.wire_id])
    assert "no longer held" in why
    assert publisher.calls["t-1.1"] < QUICK.attempts


def test_cancelling_a_session_drops_its_jobs_silently() -> None:
    publisher = Publisher(failures=100)

    async def body(pool: PublishPool, failed: list[tuple[str, str]]) -> None:
        pool.submit(_job("s1", "a.1"))
        pool.submit(_job("s2", "b.1"))
        assert pool.cancel_session("s1") == 1
        await _settle(pool)

    failed = _run(publisher, body)
    assert [w for w, _ in failed] == ["b.1"]  # only the live session's job is reported
    assert "a.1" not in publisher.calls


def test_concurrency_is_bounded() -> None:
    publisher = Publisher()

    async def body(pool: PublishPool, failed: list[tuple[str, str]]) -> None:
        publisher.gate = asyncio.Event()
        for i in range(20):
            pool.submit(_job(wire_id=f"t-{i}.1"))
        for _ in range(50):
            await asyncio.sleep(0)
        assert publisher.running == 3
        publisher.gate.set()
        await _settle(pool)

    assert _run(publisher, body, concurrency=3) == []
    assert publisher.most_running == 3
    assert len(publisher.calls) == 20


def test_a_closed_pool_refuses_new_jobs() -> None:
    failed: list[str] = []

    async def main() -> None:
        pool = PublishPool(
            Publisher(),
            wanted=lambda _job: True,
            on_failed=lambda job, _why: failed.append(job.wire_id),
        )
        await pool.close()
        pool.submit(_job())

    asyncio.run(main())
    assert failed == ["t-1.1"]


@pytest.fixture(autouse=True)
def _pending_gauge_returns_to_its_start() -> Iterator[None]:
    before = _sample("supervisor_mesh_publishes_pending")
    yield
    assert _sample("supervisor_mesh_publishes_pending") == before
