"""The broker-wide memory pool for request bytes (Kafka's ``queued.max.request.bytes``).

Theory of operation
-------------------
Every request frame is admitted against this pool before its body is read: the
connection reserves the frame's announced size, reads the frame, runs its handler and
gives the bytes back when the handler has finished with the request. A connection that
cannot reserve stops reading (TCP then pushes back on its client) and tries again when
bytes come back; nothing is failed. Like Kafka's ``MemoryPool``, a reservation is all or
nothing, for the whole frame: reserving bytes as they arrive instead would let a few
half-received frames exhaust the pool with none of them able to finish.

Two bounds apply:

* the **pool** (``queued.max.request.bytes``; ``-1`` is unbounded, Kafka's default):
  reservations of all connections together never exceed it;
* the **share** (``queued.max.request.bytes.per.connection``, kafkito only): what one
  connection may hold, so one client cannot take the whole pool. A connection that holds
  nothing may always reserve one frame (up to ``socket.request.max.bytes``), so a frame
  larger than the share is still served, alone.

The configuration check (``config.py``) keeps the pool above what one connection can
hold, so a lone frame always fits once others give their bytes back: no deadlock.
A reservation is an accounting promise, not an allocation: the frame's buffer only
costs what has arrived (see ``frame_buffer`` in ``connection.py``), so a client that
announces a large frame and goes silent ties up pool bytes, not memory, until
``socket.request.incomplete.timeout.ms`` closes it.

This class is pure (no trio, no clock): the connection supplies the waiting.
"""

from __future__ import annotations

__all__ = ["RequestMemoryPool"]


class RequestMemoryPool:
    __slots__ = ("capacity_bytes", "per_connection_bytes", "reserved_bytes", "peak_reserved_bytes", "refusals")

    def __init__(self, capacity_bytes: int, per_connection_bytes: int) -> None:
        """``capacity_bytes`` < 0 means unbounded (Kafka's -1)."""
        self.capacity_bytes = capacity_bytes
        self.per_connection_bytes = per_connection_bytes
        self.reserved_bytes = 0
        self.peak_reserved_bytes = 0  # a broker-side witness for tests and metrics
        self.refusals = 0  # reservations refused because the pool (not the share) was full

    def try_reserve(self, held_bytes: int, nbytes: int) -> bool:
        """Reserve ``nbytes`` for a connection already holding ``held_bytes``; False: wait."""
        if held_bytes and held_bytes + nbytes > self.per_connection_bytes:
            return False
        reserved = self.reserved_bytes + nbytes
        if 0 <= self.capacity_bytes < reserved:
            self.refusals += 1
            return False
        self.reserved_bytes = reserved
        if reserved > self.peak_reserved_bytes:
            self.peak_reserved_bytes = reserved
        return True

    def release(self, nbytes: int) -> None:
        self.reserved_bytes -= nbytes
        assert self.reserved_bytes >= 0, "released more request bytes than were reserved"

    def is_exhausted_for(self, nbytes: int) -> bool:
        """True when the pool itself (not a connection's share) has no room for ``nbytes``."""
        return 0 <= self.capacity_bytes < self.reserved_bytes + nbytes
