"""The supervisor: consumes Kafka, dispatches tasks to workers by credit, commits offsets."""
