"""Sizes and bounds of a bench run, each with the reason for its number."""

# Demo events as `streamplane produce` writes them by default.
TENANTS = 3
USERS = 1000
SEED = 7

# Records per consume() in the passthrough: one call hands over many records at the cost
# of one, and one flush+commit per batch keeps the per-record overhead down.
PASSTHROUGH_BATCH = 10_000
# How often committed offsets are polled (the issue asks ~100 ms) and RSS is sampled.
POLL_S = 0.1
RSS_SAMPLE_S = 0.2
# Bounds that turn a hang into an error: process start (polars and grpc imports on a
# loaded 2-core machine take seconds), a run that stops moving, a graceful stop.
READY_TIMEOUT_S = 120.0
STALL_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
REACH_TIMEOUT_S = 15.0
# Deleting the bench's topics at the end is a courtesy; it must not hold the exit long.
DELETE_TIMEOUT_S = 15.0
# The latency run produces for at most this long (and at most COUNT events).
LATENCY_SECONDS = 10.0
# Before its clock starts the latency run pushes this many seconds of events through the
# fleet and waits until they are committed: the first second after a start pays the
# clients' first metadata look-ups and connections (measured: p50 near 700 ms in the
# first second, ~100 ms after the third), which is start-up time, not latency at load.
WARMUP_SECONDS = 1.0
