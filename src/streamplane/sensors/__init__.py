"""The Dagster sensors: Kafka lag drives worker runs; liveness keeps supervisors up.

Import them from their modules (``kafka_lag``, ``liveness``).
"""
