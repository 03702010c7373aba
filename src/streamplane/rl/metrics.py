"""Prometheus metrics of the RL loop, with bounded label sets.

Training runs are labelled by Slurm state (a fixed set); skills are capped like tenants:
past :data:`MAX_SKILL_LABELS` distinct skills the rest count as ``other``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from streamplane.platform.metrics import LabelCap

MAX_SKILL_LABELS = 50

skill_label = LabelCap(MAX_SKILL_LABELS)


TRAINING_RUNS = Counter(
    "supervisor_training_runs_total",
    "Training runs by the state they reached (SUBMITTED, COMPLETED, FAILED, CANCELLED, ...)",
    ["state"],
)
TRAINING_ACTIVE = Gauge(
    "supervisor_training_active", "Training runs submitted and not yet finished"
)
TRAINING_DURATION = Histogram(
    "supervisor_training_duration_seconds",
    "From submission to the end of a training run",
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 48 * 3600),
)
SKILL_EVENTS = Counter(
    "supervisor_skill_events_total", "RL transitions taken into the buffer, per skill", ["skill"]
)
BUFFER_TRANSITIONS = Gauge(
    "supervisor_rl_buffer_transitions", "Transitions held in complete shards, per skill", ["skill"]
)
BUFFER_SHARDS = Gauge(
    "supervisor_rl_buffer_shards", "Complete shards holding each skill", ["skill"]
)
BUFFER_BYTES = Gauge("supervisor_rl_buffer_bytes", "Bytes of the complete shards on disk")
BUFFER_INVALID = Counter(
    "supervisor_rl_buffer_invalid_total", "Results-topic records that were not transitions"
)
ROLLOUT_EPISODES = Counter(
    "worker_rollout_episodes_total", "Episodes played for rollout requests", ["skill"]
)
ROLLOUT_TRANSITIONS = Counter(
    "worker_rollout_transitions_total", "Transitions emitted by the env runner", ["skill"]
)
