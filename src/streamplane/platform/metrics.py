"""Every Prometheus metric streamplane exports, in one place, with bounded labels.

Tenant labels are capped: past MAX_TENANT_LABELS distinct tenants, the rest are counted as
"other", so a tenant-per-request workload cannot blow up the time-series count.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import Counter, Gauge, Histogram

MAX_TENANT_LABELS = 50


class LabelCap:
    """Label values as given for the first `limit` distinct ones, then "other"."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        # Callers on several threads (the RL buffer, the event loop) share one cap.
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        """The label value to use for `value`."""
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return "other"


tenant_label = LabelCap(MAX_TENANT_LABELS)


RECORDS_CONSUMED = Counter("supervisor_records_consumed_total", "Records read from Kafka")
RPC_REFUSED = Counter(
    "grpc_calls_refused_total",
    "gRPC calls refused for a missing or wrong bearer token",
    ["method"],
)
RECORDS_SKIPPED = Counter(
    "supervisor_records_skipped_total",
    "Records a partition's previous owner completed above its commit (commit metadata)",
)
FETCH_REWINDS = Counter(
    "supervisor_fetch_rewinds_total",
    "Times the consumer fetched below the records already taken and was sought back",
)
RECORDS_DONE = Counter(
    "supervisor_records_completed_total", "Records durably handled (output or dead-letter)"
)
TASKS_DISPATCHED = Counter("supervisor_tasks_dispatched_total", "Tasks sent to workers", ["tenant"])
TASKS_ACKED = Counter("supervisor_tasks_acked_total", "Task acks by status", ["status"])
TASK_FAILURES = Counter("supervisor_task_failures_total", "Failed task attempts", ["reason"])
REDELIVERIES = Counter("supervisor_redeliveries_total", "Tasks sent again after a failure")
DEAD_LETTERED = Counter(
    "supervisor_dead_lettered_total", "Records written to the dead-letter topic", ["kind"]
)
PENDING_RECORDS = Gauge("supervisor_pending_records", "Consumed records not yet handled")
QUEUED_RECORDS = Gauge(
    "supervisor_queued_records", "Records waiting for a worker, per tenant", ["tenant"]
)
INFLIGHT_TASKS = Gauge("supervisor_inflight_tasks", "Tasks held by workers")
PAUSED = Gauge("supervisor_paused", "1 while fetching is paused for backpressure")
WORKERS = Gauge("supervisor_workers", "Connected worker sessions")
ASSIGNED_PARTITIONS = Gauge("supervisor_assigned_partitions", "Partitions this supervisor owns")
COMMITS = Counter("supervisor_commits_total", "Offset commits", ["result"])
COMMITTED_OFFSET = Gauge(
    "supervisor_committed_offset", "Last committed offset", ["topic", "partition"]
)
# PROCESSING_GUARANTEE=exactly_once (docs/exactly-once.md). Outcomes: committed, aborted
# (nothing visible; the tasks are retried), fenced (a worker's id taken away).
TRANSACTIONS = Counter(
    "supervisor_transactions_total",
    "The supervisor's own transactions (dead letters) and the fencing of lost workers",
    ["outcome"],
)
PROTOCOL_ERRORS = Counter(
    "supervisor_protocol_errors_total", "Worker sessions closed for breaking the protocol"
)
ACK_PROOFS_REFUSED = Counter(
    "supervisor_ack_proofs_refused_total",
    "OK acks whose write proof did not match their task (the session is closed)",
)
TASK_SECONDS = Histogram(
    "supervisor_task_seconds",
    "From dispatch to ack",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Where a record's latency goes: its age (now minus its Kafka timestamp) as it passes
# each stage, one record per consume call or task, so the cost stays off the per-record
# path. A producer's timestamp on another host carries that host's clock skew.
RECORD_AGE_BUCKETS = (
    0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30,
    60, 300,
)  # fmt: skip
RECORD_AGE = Histogram(
    "supervisor_record_age_seconds",
    "Age of a record by its Kafka timestamp when consumed (the first of each consume call), "
    "dispatched and acked OK (the first of each task)",
    ["stage"],
    buckets=RECORD_AGE_BUCKETS,
)
AGE_CONSUMED = RECORD_AGE.labels("consumed")
AGE_DISPATCHED = RECORD_AGE.labels("dispatched")
AGE_ACKED = RECORD_AGE.labels("acked")

WORKER_TASKS = Counter("worker_tasks_total", "Tasks processed by this worker", ["status"])
WORKER_RECORDS_OUT = Counter("worker_records_written_total", "Records written", ["topic_kind"])
WORKER_TRANSACTIONS = Counter(
    "worker_transactions_total", "Transactions of tasks (exactly_once)", ["outcome"]
)
WORKER_TRANSACTION_TASKS = Histogram(
    "worker_transaction_tasks",
    "Tasks committed per transaction (exactly_once)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
WORKER_TASK_SECONDS = Histogram(
    "worker_task_seconds",
    "Task processing time, receive to ack",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
WORKER_RECORD_AGE = Histogram(
    "worker_record_age_seconds",
    "Age of the first record of a task by its Kafka timestamp when the task is received "
    "and when its writes are durable (acked OK)",
    ["stage"],
    buckets=RECORD_AGE_BUCKETS,
)
AGE_RECEIVED = WORKER_RECORD_AGE.labels("received")
AGE_WRITTEN = WORKER_RECORD_AGE.labels("written")


def observe_age(stage: Histogram, timestamp_ms: int) -> None:
    """Observe the age of a record with Kafka timestamp `timestamp_ms` at `stage`.

    Records without a timestamp (-1) are skipped; one from a clock ahead of ours counts
    as age 0.
    """
    if timestamp_ms > 0:
        stage.observe(max(0.0, time.time() - timestamp_ms / 1000))


# -- MeshData (DESIGN.md section 4; docs/mesh.md) ---------------------------------------
# Domains come from the manifest, reasons from fixed sets: every label set is bounded.
MESH_DISPATCH = Counter(
    "supervisor_mesh_dispatch_total",
    "Task publishes through MeshData by final outcome: success, failure (attempts ran out "
    "or a permanent error: credit restored, records requeued), cancelled (session gone)",
    ["status"],
)
MESH_PUBLISH_RETRIES = Counter(
    "supervisor_mesh_publish_retries_total", "Publish attempts retried after a backoff", ["reason"]
)
MESH_PUBLISH_SECONDS = Histogram(
    "supervisor_mesh_publish_seconds",
    "One MeshData Publish call, any outcome",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MESH_PUBLISHES_PENDING = Gauge(
    "supervisor_mesh_publishes_pending", "Task publishes neither confirmed nor given up"
)
MESH_NODE_QUEUE_DEPTH = Gauge(
    "mesh_node_queue_depth", "Envelopes waiting in this node's subscriber queues", ["domain"]
)
MESH_NODE_SUBSCRIBERS = Gauge("mesh_node_subscribers", "Open subscriptions", ["domain"])
MESH_NODE_DELIVERED = Counter(
    "mesh_node_delivered_total", "Envelopes placed in a subscriber queue of this node", ["domain"]
)
MESH_NODE_FORWARDED = Counter(
    "mesh_node_forwarded_total", "Envelopes forwarded and accepted by another node", ["domain"]
)
MESH_NODE_REJECTED = Counter(
    "mesh_node_rejected_total",
    "Publishes this node refused or could not place",
    ["domain", "reason"],
)
MESH_NODE_DROPPED = Counter(
    "mesh_node_dropped_total",
    "Accepted envelopes still queued when their subscriber went away",
    ["domain"],
)
WORKER_MESH_ENVELOPES = Counter(
    "worker_mesh_envelopes_total",
    "Envelopes a mesh-mode worker received: task, stale (another session), duplicate, bad",
    ["result"],
)

# -- dead letters where users look (issue 13) -------------------------------------------
# Kinds come from fixed sets (parse, schema, attempts, ...), tenants through tenant_label.
WORKER_RECORDS_IN = Counter("worker_records_received_total", "Records of the tasks processed")
WORKER_DEAD_LETTERED = Counter(
    "worker_dead_lettered_total",
    "Records this worker wrote to the dead-letter topic, by tenant and error kind",
    ["tenant", "kind"],
)
DEAD_LETTERED_BY_TENANT = Counter(
    "supervisor_dead_lettered_by_tenant_total",
    "Records the supervisor wrote to the dead-letter topic, by tenant and error kind",
    ["tenant", "kind"],
)
DEAD_LETTERS_TRUNCATED = Counter(
    "supervisor_dead_letters_truncated_total",
    "Dead letters written without their payload because they exceed the broker's size limit,"
    " by the error kind that sent them there",
    ["kind"],
)
