"""The Dagster sensors: Kafka lag drives worker runs; liveness keeps supervisors up.

Import them from their modules (``kafka_lag``, ``liveness``): this package imports nothing
itself, so ``group_offsets`` can run as a light child process without loading Dagster.
"""
