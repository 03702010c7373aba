"""Helpers and fixtures shared by the RL tests (unit, integration, end to end)."""
