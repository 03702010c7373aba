"""Helpers that the project's tests and its tools share, not part of the runtime.

``procs`` the fleet of real ``streamplane`` processes (start, readiness, stop);
``stack`` one test's broker, topics and demo data; ``topics`` reading topics back and
unique names; ``audit`` matching outputs and dead letters to their inputs; ``deadline``
bounded waits.
"""
