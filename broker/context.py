"""The state a request handler sees: the broker's shared parts and the request's header."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from kafkito.protocol import RequestHeader
    from kafkito.storage import Clock, LogManager

    from .config import BrokerConfig
    from .partitions import PartitionManager

__all__ = ["BrokerState", "CloseConnection", "RequestContext"]


class CloseConnection(Exception):
    """Raised by a handler when Kafka would drop the connection (e.g. an acks=0 error)."""


@dataclass(eq=False)
class BrokerState:
    config: BrokerConfig
    logs: LogManager
    clock: Clock
    partitions: PartitionManager
    node_id: int
    cluster_id: str
    advertised_host: str
    advertised_port: int
    handlers: dict[int, Any] = field(default_factory=dict)
    producer_ids: Any = None  # ProducerIdManager
    groups: Any = None  # GroupService, once the group coordinator is attached


def _no_order() -> None:
    pass


@dataclass(eq=False, slots=True)
class RequestContext:
    header: RequestHeader
    broker: BrokerState
    client_host: str = ""
    # Called by a handler just before it parks (a long-poll, an fsync, a rebalance):
    # from then on the connection's next request may run. See connection.py.
    release_order: Callable[[], None] = _no_order

    @property
    def api_version(self) -> int:
        return self.header.api_version
