"""The streamplane runtime: Kafka, supervisor, workers and features, usable without Dagster."""
