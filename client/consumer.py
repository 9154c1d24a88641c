"""The async consumer: assign or subscribe, then ``await consumer.poll()`` or ``async for``.

Theory of operation
-------------------
The consumer keeps a ``_PartitionState`` per assigned partition: the *position* (the next
offset ``poll`` returns), whether it is paused, and records already fetched but not yet
returned. A partition without a position gets one before it is fetched: the group's
committed offset if there is one, else ``auto.offset.reset`` (earliest, latest, or none:
raise ``NoOffsetForPartitionError``-like ``OffsetOutOfRangeError``).

Fetching runs ahead of ``poll``: for every broker leading a fetchable partition (assigned,
not paused, positioned, nothing buffered) one Fetch is in flight at a time, in a task of the
consumer's task group, so the next records are on their way while the caller works on the
last ones. A response is kept only if the partition is still assigned and still at the
position it was fetched from (a ``seek`` meanwhile discards it). ``poll`` returns up to
``max.poll.records`` records, taking from partitions in turn, and waits up to ``timeout``
seconds when there is nothing yet.

With a ``group_id`` and ``subscribe()``, membership is group.py's (classic protocol):
``poll`` first makes sure the member is in a stable generation (joining, rebalancing,
committing and revoking as needed) and a heartbeat task keeps it there. With ``assign()``
the group id only names where offsets are committed (a "standalone" consumer).
``enable.auto.commit`` commits the positions every ``auto.commit.interval.ms`` from poll,
before a rebalance revokes partitions, and on close.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict

import anyio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.fetch import FetchPartition, FetchRequest, FetchTopic

from .base import ClientBase
from .cluster import Cluster
from .errors import IllegalStateError, KafkaError, error_for
from .fetcher import decode_partition
from .offsets import EARLIEST, LATEST, commit_offsets, fetch_committed, list_offsets
from .types import ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp, TopicPartition

__all__ = ["Consumer"]

log = logging.getLogger("kafkito.client")

FETCH_MAX_VERSION = 12
_ISOLATION = {"read_uncommitted": 0, "read_committed": 1}
_METADATA_ERRORS = {ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.FENCED_LEADER_EPOCH,
                    ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.UNKNOWN_TOPIC_ID}


class _PartitionState:
    __slots__ = ("position", "paused", "records", "index", "next_fetch", "high_watermark",
                 "last_stable_offset", "log_start_offset", "reset", "leader_epoch", "epoch", "last_chunk")

    def __init__(self) -> None:
        self.position: int | None = None
        self.paused = False
        self.records: list[ConsumerRecord] = []
        self.index = 0
        # Where the next fetch starts: past the records buffered (they are fetched ahead
        # of poll); -1 until the position is known.
        self.next_fetch = -1
        self.epoch = 0  # bumped by every seek: a fetch asked before it is stale
        self.last_chunk = 0  # records in the last fetched chunk
        self.high_watermark = -1
        self.last_stable_offset = -1
        self.log_start_offset = -1
        self.reset: str | None = None  # a pending reset strategy ("earliest"/"latest")
        self.leader_epoch = -1

    @property
    def buffered(self) -> int:
        return len(self.records) - self.index

    def clear(self) -> None:
        self.records = []
        self.index = 0

    def move_to(self, offset: int | None) -> None:
        """A new position (None: to be reset); buffered and in-flight records are dropped."""
        self.position = offset
        self.next_fetch = -1 if offset is None else offset
        self.epoch += 1
        self.clear()


class Consumer(ClientBase):
    """An async Kafka consumer (asyncio or trio through anyio). Use ``async with``.

    Settings (Kafka's names, dots as underscores): ``group_id`` (None), ``client_id``,
    ``auto_offset_reset`` ("latest"; "earliest", "none"), ``enable_auto_commit`` (True when a
    group id is given), ``auto_commit_interval_ms`` (5000), ``isolation_level``
    ("read_uncommitted"), ``fetch_min_bytes`` (1), ``fetch_max_bytes`` (52428800),
    ``max_partition_fetch_bytes`` (1048576), ``fetch_max_wait_ms`` (500),
    ``max_poll_records`` (500), ``session_timeout_ms`` (45000), ``heartbeat_interval_ms``
    (3000), ``max_poll_interval_ms`` (300000, the rebalance timeout),
    ``partition_assignment_strategy`` (("range", "cooperative-sticky")), ``group_instance_id``
    (None), ``check_crcs`` (True), ``request_timeout_ms`` (30000).
    """

    def __init__(self, bootstrap_servers="127.0.0.1:9092", *topics: str, group_id: str | None = None,
                 client_id: str = "kafkito-consumer", auto_offset_reset: str = "latest",
                 enable_auto_commit: bool | None = None, auto_commit_interval_ms: int = 5000,
                 isolation_level: str = "read_uncommitted", fetch_min_bytes: int = 1,
                 fetch_max_bytes: int = 52428800, max_partition_fetch_bytes: int = 1048576,
                 fetch_max_wait_ms: int = 500, max_poll_records: int = 500,
                 session_timeout_ms: int = 45000, heartbeat_interval_ms: int = 3000,
                 max_poll_interval_ms: int = 300000, partition_assignment_strategy=("range", "cooperative-sticky"),
                 group_instance_id: str | None = None, group_protocol: str = "classic",
                 group_remote_assignor: str | None = None, check_crcs: bool = True,
                 request_timeout_ms: int = 30000, metadata_max_age_ms: int = 300000,
                 retry_backoff_ms: int = 100, connect_timeout_ms: int = 10000,
                 allow_auto_create_topics: bool = False) -> None:
        if isolation_level not in _ISOLATION:
            raise ValueError(f"isolation_level must be one of {sorted(_ISOLATION)}")
        if auto_offset_reset not in ("earliest", "latest", "none"):
            raise ValueError("auto_offset_reset must be 'earliest', 'latest' or 'none'")
        self.group_id = group_id
        self.isolation_level = _ISOLATION[isolation_level]
        self.auto_offset_reset = auto_offset_reset
        self.enable_auto_commit = (group_id is not None) if enable_auto_commit is None else enable_auto_commit
        if self.enable_auto_commit and group_id is None:
            raise ValueError("enable_auto_commit needs a group_id")
        self.auto_commit_interval_s = auto_commit_interval_ms / 1000
        self.fetch_min_bytes = fetch_min_bytes
        self.fetch_max_bytes = fetch_max_bytes
        self.max_partition_fetch_bytes = max_partition_fetch_bytes
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.max_poll_records = max_poll_records
        self.check_crcs = check_crcs
        self.request_timeout_ms = request_timeout_ms
        self.cluster = Cluster(bootstrap_servers, client_id=client_id, request_timeout_ms=request_timeout_ms,
                               connect_timeout_ms=connect_timeout_ms, metadata_max_age_ms=metadata_max_age_ms,
                               retry_backoff_ms=retry_backoff_ms, allow_auto_create_topics=allow_auto_create_topics)
        self._states: dict[TopicPartition, _PartitionState] = {}
        self._fetching: set[int] = set()
        self._data = anyio.Event()
        self._tg = None
        self._closed = False
        self._started = False
        self._last_auto_commit = time.monotonic()
        self._fetch_error: KafkaError | None = None
        self.group = None
        if group_protocol not in ("classic", "consumer"):
            raise ValueError("group_protocol must be 'classic' or 'consumer' (KIP-848)")
        if group_id is not None and group_protocol == "consumer":
            from .group_consumer import GroupConsumerMember

            self.group = GroupConsumerMember(self, group_id, rebalance_timeout_ms=max_poll_interval_ms,
                                             group_instance_id=group_instance_id,
                                             server_assignor=group_remote_assignor)
        elif group_id is not None:
            from .group import GroupMember

            strategies = [partition_assignment_strategy] if isinstance(partition_assignment_strategy, str) \
                else list(partition_assignment_strategy)
            self.group = GroupMember(self, group_id, session_timeout_ms=session_timeout_ms,
                                     rebalance_timeout_ms=max_poll_interval_ms,
                                     heartbeat_interval_ms=heartbeat_interval_ms, assignors=strategies,
                                     group_instance_id=group_instance_id)
        self._initial_topics = list(topics)

    # -- lifecycle ---------------------------------------------------------------------------
    async def _on_start(self) -> None:
        if self.group is not None:
            self._tg.start_soon(self.group.heartbeat_loop)
        self._started = True
        if self._initial_topics:
            self.subscribe(self._initial_topics)

    async def close(self, *, autocommit: bool = True) -> None:
        """Commit (with auto commit on), leave the group, close the connections."""
        if self._closed:
            return
        try:
            if self._started and self.group is not None:
                with anyio.move_on_after(self.request_timeout_ms / 1000, shield=True):
                    if autocommit and self.enable_auto_commit and self.group.stable:
                        try:
                            await self.commit()
                        except KafkaError as exc:
                            log.warning("commit on close failed: %s", exc)
                    await self.group.leave()
        finally:
            self._closed = True
            await self._close_connections()

    # -- assignment --------------------------------------------------------------------------
    def assign(self, partitions) -> None:
        """Take these partitions (no group membership); positions come from the committed
        offsets when a group id is set, else ``auto.offset.reset``."""
        if self.group is not None and self.group.subscription:
            raise IllegalStateError("assign() after subscribe(): call unsubscribe() first")
        self._set_assignment([TopicPartition(*tp) for tp in partitions])

    def assignment(self) -> set[TopicPartition]:
        return set(self._states)

    def _set_assignment(self, partitions: list[TopicPartition]) -> None:
        new = {}
        for tp in partitions:
            new[tp] = self._states.get(tp) or _PartitionState()
        self._states = new
        self.cluster.want({tp.topic for tp in partitions})
        self._data.set()

    def _add_partitions(self, partitions) -> None:
        for tp in partitions:
            self._states.setdefault(tp, _PartitionState())
        self.cluster.want({tp.topic for tp in partitions})
        self._data.set()

    def _remove_partitions(self, partitions) -> None:
        for tp in partitions:
            self._states.pop(tp, None)

    def subscribe(self, topics=None, *, pattern: str | None = None, listener=None) -> None:
        """Join the group for ``topics`` (a list) or every topic matching ``pattern`` (a
        regex). ``listener`` may have ``on_partitions_revoked(set)``,
        ``on_partitions_assigned(set)`` and ``on_partitions_lost(set)``, sync or async."""
        if self.group is None:
            raise IllegalStateError("subscribe() needs a group_id")
        if isinstance(topics, str):
            topics = [topics]
        self.group.set_subscription(topics, re.compile(pattern) if pattern else None, listener)
        self._data.set()

    def unsubscribe(self) -> None:
        if self.group is not None:
            self.group.set_subscription([], None, None)
        self._states = {}

    def subscription(self) -> set[str]:
        return set(self.group.subscription) if self.group is not None else set()

    # -- positions ---------------------------------------------------------------------------
    def _state(self, tp) -> _PartitionState:
        st = self._states.get(TopicPartition(*tp))
        if st is None:
            raise IllegalStateError(f"{tp[0]}-{tp[1]} is not assigned to this consumer")
        return st

    def seek(self, tp, offset: int) -> None:
        st = self._state(tp)
        st.move_to(int(offset))
        st.reset = None
        self._data.set()

    def seek_to_beginning(self, *partitions) -> None:
        for tp in partitions or list(self._states):
            st = self._state(tp)
            st.move_to(None)
            st.reset = "earliest"
        self._data.set()

    def seek_to_end(self, *partitions) -> None:
        for tp in partitions or list(self._states):
            st = self._state(tp)
            st.move_to(None)
            st.reset = "latest"
        self._data.set()

    async def seek_to_time(self, timestamp_ms: int, *partitions) -> None:
        """Move each partition (all assigned when none given) to its first record at or
        after ``timestamp_ms``; past the last record, to the end."""
        tps = [TopicPartition(*tp) for tp in partitions] or list(self._states)
        found = await self.offsets_for_times({tp: timestamp_ms for tp in tps})
        missing = [tp for tp in tps if found.get(tp) is None]
        ends = await self.end_offsets(missing) if missing else {}
        for tp in tps:
            hit = found.get(tp)
            self.seek(tp, hit.offset if hit is not None else ends[tp])

    async def position(self, tp) -> int:
        st = self._state(tp)
        if st.position is None:
            await self._update_positions()
        return st.position

    def highwater(self, tp) -> int:
        """The high watermark the last fetch saw for ``tp`` (-1 before any)."""
        return self._state(tp).high_watermark

    def last_stable_offset(self, tp) -> int:
        return self._state(tp).last_stable_offset

    def pause(self, *partitions) -> None:
        for tp in partitions:
            st = self._state(tp)
            st.paused = True

    def resume(self, *partitions) -> None:
        for tp in partitions:
            self._state(tp).paused = False
        self._data.set()

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, st in self._states.items() if st.paused}

    async def beginning_offsets(self, partitions) -> dict[TopicPartition, int]:
        got = await list_offsets(self.cluster, {TopicPartition(*tp): EARLIEST for tp in partitions},
                                 isolation_level=self.isolation_level)
        return {tp: v.offset for tp, v in got.items()}

    async def end_offsets(self, partitions) -> dict[TopicPartition, int]:
        got = await list_offsets(self.cluster, {TopicPartition(*tp): LATEST for tp in partitions},
                                 isolation_level=self.isolation_level)
        return {tp: v.offset for tp, v in got.items()}

    async def offsets_for_times(self, timestamps) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """The first offset at or after each timestamp (None past the end)."""
        return await list_offsets(self.cluster, {TopicPartition(*tp): int(ts) for tp, ts in timestamps.items()},
                                  isolation_level=self.isolation_level)

    async def partitions_for_topic(self, topic: str) -> set[int]:
        return set(await self.cluster.partitions_for(topic))

    async def topics(self) -> set[str]:
        await self.cluster.refresh(all_topics=True)
        return set(self.cluster.topics)

    async def _update_positions(self) -> None:
        missing = [tp for tp, st in self._states.items() if st.position is None]
        if not missing:
            return
        if self.group_id is not None:
            need_committed = [tp for tp in missing if self._states[tp].reset is None]
            if need_committed:
                committed = await fetch_committed(self.cluster, self.group_id, need_committed)
                for tp, om in committed.items():
                    st = self._states.get(tp)
                    if st is not None and st.position is None:
                        st.move_to(om.offset)
        by_strategy: dict[str, list] = defaultdict(list)
        for tp in missing:
            st = self._states.get(tp)
            if st is None or st.position is not None:
                continue
            strategy = st.reset or self.auto_offset_reset
            if strategy == "none":
                raise error_for(ErrorCode.OFFSET_OUT_OF_RANGE,
                                f"no committed offset for {tp.topic}-{tp.partition} and auto_offset_reset='none'")
            by_strategy[strategy].append(tp)
        for strategy, tps in by_strategy.items():
            ts = EARLIEST if strategy == "earliest" else LATEST
            got = await list_offsets(self.cluster, {tp: ts for tp in tps}, isolation_level=self.isolation_level)
            for tp, v in got.items():
                st = self._states.get(tp)
                if st is not None and st.position is None:
                    st.move_to(v.offset)
                    st.reset = None

    # -- polling -----------------------------------------------------------------------------
    async def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[ConsumerRecord]:
        """Records from the assigned partitions, waiting up to ``timeout`` seconds for some."""
        if not self._started or self._closed:
            raise IllegalStateError("the consumer is not started" if not self._closed else "the consumer is closed")
        limit = max_records or self.max_poll_records
        deadline = time.monotonic() + timeout
        while True:
            if self.group is not None and self.group.subscription is not None:
                await self.group.ensure_active(deadline)
            if self._fetch_error is not None:
                err, self._fetch_error = self._fetch_error, None
                raise err
            await self._update_positions()
            out = self._drain(limit)
            self._maybe_auto_commit()
            if out:
                self._start_fetches()
                return out
            if not self._states and self.group is None:
                raise IllegalStateError("nothing is assigned: call assign() or subscribe() first")
            if self._data.is_set():
                self._data = anyio.Event()
            self._start_fetches()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            with anyio.move_on_after(remaining):
                await self._data.wait()

    async def getone(self, timeout: float | None = None) -> ConsumerRecord | None:
        recs = await self.poll(timeout=timeout if timeout is not None else 3600.0, max_records=1)
        return recs[0] if recs else None

    def __aiter__(self):
        return self._iterate()

    async def _iterate(self):
        while not self._closed:
            for rec in await self.poll(timeout=1.0):
                yield rec

    def _drain(self, limit: int) -> list[ConsumerRecord]:
        out: list[ConsumerRecord] = []
        for tp, st in list(self._states.items()):
            if st.paused or not st.buffered:
                continue
            take = st.records[st.index:st.index + (limit - len(out))]
            st.index += len(take)
            out.extend(take)
            if st.buffered:
                st.position = st.records[st.index].offset
            else:
                st.position = st.next_fetch  # past control batches and gaps fetched with them
                st.clear()
            if len(out) >= limit:
                break
        return out

    def _start_fetches(self) -> None:
        by_node: dict[int, list[tuple[TopicPartition, int]]] = defaultdict(list)
        for tp, st in self._states.items():
            # Fetch the next chunk while the last one is being returned, so there is no wait
            # at its end; never more than about two chunks buffered.
            if st.paused or st.position is None or st.buffered > max(self.max_poll_records, st.last_chunk):
                continue
            leader = self.cluster.leader_for(tp.topic, tp.partition)
            if leader < 0:
                self.cluster.invalidate()
                continue
            if leader in self._fetching:
                continue
            by_node[leader].append((tp, st.next_fetch, st.epoch))
        for node, parts in by_node.items():
            self._fetching.add(node)
            self._tg.start_soon(self._fetch, node, parts)
        if self.cluster.needs_refresh and -1 not in self._fetching:
            self._fetching.add(-1)
            self._tg.start_soon(self._refresh_metadata)

    async def _refresh_metadata(self) -> None:
        try:
            await self.cluster.refresh()
        except KafkaError as exc:
            log.debug("metadata refresh failed: %s", exc)
            await anyio.sleep(self.cluster.retry_backoff_ms / 1000)
        finally:
            self._fetching.discard(-1)
            self._data.set()

    async def _fetch(self, node: int, parts: list[tuple[TopicPartition, int, int]]) -> None:
        topics: dict[str, list] = defaultdict(list)
        for tp, offset, _epoch in parts:
            topics[tp.topic].append(FetchPartition(
                partition=tp.partition, fetch_offset=offset, partition_max_bytes=self.max_partition_fetch_bytes,
                current_leader_epoch=-1))
        body = FetchRequest(replica_id=-1, max_wait_ms=self.fetch_max_wait_ms, min_bytes=self.fetch_min_bytes,
                            max_bytes=self.fetch_max_bytes, isolation_level=self.isolation_level,
                            session_id=0, session_epoch=-1,
                            topics=[FetchTopic(topic=t, partitions=ps) for t, ps in topics.items()])
        asked = {tp: (offset, epoch) for tp, offset, epoch in parts}
        try:
            try:
                resp = await self.cluster.send(node, ApiKey.FETCH, body, FETCH_MAX_VERSION, 4,
                                               timeout_ms=self.request_timeout_ms + self.fetch_max_wait_ms)
            except KafkaError as exc:
                log.debug("fetch from node %s failed: %s", node, exc)
                self.cluster.invalidate()
                await anyio.sleep(self.cluster.retry_backoff_ms / 1000)
                return
            if resp.error_code:
                log.debug("fetch error %s", resp.error_code)
                await anyio.sleep(self.cluster.retry_backoff_ms / 1000)
                return
            for t in resp.responses:
                for p in t.partitions:
                    tp = TopicPartition(t.topic, p.partition_index)
                    st = self._states.get(tp)
                    if st is None or (st.next_fetch, st.epoch) != asked.get(tp):
                        continue  # unassigned or sought elsewhere meanwhile
                    self._apply_partition(tp, st, p)
        except Exception as exc:  # a decoding failure must surface in poll, not kill the task group
            self._fetch_error = exc if isinstance(exc, KafkaError) else KafkaError(repr(exc))
        finally:
            self._fetching.discard(node)
            self._data.set()

    def _apply_partition(self, tp: TopicPartition, st: _PartitionState, p) -> None:
        code = p.error_code
        if code == ErrorCode.OFFSET_OUT_OF_RANGE:
            if self.auto_offset_reset == "none":
                self._fetch_error = error_for(code, f"{tp.topic}-{tp.partition} offset {st.position}")
            else:
                st.move_to(None)
                st.reset = self.auto_offset_reset
            return
        if code:
            if code in _METADATA_ERRORS:
                self.cluster.invalidate()
            else:
                self._fetch_error = error_for(code, f"fetch {tp.topic}-{tp.partition}")
            return
        st.high_watermark = p.high_watermark
        st.last_stable_offset = p.last_stable_offset
        st.log_start_offset = p.log_start_offset
        records, next_offset = decode_partition(
            tp.topic, tp.partition, p.records, st.next_fetch, aborted=p.aborted_transactions,
            read_committed=self.isolation_level == 1, check_crcs=self.check_crcs)
        st.last_chunk = len(records)
        if st.buffered:
            if records:
                st.records = st.records[st.index:] + records
                st.index = 0
        else:
            st.records, st.index = records, 0
            if not records:
                st.position = next_offset  # only control or aborted batches: move past them
        st.next_fetch = next_offset

    # -- commits -----------------------------------------------------------------------------
    def _positions(self) -> dict[TopicPartition, OffsetAndMetadata]:
        return {tp: OffsetAndMetadata(st.position) for tp, st in self._states.items() if st.position is not None}

    async def commit(self, offsets=None, *, metadata: str = "") -> None:
        """Commit ``offsets`` ({tp: offset or OffsetAndMetadata}), or every position."""
        if self.group_id is None:
            raise IllegalStateError("commit() needs a group_id")
        if offsets is None:
            offsets = {tp: OffsetAndMetadata(om.offset, metadata) for tp, om in self._positions().items()}
        else:
            offsets = {TopicPartition(*tp): (om if isinstance(om, OffsetAndMetadata) else OffsetAndMetadata(int(om), metadata))
                       for tp, om in offsets.items()}
        if not offsets:
            return
        gen, member, instance = (-1, "", None)
        if self.group is not None and self.group.subscription is not None:
            gen, member, instance = self.group.generation_id, self.group.member_id, self.group.group_instance_id
        try:
            try:
                await commit_offsets(self.cluster, self.group_id, offsets, generation_id=gen, member_id=member,
                                     group_instance_id=instance,
                                     max_version=getattr(self.group, "commit_version", None))
            except KafkaError as exc:
                if exc.code != ErrorCode.STALE_MEMBER_EPOCH or not hasattr(self.group, "_heartbeat"):
                    raise
                # KIP-848: the epoch moved on since our last heartbeat; learn it and commit again.
                await self.group._heartbeat()
                await commit_offsets(self.cluster, self.group_id, offsets, generation_id=self.group.generation_id,
                                     member_id=self.group.member_id, group_instance_id=instance,
                                     max_version=self.group.commit_version)
        except KafkaError as exc:
            if self.group is not None and exc.code in (ErrorCode.ILLEGAL_GENERATION, ErrorCode.UNKNOWN_MEMBER_ID,
                                                       ErrorCode.REBALANCE_IN_PROGRESS,
                                                       ErrorCode.STALE_MEMBER_EPOCH):
                self.group.request_rejoin()
            raise

    def commit_async(self, offsets=None, *, metadata: str = "", callback=None) -> None:
        """Start a commit in the background; ``callback(offsets, error)`` when it ends."""
        if offsets is None:
            offsets = {tp: OffsetAndMetadata(om.offset, metadata) for tp, om in self._positions().items()}

        async def run():
            err = None
            try:
                await self.commit(offsets, metadata=metadata)
            except KafkaError as exc:
                err = exc
                log.debug("async commit failed: %s", exc)
            if callback is not None:
                callback(offsets, err)

        self._tg.start_soon(run)

    async def committed(self, partitions) -> dict[TopicPartition, OffsetAndMetadata]:
        if self.group_id is None:
            raise IllegalStateError("committed() needs a group_id")
        return await fetch_committed(self.cluster, self.group_id, [TopicPartition(*tp) for tp in partitions])

    def _maybe_auto_commit(self) -> None:
        if not self.enable_auto_commit:
            return
        now = time.monotonic()
        if now - self._last_auto_commit >= self.auto_commit_interval_s:
            self._last_auto_commit = now
            if self.group is None or self.group.stable or self.group.subscription is None:
                self.commit_async()
