"""GroupService: the trio side of the group coordinator, and the handlers' typed door.

Theory of operation
-------------------
The pure ``GroupCoordinator`` decides; ``coordinator_runtime.CoordinatorShell`` supplies
what it leaves out (a timer task that polls it at its next deadline, a writer task that
appends its outbox to ``__consumer_offsets`` and reports each write back, a worker-thread
replay of the topic at load, and waiting on waiters). This module adds only what is the
group coordinator's own:

* **The topic.** ``load()`` creates ``__consumer_offsets`` if missing (compacted, Kafka's
  settings), and keeps the partition count the topic already has (groups stay where they
  were written), then replays it. Until then handlers answer
  COORDINATOR_LOAD_IN_PROGRESS (the broker only accepts connections after loading, so a
  client sees it only if loading is ever made concurrent).
* **Typed calls.** One method per request the handlers make, with the broker's current
  time; each wakes the shell, since a call may queue writes or move the next deadline.
  Requests that park (JoinGroup, SyncGroup, OffsetCommit, OffsetDelete, DeleteGroups)
  return a ``Waiter``; a handler ``await service.wait(waiter)``.

Trio runs one task at a time, so coordinator calls never interleave: no lock is needed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping

from kafkito.protocol import ErrorCode

from ..coordinator_runtime import CoordinatorShell, ShellService, Waiter, ensure_coordinator_topic
from .classic import DescribedGroup, JoinResult, LeaveResult, SyncResult
from .consumer_group import ConsumerGroup, HeartbeatResult
from .coordinator import GroupConfig, GroupCoordinator, ListedGroup
from .offsets import FetchedOffset, OffsetCommitEntry, TopicResults

log = logging.getLogger("kafkito.broker.group")

__all__ = ["GroupService", "OFFSETS_TOPIC"]

OFFSETS_TOPIC = "__consumer_offsets"
# Kafka's settings for the offsets topic (offsets.topic.segment.bytes etc.): compacted,
# with segments small enough for the cleaner to keep the topic small.
OFFSETS_TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "segment.bytes": str(100 * 1024 * 1024),
}


class GroupService(ShellService):
    def __init__(self, state, *, now_ms: Callable[[], int] | None = None) -> None:
        self.state = state
        self.config = GroupConfig.from_broker_config(state.config)
        self.now_ms: Callable[[], int] = now_ms or state.clock.now_ms
        self.loading = True
        self._use(GroupCoordinator(self.config))

    def _use(self, coordinator: GroupCoordinator) -> None:
        self.coordinator = coordinator
        self.shell = CoordinatorShell(coordinator, topic=OFFSETS_TOPIC, partitions=self.state.partitions,
                                      logs=self.state.logs, now_ms=self.now_ms)

    # ------------------------------------------------------------ lifecycle
    async def load(self) -> None:
        configs = dict(OFFSETS_TOPIC_CONFIGS,
                       **{"segment.bytes": str(self.state.config.offsets_topic_segment_bytes)})
        n_partitions = ensure_coordinator_topic(self.state.partitions, OFFSETS_TOPIC,
                                                self.config.offsets_topic_num_partitions, configs,
                                                "offsets.topic.num.partitions")
        if n_partitions != self.config.offsets_topic_num_partitions:
            self.config = dataclasses.replace(self.config, offsets_topic_num_partitions=n_partitions)
            self._use(GroupCoordinator(self.config))
        n = await self.shell.load(n_partitions)
        self.loading = False
        coordinator = self.coordinator
        log.info("group coordinator loaded %d records: %d groups, %d with offsets",
                 n, len(coordinator.groups), len(coordinator.offsets))

    async def run(self) -> None:
        """The timer and writer tasks; runs until cancelled."""
        await self.shell.run()

    # ------------------------------------------------------------ classic groups
    def join_group(self, *, group_id: str, member_id: str, group_instance_id: str | None, protocol_type: str,
                   protocols: list[tuple[str, bytes]], session_timeout_ms: int, rebalance_timeout_ms: int,
                   client_id: str, client_host: str, require_known_member_id: bool,
                   supports_skip_assignment: bool = False) -> Waiter[JoinResult]:
        return self.coordinator.join_group(
            group_id=group_id, member_id=member_id, group_instance_id=group_instance_id,
            protocol_type=protocol_type, protocols=protocols, session_timeout_ms=session_timeout_ms,
            rebalance_timeout_ms=rebalance_timeout_ms, client_id=client_id, client_host=client_host,
            require_known_member_id=require_known_member_id, supports_skip_assignment=supports_skip_assignment,
            now_ms=self._now())

    def sync_group(self, *, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None,
                   protocol_type: str | None = None, protocol_name: str | None = None,
                   assignments: Iterable[tuple[str, bytes]] = ()) -> Waiter[SyncResult]:
        return self.coordinator.sync_group(
            group_id=group_id, generation_id=generation_id, member_id=member_id,
            group_instance_id=group_instance_id, protocol_type=protocol_type, protocol_name=protocol_name,
            assignments=assignments, now_ms=self._now())

    def heartbeat(self, *, group_id: str, member_id: str, group_instance_id: str | None,
                  generation_id: int) -> ErrorCode:
        return self.coordinator.heartbeat(group_id=group_id, member_id=member_id,
                                          group_instance_id=group_instance_id, generation_id=generation_id,
                                          now_ms=self._now())

    def leave_group(self, *, group_id: str, members: Iterable[tuple[str, str | None]]) -> LeaveResult:
        return self.coordinator.leave_group(group_id=group_id, members=members, now_ms=self._now())

    def describe_group(self, group_id: str) -> DescribedGroup:
        return self.coordinator.describe_group(group_id, now_ms=self._now())

    # ------------------------------------------------------------ KIP-848 consumer groups
    def consumer_group_heartbeat(self, *, group_id: str, member_id: str, member_epoch: int,
                                 instance_id: str | None, rack_id: str | None, rebalance_timeout_ms: int,
                                 subscribed_topic_names: list[str] | None, subscribed_topic_regex: str | None,
                                 server_assignor: str | None, owned: Mapping[str, set[int]] | None,
                                 topics: Mapping[str, int], client_id: str = "",
                                 client_host: str = "") -> HeartbeatResult:
        return self.coordinator.consumer_group_heartbeat(
            group_id=group_id, member_id=member_id, member_epoch=member_epoch, instance_id=instance_id,
            rack_id=rack_id, rebalance_timeout_ms=rebalance_timeout_ms,
            subscribed_topic_names=subscribed_topic_names, subscribed_topic_regex=subscribed_topic_regex,
            server_assignor=server_assignor, owned=owned, topics=topics, client_id=client_id,
            client_host=client_host, now_ms=self._now())

    def consumer_group_describe(self, group_id: str) -> ConsumerGroup | str:
        return self.coordinator.consumer_group_describe(group_id, now_ms=self._now())

    # ------------------------------------------------------------ offsets
    def commit_offsets(self, *, group_id: str, member_id: str, group_instance_id: str | None,
                       generation_id: int, topics: Iterable[tuple[str, Iterable[OffsetCommitEntry]]],
                       retention_time_ms: int = -1, api_version: int) -> Waiter[TopicResults]:
        return self.coordinator.commit_offsets(
            group_id=group_id, member_id=member_id, group_instance_id=group_instance_id,
            generation_id=generation_id, topics=topics, retention_time_ms=retention_time_ms,
            api_version=api_version, now_ms=self._now())

    def fetch_offsets(self, *, group_id: str, topics: Iterable[tuple[str, Iterable[int]]] | None,
                      require_stable: bool = False) -> list[tuple[str, list[FetchedOffset]]]:
        return self.coordinator.fetch_offsets(group_id=group_id, topics=topics, require_stable=require_stable,
                                              now_ms=self._now())

    def commit_txn_offsets(self, *, group_id: str, producer_id: int, producer_epoch: int, member_id: str,
                           group_instance_id: str | None, generation_id: int,
                           topics: Iterable[tuple[str, Iterable[OffsetCommitEntry]]]) -> Waiter[TopicResults]:
        return self.coordinator.commit_txn_offsets(
            group_id=group_id, producer_id=producer_id, producer_epoch=producer_epoch, member_id=member_id,
            group_instance_id=group_instance_id, generation_id=generation_id, topics=topics, now_ms=self._now())

    def complete_txn(self, partition: int, producer_id: int, commit: bool) -> None:
        """A transaction marker is durable in ``__consumer_offsets`` partition ``partition``."""
        self.coordinator.complete_txn(partition, producer_id, commit)

    def delete_offsets(self, *, group_id: str, topics: Iterable[tuple[str, Iterable[int]]]
                       ) -> Waiter[tuple[ErrorCode, TopicResults]]:
        return self.coordinator.delete_offsets(group_id=group_id, topics=topics, now_ms=self._now())

    # ------------------------------------------------------------ admin
    def list_groups(self, *, states: Iterable[str] = (), types: Iterable[str] = ()) -> list[ListedGroup]:
        return self.coordinator.list_groups(states=states, types=types, now_ms=self._now())

    def delete_groups(self, group_ids: Iterable[str]) -> Waiter[list[tuple[str, ErrorCode]]]:
        return self.coordinator.delete_groups(group_ids, now_ms=self._now())
