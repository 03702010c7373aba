"""A mesh worker's inbox: tasks of the current session, once each."""

from __future__ import annotations

from streamplane.mesh.v1 import mesh_pb2
from streamplane.platform.mesh.inbox import SESSION_HEADER, TASK_KIND, Received, TaskInbox
from streamplane.runner.v1 import runner_pb2


def _envelope(task_id: str, session: str, kind: str = TASK_KIND) -> mesh_pb2.Envelope:
    task = runner_pb2.Task(task_id=task_id, tenant="t", attempt=1)
    return mesh_pb2.Envelope(
        id=task_id,
        domain="default",
        kind=kind,
        payload=task.SerializeToString(),
        headers={SESSION_HEADER: session},
    )


def test_only_new_tasks_of_the_current_session_are_taken() -> None:
    taken: list[str] = []
    inbox = TaskInbox(lambda task: taken.append(task.task_id))
    assert inbox.accept(_envelope("a.1", "s1")) is Received.STALE  # no session yet
    inbox.open_session("s1")
    assert inbox.accept(_envelope("a.1", "s1")) is Received.TASK
    assert inbox.accept(_envelope("a.1", "s1")) is Received.DUPLICATE
    assert inbox.accept(_envelope("b.1", "s0")) is Received.STALE
    assert inbox.accept(_envelope("c.1", "s1", kind="other")) is Received.BAD
    bad = _envelope("d.1", "s1")
    bad.payload = b"\xff\xff\xff"
    assert inbox.accept(bad) is Received.BAD
    inbox.close_session()
    assert inbox.accept(_envelope("e.1", "s1")) is Received.STALE
    assert taken == ["a.1"]
