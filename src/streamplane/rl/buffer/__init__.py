"""The replay buffer: RL_RESULTS_TOPIC consumed into Parquet shards listed by a manifest.

:mod:`.service` consumes and commits, :mod:`.shards` writes shards under a directory
lock, :mod:`.manifest` lists and reads them, :mod:`.parquet_schema` fixes their columns.
"""
