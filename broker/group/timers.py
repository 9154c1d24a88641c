"""Keyed deadlines for the group coordinator: Kafka's coordinator timer, minus the threads.

Theory of operation
-------------------
Every timeout of the classic group protocol is "call this at time T unless something
happens first": a member's session (``heartbeat``), a rebalance's join phase (``join``),
a generation's sync phase (``sync``), the periodic offset-retention sweep. Kafka keys each
such timeout and lets a later ``schedule`` with the same key replace the earlier one, and
a ``cancel`` drop it. This class does the same with a heap and lazy deletion: a heap entry
is live only while the key still maps to that entry's sequence number.

Nothing here reads a clock. The owner asks ``next_deadline_ms()`` when to wake up and
calls ``pop_due(now_ms)`` until it returns None; tests drive time by hand.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable

__all__ = ["DeadlineTimer"]


class DeadlineTimer:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Hashable]] = []
        self._live: dict[Hashable, tuple[int, int, Callable[[], None]]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._live

    def schedule(self, key: Hashable, deadline_ms: int, action: Callable[[], None]) -> None:
        """Run ``action`` once ``deadline_ms`` has passed; replaces any timer under ``key``."""
        self._seq += 1
        self._live[key] = (deadline_ms, self._seq, action)
        heapq.heappush(self._heap, (deadline_ms, self._seq, key))
        self._compact()

    def cancel(self, key: Hashable) -> None:
        self._live.pop(key, None)

    def deadline_ms(self, key: Hashable) -> int | None:
        entry = self._live.get(key)
        return None if entry is None else entry[0]

    def next_deadline_ms(self) -> int | None:
        self._drop_stale_head()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> Callable[[], None] | None:
        """The earliest action whose deadline is <= now_ms (removed), or None."""
        self._drop_stale_head()
        if not self._heap or self._heap[0][0] > now_ms:
            return None
        _, _, key = heapq.heappop(self._heap)
        return self._live.pop(key)[2]

    def _drop_stale_head(self) -> None:
        heap, live = self._heap, self._live
        while heap:
            deadline, seq, key = heap[0]
            entry = live.get(key)
            if entry is not None and entry[1] == seq:
                return
            heapq.heappop(heap)

    def _compact(self) -> None:
        # Heartbeats reschedule the same key constantly; without this the heap would grow
        # by one stale entry per heartbeat until those deadlines came round.
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._live):
            self._heap = [(d, s, k) for k, (d, s, _) in self._live.items()]
            heapq.heapify(self._heap)
