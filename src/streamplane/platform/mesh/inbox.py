"""A mesh-mode worker's task inbox: which envelopes from its subscription become tasks.

An envelope becomes a task only if it carries a Task for the worker's current session
(`sp-session`): one published for an earlier session was requeued by the supervisor
when that session ended, and one seen before (a publish retried after an answer was
lost) is already being, or was, processed. Acks go back on the gRPC stream as always.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum

from google.protobuf.message import DecodeError

from streamplane.mesh.v1 import mesh_pb2
from streamplane.platform import metrics as m
from streamplane.runner.v1 import runner_pb2

TASK_KIND = "streamplane.runner.v1.Task"
SESSION_HEADER = "sp-session"
# Attempt ids remembered for de-duplication: far more than any credit, so a retried
# publish of a finished attempt is still recognised.
REMEMBERED_IDS = 4096


class Received(StrEnum):
    """What became of one envelope; also the worker's metric label."""

    TASK = "task"
    STALE = "stale"
    DUPLICATE = "duplicate"
    BAD = "bad"


class TaskInbox:
    """Turns envelopes into tasks for `on_task`, once each, for the current session only."""

    def __init__(self, on_task: Callable[[runner_pb2.Task], None]) -> None:
        self._on_task = on_task
        self.session_id = ""
        self._seen: OrderedDict[str, None] = OrderedDict()

    def open_session(self, session_id: str) -> None:
        """The supervisor welcomed a new session: only its tasks are taken from now on."""
        self.session_id = session_id

    def close_session(self) -> None:
        """The session ended: its envelopes still in flight are stale."""
        self.session_id = ""

    def accept(self, envelope: mesh_pb2.Envelope) -> Received:
        """Take the envelope's task if it is one for this session and new."""
        result = self._classify(envelope)
        m.WORKER_MESH_ENVELOPES.labels(result.value).inc()
        return result

    def _classify(self, envelope: mesh_pb2.Envelope) -> Received:
        if envelope.kind != TASK_KIND:
            return Received.BAD
        session = envelope.headers.get(SESSION_HEADER, "")
        if not self.session_id or session != self.session_id:
            return Received.STALE
        try:
            task = runner_pb2.Task.FromString(envelope.payload)
        except DecodeError:
            return Received.BAD
        if not task.task_id:
            return Received.BAD
        if task.task_id in self._seen:
            return Received.DUPLICATE
        self._seen[task.task_id] = None
        if len(self._seen) > REMEMBERED_IDS:
            self._seen.popitem(last=False)
        self._on_task(task)
        return Received.TASK
