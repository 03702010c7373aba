"""Errors raised by streamplane's mesh layer.

``grpc.RpcError`` never leaves this package: `client.py` translates it at one seam,
transient failures (no subscriber, a full queue, a node out of reach) into
:class:`TransientPublishError` and the rest into :class:`PermanentPublishError`, chained
to the original with ``raise ... from exc``.
"""

from __future__ import annotations

from streamplane.exceptions import ConfigError, PermanentError, StreamplaneError, TransientError


class MeshError(StreamplaneError):
    """Base class of every error raised by ``streamplane.platform.mesh``."""


class ManifestError(ConfigError, MeshError):
    """The mesh manifest (MESH_SERVICES_FILE) is unreadable or invalid.

    `field` names the offending place in the document, like ``nodes[2].endpoint``; the
    message carries the file, the field and the reason.
    """

    def __init__(self, source: str, field: str, reason: str) -> None:
        super().__init__("MESH_SERVICES_FILE", f"{source}: {field}: {reason}")
        self.source = source
        self.field = field


class PublishError(MeshError):
    """A Publish did not place the envelope in a subscriber's queue.

    `code` is the gRPC status name (``UNAVAILABLE``, ...) and `reason` the node's short
    reason (``no-subscriber``, ``queue-full``, ``unreachable``, ...), a bounded set that
    metrics may use as a label.
    """

    def __init__(self, code: str, reason: str, detail: str) -> None:
        super().__init__(f"{code} ({reason}): {detail}")
        self.code = code
        self.reason = reason
        self.detail = detail


class TransientPublishError(PublishError, TransientError):
    """The publish may succeed if tried again: no subscriber yet, a full queue, a node down."""


class PermanentPublishError(PublishError, PermanentError):
    """Trying the same publish again cannot work: an unknown domain or node, a bad envelope."""


class SubscriptionRefused(MeshError, PermanentError):
    """A node refused a subscription (a domain it does not serve, another node id).

    `code` is the gRPC status name: FAILED_PRECONDITION when the node has another id,
    INVALID_ARGUMENT when the subscription asks for something the node does not serve.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class SubscriptionLost(MeshError, TransientError):
    """An open subscription ended: the node stopped, or the connection broke."""
