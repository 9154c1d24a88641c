"""Test harness for the pure group coordinator: a manual clock, a log that stores what
the coordinator writes (encoded, as the broker would append it), and simulated clients.

The "log" is only a list of (partition, key bytes, value bytes) appended in outbox order;
``restart()`` replays it into a fresh coordinator exactly as the broker does at startup.
"""

from __future__ import annotations

import itertools
import struct

from kafkito.broker.group.coordinator import GroupConfig, GroupCoordinator
from kafkito.protocol import ErrorCode

E = ErrorCode


def subscription(topics, user_data=None) -> bytes:
    """ConsumerProtocolSubscription v0."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    if user_data is None:
        return out + struct.pack(">i", -1)
    return out + struct.pack(">i", len(user_data)) + user_data


def assignment(parts: dict[str, list[int]]) -> bytes:
    """ConsumerProtocolAssignment v0."""
    out = struct.pack(">hi", 0, len(parts))
    for t, ps in sorted(parts.items()):
        out += struct.pack(">h", len(t)) + t.encode() + struct.pack(">i", len(ps))
        out += b"".join(struct.pack(">i", p) for p in sorted(ps))
    return out + struct.pack(">i", -1)


def parse_assignment(raw: bytes) -> dict[str, list[int]]:
    if not raw:
        return {}
    (_, n), pos = struct.unpack_from(">hi", raw, 0), 6
    out = {}
    for _ in range(n):
        (ln,) = struct.unpack_from(">h", raw, pos)
        pos += 2
        t = raw[pos:pos + ln].decode()
        pos += ln
        (k,) = struct.unpack_from(">i", raw, pos)
        pos += 4
        out[t] = list(struct.unpack_from(f">{k}i", raw, pos))
        pos += 4 * k
    return out


class Harness:
    def __init__(self, config: GroupConfig | None = None, now_ms: int = 1_000_000) -> None:
        self.config = config or GroupConfig()
        self.now = now_ms
        self.log: list[tuple[int, bytes, bytes | None]] = []
        self._ids = itertools.count()
        self.c = self._new_coordinator()
        self.c.start(self.now)

    def _new_coordinator(self) -> GroupCoordinator:
        return GroupCoordinator(self.config, new_member_suffix=lambda: f"id{next(self._ids)}")

    def advance(self, ms: int) -> None:
        self.now += ms
        self.c.poll(self.now)

    def flush(self, error: ErrorCode = E.NONE) -> int:
        """Append every queued write (or fail them all with ``error``); returns how many."""
        n = 0
        while writes := self.c.take_writes():
            for w in writes:
                if error == E.NONE:
                    for key, value in w.records():
                        self.log.append((w.partition, key, value))
                self.c.write_done(w, error)
                n += 1
        return n

    def restart(self) -> None:
        """A new coordinator loaded from the log (queued writes are lost, as in a crash)."""
        self.c = self._new_coordinator()
        for _, key, value in self.log:
            self.c.replay(key, value)
        self.c.finish_load(self.now)

    # -- client-side shortcuts ----------------------------------------------------------
    def join(self, group="g", member_id="", instance=None, topics=("t",), protocols=None,
             session_ms=10_000, rebalance_ms=30_000, client_id="client", v4=True, v9=False,
             protocol_type="consumer"):
        if protocols is None:
            protocols = [("range", subscription(list(topics)))]
        return self.c.join_group(
            group_id=group, member_id=member_id, group_instance_id=instance,
            protocol_type=protocol_type, protocols=protocols, session_timeout_ms=session_ms,
            rebalance_timeout_ms=rebalance_ms, client_id=client_id, client_host="/127.0.0.1",
            require_known_member_id=v4, supports_skip_assignment=v9, now_ms=self.now)

    def join_new(self, group="g", **kw):
        """A dynamic v4+ member's two-step join: returns the parked/complete waiter."""
        first = self.join(group, **kw)
        assert first.result.error == E.MEMBER_ID_REQUIRED, first.result
        return self.join(group, member_id=first.result.member_id, **kw)

    def sync(self, join_result, group="g", assignments=(), instance=None):
        w = self.c.sync_group(group_id=group, generation_id=join_result.generation_id,
                              member_id=join_result.member_id, group_instance_id=instance,
                              protocol_type="consumer", protocol_name=join_result.protocol_name,
                              assignments=assignments, now_ms=self.now)
        self.flush()
        return w

    def heartbeat(self, member_id, generation, group="g", instance=None):
        return self.c.heartbeat(group_id=group, member_id=member_id, group_instance_id=instance,
                                generation_id=generation, now_ms=self.now)

    def commit(self, offsets: dict[tuple[str, int], int], group="g", member_id="", generation=-1,
               instance=None, api_version=8, metadata=None, retention_ms=-1, flush=True):
        from kafkito.broker.group.coordinator import OffsetCommitEntry
        by_topic: dict[str, list] = {}
        for (t, p), o in offsets.items():
            by_topic.setdefault(t, []).append(OffsetCommitEntry(p, o, metadata=metadata))
        w = self.c.commit_offsets(group_id=group, member_id=member_id, group_instance_id=instance,
                                  generation_id=generation, topics=list(by_topic.items()),
                                  retention_time_ms=retention_ms, api_version=api_version,
                                  now_ms=self.now)
        if flush:
            self.flush()
        return w

    def committed(self, group="g") -> dict[tuple[str, int], int]:
        return {(t, f.partition): f.offset
                for t, row in self.c.fetch_offsets(group_id=group, topics=None, now_ms=self.now)
                for f in row}
