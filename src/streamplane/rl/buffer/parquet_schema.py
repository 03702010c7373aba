"""The replay buffer's Parquet schema.

Kept apart from `transitions` so that what only validates requests (the training API in
the supervisor, the env runner) does not load pyarrow: ~50 MB of resident memory.
"""

from __future__ import annotations

import pyarrow as pa

#: One buffer row: the transition, plus where it came from in Kafka.
TRANSITION_SCHEMA = pa.schema(
    [
        pa.field("env", pa.string(), nullable=False),
        pa.field("skill", pa.string(), nullable=False),
        pa.field("policy_version", pa.int64(), nullable=False),
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("obs", pa.list_(pa.float32()), nullable=False),
        pa.field("action", pa.int64(), nullable=False),
        pa.field("reward", pa.float64(), nullable=False),
        pa.field("next_obs", pa.list_(pa.float32()), nullable=False),
        pa.field("terminated", pa.bool_(), nullable=False),
        pa.field("truncated", pa.bool_(), nullable=False),
        pa.field("src_partition", pa.int32(), nullable=False),
        pa.field("src_offset", pa.int64(), nullable=False),
        pa.field("timestamp_ms", pa.int64(), nullable=False),
    ]
)
