"""streamplane: a streaming data plane for Kafka, orchestrated by Dagster."""

__version__ = "0.1.0"
