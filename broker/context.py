"""The state a request handler sees: the broker's shared parts and the request's header."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from kafkito.protocol import RequestHeader
    from kafkito.storage import Clock, LogManager

    from .config import BrokerConfig
    from .partitions import PartitionManager

__all__ = ["BrokerState", "CloseConnection", "Deferred", "RequestContext", "resolve"]


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
    txns: Any = None  # TransactionService, once the transaction coordinator is attached
    request_pool: Any = None  # RequestMemoryPool shared by every connection (see request_pool.py)
    request_pool_lot: Any = None  # trio ParkingLot: connections waiting for pool bytes


@dataclass(eq=False, slots=True)
class RequestContext:
    header: RequestHeader
    broker: BrokerState
    client_host: str = ""

    @property
    def api_version(self) -> int:
        return self.header.api_version


@dataclass(eq=False, slots=True)
class Deferred:
    """A handler's answer that has to wait: an fsync, a long poll, a rebalance.

    Handlers run one at a time per connection, in request order, inside the connection's
    reader (see connection.py); whatever a handler awaits holds up the requests behind it
    on that connection, as on Kafka. A handler that must park returns a ``Deferred``
    instead, once it has done everything that has to happen in order (Produce after its
    appends, Fetch after its first read): the connection awaits ``wait()`` in a task of its
    own and goes on with the next request, and the response still goes out in order.
    """

    wait: Callable[[], Awaitable[Any]]


async def resolve(result: Any) -> Any:
    """The response behind a handler's result, waiting for it if the handler deferred."""
    if isinstance(result, Deferred):
        return await result.wait()
    return result
