"""Tools for developers, not the runtime: nothing in the plane imports this package.

``broker/`` the embedded Kafka (jars, KRaft files, JVM lifecycle, ``streamplane
broker``); ``devstack`` (``streamplane dev``); ``dagster_dev`` (``make run``);
``demo_events`` (``streamplane produce``); ``bench/`` (``streamplane bench``).
"""
