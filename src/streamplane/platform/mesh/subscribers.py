"""A node's local subscribers and their bounded queues.

Each subscriber has one queue, bounded so that a slow or stuck consumer pushes back on
publishers (RESOURCE_EXHAUSTED) instead of growing the node's memory. Everything here
runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from streamplane.mesh.v1 import mesh_pb2


class SubscriberQueue:
    """One subscriber's bounded FIFO of envelopes, with a single consumer."""

    def __init__(self, subscriber_id: str, domains: frozenset[str], capacity: int) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self.subscriber_id = subscriber_id
        self.domains = domains
        self.capacity = capacity
        self._items: deque[mesh_pb2.Envelope] = deque()
        self._ready = asyncio.Event()
        self.closed = False
        # Envelopes waiting, per domain: the node's queue-depth gauge reads these.
        self.depth_by_domain: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def free(self) -> int:
        """Room left in the queue."""
        return self.capacity - len(self._items)

    def offer(self, envelope: mesh_pb2.Envelope) -> bool:
        """Queue the envelope; False when the queue is full or closed."""
        if self.closed or len(self._items) >= self.capacity:
            return False
        self._items.append(envelope)
        self.depth_by_domain[envelope.domain] += 1
        self._ready.set()
        return True

    async def take(self) -> mesh_pb2.Envelope | None:
        """The next envelope; None once the queue is closed and empty."""
        while True:
            if self._items:
                envelope = self._items.popleft()
                self.depth_by_domain[envelope.domain] -= 1
                return envelope
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        """Take no more; the consumer still gets what is queued, then None."""
        self.closed = True
        self._ready.set()

    def take_all(self) -> list[mesh_pb2.Envelope]:
        """Remove and return everything queued."""
        items = list(self._items)
        self._items.clear()
        self.depth_by_domain.clear()
        return items


class Offer(StrEnum):
    """The outcome of a local delivery attempt."""

    ACCEPTED = "accepted"
    NO_SUBSCRIBER = "no-subscriber"
    QUEUE_FULL = "queue-full"


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a delivery attempt ended."""

    outcome: Offer
    subscriber_id: str = ""
    depth: int = 0


class Subscribers:
    """The subscribers of one node, by id, with round-robin over a domain's subscribers."""

    def __init__(self, capacity: int, on_dropped: Callable[[str, int], None] | None = None) -> None:
        self.capacity = capacity
        self._by_id: dict[str, SubscriberQueue] = {}
        self._turn = itertools.count()
        self._on_dropped = on_dropped or (lambda _domain, _n: None)

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, subscriber_id: str) -> SubscriberQueue | None:
        """The open queue of this subscriber, or None."""
        return self._by_id.get(subscriber_id)

    def register(self, subscriber_id: str, domains: frozenset[str]) -> SubscriberQueue:
        """Open a subscriber's queue; a subscriber with the same id is replaced.

        The new queue takes over what the old one held (a worker that resubscribes
        after a broken connection gets its envelopes), up to its capacity.
        """
        queue = SubscriberQueue(subscriber_id, domains, self.capacity)
        old = self._by_id.get(subscriber_id)
        self._by_id[subscriber_id] = queue
        if old is not None:
            moved = old.take_all()
            old.close()
            for envelope in moved:
                if not queue.offer(envelope):
                    self._on_dropped(envelope.domain, 1)
        return queue

    def unregister(self, queue: SubscriberQueue) -> list[mesh_pb2.Envelope]:
        """Close a subscriber's queue (if still current); returns what it still held."""
        queue.close()
        if self._by_id.get(queue.subscriber_id) is queue:
            del self._by_id[queue.subscriber_id]
        left = queue.take_all()
        for domain, n in Counter(e.domain for e in left).items():
            self._on_dropped(domain, n)
        return left

    def close_all(self) -> None:
        """Stop taking envelopes; consumers get what is queued, then their stream ends."""
        for queue in self._by_id.values():
            queue.close()

    def deliver(self, envelope: mesh_pb2.Envelope) -> Delivery:
        """Place the envelope in its target subscriber's queue, or in one of its domain's."""
        if envelope.target_subscriber:
            queue = self._by_id.get(envelope.target_subscriber)
            if queue is None or queue.closed:
                return Delivery(Offer.NO_SUBSCRIBER)
            return self._offer(queue, envelope)
        candidates = [
            q for q in self._by_id.values() if envelope.domain in q.domains and not q.closed
        ]
        if not candidates:
            return Delivery(Offer.NO_SUBSCRIBER)
        start = next(self._turn) % len(candidates)
        for queue in candidates[start:] + candidates[:start]:
            if queue.free > 0:
                return self._offer(queue, envelope)
        return Delivery(Offer.QUEUE_FULL)

    def depth_by_domain(self) -> Counter[str]:
        """Envelopes waiting in all queues, per domain."""
        total: Counter[str] = Counter()
        for queue in self._by_id.values():
            total.update(queue.depth_by_domain)
        return total

    def subscribers_by_domain(self) -> Counter[str]:
        """Open subscriptions per domain."""
        return Counter(d for q in self._by_id.values() for d in q.domains)

    @staticmethod
    def _offer(queue: SubscriberQueue, envelope: mesh_pb2.Envelope) -> Delivery:
        if queue.offer(envelope):
            return Delivery(Offer.ACCEPTED, queue.subscriber_id, len(queue))
        return Delivery(Offer.QUEUE_FULL, queue.subscriber_id, len(queue))
