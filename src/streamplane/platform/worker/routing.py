"""A processor that splits each task between two processors by a per-record test."""

from __future__ import annotations

from collections.abc import Callable

from streamplane.platform.worker.processor import Emit, Processor, ProcessorContext, WorkItem


class RoutingProcessor(Processor):
    """Records that `wants` accepts go to `special`; all others go to `default`.

    Used to make a worker the env runner too: rollout requests go to the env runner,
    events to the feature transform. Both write through the same `emit`, so the task is
    acked only once every write of both is durable.
    """

    name = "routing"

    def __init__(
        self, default: Processor, special: Processor, wants: Callable[[bytes], bool]
    ) -> None:
        self._default = default
        self._special = special
        self._wants = wants

    def open(self, context: ProcessorContext) -> None:
        """Open both processors."""
        self._default.open(context)
        self._special.open(context)

    def process(self, item: WorkItem, emit: Emit) -> None:
        """Split the task's records and run each part through its processor."""
        wants = self._wants
        values = item.records.values
        picked = [i for i, value in enumerate(values) if wants(value)]
        if not picked:
            self._default.process(item, emit)
            return
        if len(picked) == len(values):
            self._special.process(item, emit)
            return
        chosen = set(picked)
        rest = [i for i in range(len(values)) if i not in chosen]
        self._default.process(item.select(rest), emit)
        self._special.process(item.select(picked), emit)

    def close(self) -> None:
        """Close both processors."""
        self._default.close()
        self._special.close()
