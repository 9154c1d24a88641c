"""Connection limits: ``max.connections``, ``max.connections.per.ip``, ``max.connection.creation.rate``.

Theory of operation
-------------------
Kafka's ``ConnectionQuotas``, reduced to one listener. The accept loop asks
``accept_delay_s(now_s)`` before each accept and sleeps that long, so new connections
are taken at most at ``max.connection.creation.rate`` per second (a token bucket holding
one second's worth, so a burst up to the rate is taken at once); clients beyond it wait
in the kernel's backlog, as on Kafka, which throttles its acceptor the same way. Each
accepted connection is then offered to ``admit(ip)``: past ``max.connections`` in all or
``max.connections.per.ip`` from one address it is refused (the caller closes it right
after accept) and the reason is returned for the log; otherwise it is counted until
``release(ip)``.

Pure (no trio, no sockets, time passed in), so the limits are unit-tested without a
network.
"""

from __future__ import annotations

__all__ = ["ConnectionQuotas"]


class ConnectionQuotas:
    def __init__(self, max_connections: int, max_connections_per_ip: int, max_creation_rate: int) -> None:
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.max_creation_rate = max_creation_rate
        self.total = 0
        self.by_ip: dict[str, int] = {}
        self._tokens = float(max_creation_rate)
        self._tokens_at_s: float | None = None

    def admit(self, ip: str) -> str | None:
        """Count a new connection from ``ip``; or the reason it must be closed (not counted)."""
        if self.total >= self.max_connections:
            return f"{self.total} connections reached max.connections ({self.max_connections})"
        count = self.by_ip.get(ip, 0)
        if count >= self.max_connections_per_ip:
            return f"{count} connections from {ip} reached max.connections.per.ip ({self.max_connections_per_ip})"
        self.total += 1
        self.by_ip[ip] = count + 1
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        count = self.by_ip[ip] - 1
        if count:
            self.by_ip[ip] = count
        else:
            del self.by_ip[ip]

    def accept_delay_s(self, now_s: float) -> float:
        """How long to wait before the next accept; 0 takes one token for it."""
        rate = self.max_creation_rate
        if self._tokens_at_s is not None:
            self._tokens = min(float(rate), self._tokens + (now_s - self._tokens_at_s) * rate)
        self._tokens_at_s = now_s
        if self._tokens >= 1 - 1e-9:  # the slack absorbs float error in the refill above
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return (1 - self._tokens) / rate
