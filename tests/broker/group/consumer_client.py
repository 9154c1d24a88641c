"""A simulated KIP-848 consumer for the pure coordinator tests (no I/O, no clock).

It behaves as librdkafka and the Java consumer do: it sends the partitions it owns with
every heartbeat and takes an assignment in a response as its new ownership, adding what
is new; what is missing it must revoke, which takes a while (commits, callbacks): those
stay owned, and reported, until ``finish_revocation()``. On FENCED_MEMBER_EPOCH or
UNKNOWN_MEMBER_ID it drops everything and rejoins with epoch 0 (keeping its member id).
"""

from __future__ import annotations

from kafkito.protocol import ErrorCode

E = ErrorCode


class Client:
    def __init__(self, coordinator, group_id: str, topics: list[str], *, instance_id: str | None = None,
                 assignor: str | None = None, rebalance_timeout_ms: int = 60_000,
                 lazy: bool = False) -> None:
        self.lazy = lazy  # revocations wait for finish_revocation()
        self.coordinator = coordinator
        self.group_id = group_id
        self.topics = topics
        self.instance_id = instance_id
        self.assignor = assignor
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.member_id = ""
        self.epoch = 0
        self.owned: dict[str, set[int]] = {}
        self.revoking: set[tuple[str, int]] = set()
        self.joined = False
        self.last = None

    def heartbeat(self, now_ms: int, metadata: dict[str, int]):
        joining = self.epoch == 0
        r = self.coordinator.consumer_group_heartbeat(
            group_id=self.group_id, member_id=self.member_id, member_epoch=self.epoch,
            instance_id=self.instance_id, rack_id=None,
            rebalance_timeout_ms=self.rebalance_timeout_ms if joining else -1,
            subscribed_topic_names=list(self.topics) if joining else None,
            subscribed_topic_regex=None, server_assignor=self.assignor if joining else None,
            owned={} if joining else self._reported(),
            topics=metadata, now_ms=now_ms)
        self.last = r
        if r.error in (E.FENCED_MEMBER_EPOCH, E.UNKNOWN_MEMBER_ID):
            self.epoch, self.owned, self.joined, self.revoking = 0, {}, False, set()
        elif r.error == E.NONE:
            self.member_id, self.epoch, self.joined = r.member_id, r.member_epoch, True
            if r.assignment is not None:
                new = {t: set(ps) for t, ps in r.assignment.items() if ps}
                had = {(t, p) for t, ps in self.owned.items() for p in ps}
                self.owned = new
                self.revoking = (self.revoking | had) - {(t, p) for t, ps in new.items() for p in ps}
                if not self.lazy:
                    self.revoking = set()
        return r

    def finish_revocation(self) -> None:
        self.revoking = set()

    def _reported(self) -> dict[str, set[int]]:
        out = {t: set(ps) for t, ps in self.owned.items()}
        for t, p in self.revoking:
            out.setdefault(t, set()).add(p)
        return out

    def leave(self, now_ms: int, static: bool = False):
        r = self.coordinator.consumer_group_heartbeat(
            group_id=self.group_id, member_id=self.member_id, member_epoch=-2 if static else -1,
            instance_id=self.instance_id, rack_id=None, rebalance_timeout_ms=-1,
            subscribed_topic_names=None, subscribed_topic_regex=None, server_assignor=None,
            owned=None, topics={}, now_ms=now_ms)
        self.member_id = "" if not static else self.member_id
        self.epoch, self.owned, self.joined, self.revoking = 0, {}, False, set()
        return r

    def partitions(self) -> set[tuple[str, int]]:
        return {(t, p) for t, ps in self.owned.items() for p in ps} | self.revoking
