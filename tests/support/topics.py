"""Reading topics back and unique names, shared: :mod:`streamplane.testing.topics`."""

from streamplane.testing.topics import (
    FreshTopics,
    ReadRecord,
    fresh_topic_names,
    read_all,
    unique_name,
)

__all__ = ["FreshTopics", "ReadRecord", "fresh_topic_names", "read_all", "unique_name"]
