"""The worker: takes tasks by credit, runs a processor, writes results, acks."""
