"""Helpers shared by streamplane's tests: bounded waits and topic readers."""
