"""Committed offsets: Kafka's OffsetMetadataManager, as a pure state machine.

Theory of operation
-------------------
``OffsetStore`` owns every committed offset of this broker, by group id, whatever kind of
group (classic, KIP-848 consumer, or none at all) the id belongs to. The group
coordinators only *validate* a commit (is this member of this generation allowed to?);
storing, serving, deleting and expiring offsets happens here, so offsets outlive the
groups that committed them: a "simple" consumer's offsets have no group, and a KIP-848
group's offsets stay when its last member leaves.

* **Write, then apply.** A commit or a deletion becomes facts (``OffsetCommitKey`` with a
  value, or a tombstone) queued on the coordinator's ``Outbox``. The offsets table changes
  only when ``written`` reports the fact appended (durably: an answered commit survives a
  crash); loading ``replay``s the same facts in log order, so the table after a restart is
  exactly the table before it.
* **Pending offsets.** Between queueing and writing, a fact is *pending*. A deletion of a
  group or an offset must tombstone pending ones too, or a commit racing the delete would
  outlive it; and a group id with pending offsets exists (``has_group``).
* **Expiry** (``offsets.retention.minutes``) is decided per group by ``expire`` from an
  ``OffsetExpiration`` the group's owner gives (Kafka's OffsetExpirationCondition): from
  when an offset ages, and which topics the group still reads (those never expire). An
  offset committed with an explicit retention (OffsetCommit v2-v4) expires at its own
  deadline instead.

* **Transactional offsets** (TxnOffsetCommit, KIP-98/447) are written as a transactional
  batch of the committing producer and held per producer id in ``txn_offsets`` until the
  transaction's marker reaches their ``__consumer_offsets`` partition: a COMMIT moves them
  into the offsets table, an ABORT drops them (``complete_txn``; loading replays both the
  batches and the markers the same way). Until then OffsetFetch answers the committed
  offset, or UNSTABLE_OFFSET_COMMIT when asked for stable offsets only (``require_stable``).
* **Log order decides, as compaction does.** A plain commit (or a tombstone) of the same
  key may land between a transaction's offset record and its COMMIT marker. The cleaner
  keeps only the later *record* of a key, so after a clean and a restart the later record
  wins whatever the marker says; live must answer the same, or compaction changes what a
  group reads. So every offset remembers the log offset of its record (``_at``; writes
  report it, loading passes it), a COMMIT applies a transactional offset only over an
  older record (Kafka's ``CommitRecordMetadataAndOffset.olderThan``), and a tombstone
  drops the pending transactional offsets written before it (as Kafka's
  ``removeOffsets``). A write reported after a later record of its key was applied
  (fsyncs complete in any order) changes nothing. An offset of -1 (unknown: a unit
  test's replay) counts as later.

Nothing here reads a clock: ``now_ms`` comes with every call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafkito.protocol import ErrorCode

from ..coordinator_runtime import Outbox, Waiter
from .records import OffsetCommitKey, OffsetCommitValue

__all__ = ["FetchedOffset", "OffsetCommitEntry", "OffsetExpiration", "OffsetStore", "TopicResults"]

E = ErrorCode
TopicResults = list[tuple[str, list[tuple[int, ErrorCode]]]]


@dataclass(frozen=True, slots=True)
class OffsetCommitEntry:
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str | None = None
    commit_timestamp_ms: int = -1  # OffsetCommit v1 only; -1: now


@dataclass(frozen=True, slots=True)
class FetchedOffset:
    partition: int
    offset: int = -1
    leader_epoch: int = -1
    metadata: str = ""
    error: ErrorCode = E.NONE


@dataclass(frozen=True, slots=True)
class OffsetExpiration:
    """When a group's offsets may expire (Kafka's OffsetExpirationCondition).

    ``base_timestamp_ms``: the time every offset ages from (an empty group's: when it
    emptied), or None for "from its own commit". ``is_subscribed``: topics the group is
    reading, whose offsets never expire while it does."""

    base_timestamp_ms: int | None = None
    is_subscribed: Callable[[str], bool] = lambda topic: False


def commit_error_to_response(error: ErrorCode) -> ErrorCode:
    """How a failed offset write reads to the committer."""
    if error in (E.MESSAGE_TOO_LARGE, E.RECORD_LIST_TOO_LARGE):
        return E.INVALID_COMMIT_OFFSET_SIZE
    return write_error_to_response(error)


def write_error_to_response(error: ErrorCode) -> ErrorCode:
    """How a failed append reads to a group client (Kafka's mapping for group writes)."""
    if error in (E.UNKNOWN_TOPIC_OR_PARTITION, E.NOT_ENOUGH_REPLICAS, E.REQUEST_TIMED_OUT):
        return E.COORDINATOR_NOT_AVAILABLE
    if error in (E.NOT_LEADER_OR_FOLLOWER, E.KAFKA_STORAGE_ERROR):
        return E.NOT_COORDINATOR
    if error in (E.MESSAGE_TOO_LARGE, E.RECORD_LIST_TOO_LARGE):
        return E.UNKNOWN_SERVER_ERROR
    return error


class OffsetStore:
    def __init__(self, outbox: Outbox, *, offset_metadata_max_bytes: int, offsets_retention_ms: int) -> None:
        # The owning coordinator's outbox, whose on_queued/on_written hooks must call
        # this store's ``queued`` and ``written``.
        self.outbox = outbox
        self.offset_metadata_max_bytes = offset_metadata_max_bytes
        self.offsets_retention_ms = offsets_retention_ms
        # group -> (topic, partition) -> committed offset: exactly the written facts.
        self.offsets: dict[str, dict[tuple[str, int], OffsetCommitValue]] = {}
        # group -> (topic, partition) -> how many commits are queued but not written.
        self._pending: dict[str, dict[tuple[str, int], int]] = {}
        # producer id -> group -> (topic, partition) -> offset written in the producer's
        # open transaction, applied by its COMMIT marker.
        # Each with the log offset of its record.
        self.txn_offsets: dict[int, dict[str, dict[tuple[str, int], tuple[OffsetCommitValue, int]]]] = {}
        # (group, topic, partition) -> log offset of the record behind its committed offset.
        self._at: dict[tuple[str, str, int], int] = {}

    # ============================================================ what exists
    def has_group(self, group_id: str) -> bool:
        """Does the id hold offsets, committed or queued?"""
        return group_id in self.offsets or group_id in self._pending

    def has_pending(self, group_id: str) -> bool:
        return group_id in self._pending or any(group_id in groups for groups in self.txn_offsets.values())

    def _unstable(self, group_id: str, topic: str, partition: int) -> bool:
        return any((topic, partition) in groups.get(group_id, ()) for groups in self.txn_offsets.values())

    def group_ids(self) -> list[str]:
        return list({**self.offsets, **self._pending})

    def has_offset(self, group_id: str, topic: str, partition: int) -> bool:
        """Committed, or queued to be."""
        tp = (topic, partition)
        return tp in self.offsets.get(group_id, {}) or tp in self._pending.get(group_id, {})

    # ============================================================ the outbox's hooks
    def queued(self, facts: Iterable) -> None:
        for key, value in facts:
            if isinstance(key, OffsetCommitKey) and value is not None:
                self._pending_delta(key, +1)

    def written(self, facts: Iterable, error: ErrorCode, offset: int = -1) -> None:
        for key, value in facts:
            if isinstance(key, OffsetCommitKey):
                if value is not None:
                    self._pending_delta(key, -1)
                if error == E.NONE:
                    self.replay(key, value, offset)

    def _pending_delta(self, key: OffsetCommitKey, delta: int) -> None:
        tps = self._pending.setdefault(key.group, {})
        tp = (key.topic, key.partition)
        n = tps.get(tp, 0) + delta
        if n > 0:
            tps[tp] = n
        else:
            tps.pop(tp, None)
            if not tps:
                del self._pending[key.group]

    # ============================================================ loading
    def replay(self, key: OffsetCommitKey, value: OffsetCommitValue | None, offset: int = -1) -> None:
        """Apply one written offset fact (a commit, or a tombstone deleting it) whose
        record is at log offset ``offset``."""
        tps = self.offsets.get(key.group)
        tp = (key.topic, key.partition)
        if not _later(offset, self._at.get((key.group, *tp), -1)):
            # Reported out of log order (a write's fsync finished after a later record was
            # applied, e.g. by a COMMIT marker): the later record stays, as in the log.
            return
        if value is None:
            self._at.pop((key.group, *tp), None)
            if tps is not None:
                tps.pop(tp, None)
                if not tps:
                    del self.offsets[key.group]
            self._drop_txn_offsets_before(key.group, tp, offset)
        else:
            if tps is None:
                tps = self.offsets[key.group] = {}
            tps[tp] = value
            self._at[(key.group, *tp)] = offset

    def _drop_txn_offsets_before(self, group_id: str, tp: tuple[str, int], offset: int) -> None:
        """A tombstone at ``offset`` deletes the pending transactional offsets of ``tp``
        written before it: compaction would remove their records."""
        for producer_id in list(self.txn_offsets):
            groups = self.txn_offsets[producer_id]
            tps = groups.get(group_id)
            if tps is None or tp not in tps or not _later(offset, tps[tp][1]):
                continue
            del tps[tp]
            if not tps:
                del groups[group_id]
                if not groups:
                    del self.txn_offsets[producer_id]

    # ============================================================ OffsetCommit
    def commit(self, group_id: str, topics: list[tuple[str, list[OffsetCommitEntry]]], *,
               retention_time_ms: int, now_ms: int,
               producer: tuple[int, int] | None = None) -> Waiter[TopicResults]:
        """Store already validated commits: per (topic, [(partition, error)]) once durable.
        With ``producer`` (id, epoch) they are that producer's transactional offsets."""
        waiter: Waiter[TopicResults] = Waiter()
        expire_ms = -1 if retention_time_ms == -1 else now_ms + retention_time_ms
        max_meta = self.offset_metadata_max_bytes
        results: TopicResults = []
        facts: list[tuple[str, tuple]] = []
        written: list[tuple[int, int]] = []  # (topic index, partition index) of accepted entries
        for ti, (topic, parts) in enumerate(topics):
            row: list[tuple[int, ErrorCode]] = []
            for p in parts:
                meta = p.metadata if p.metadata is not None else ""
                if len(meta) > max_meta:
                    row.append((p.partition, E.OFFSET_METADATA_TOO_LARGE))
                    continue
                written.append((ti, len(row)))
                row.append((p.partition, E.NONE))
                ts = p.commit_timestamp_ms if p.commit_timestamp_ms != -1 else now_ms
                facts.append((group_id, (OffsetCommitKey(group_id, topic, p.partition),
                                         OffsetCommitValue(p.offset, meta, ts, p.leader_epoch, expire_ms))))
            results.append((topic, row))

        def persisted(error: ErrorCode) -> None:
            if error != E.NONE:
                mapped = commit_error_to_response(error)
                for ti, pi in written:
                    part, _ = results[ti][1][pi]
                    results[ti][1][pi] = (part, mapped)
            elif producer is not None:
                # One group: one partition, one write (its batch's offset is the records').
                at = max((w.offset for w in writes), default=-1) if facts else -1
                for _, (key, value) in facts:
                    self.replay_transactional(producer[0], key, value, at)
            waiter.complete(results)

        writes = self.outbox.write(facts, persisted, producer=producer)
        return waiter

    # ============================================================ transactions
    def replay_transactional(self, producer_id: int, key: OffsetCommitKey, value: OffsetCommitValue | None,
                             offset: int = -1) -> None:
        """An offset written (record at log offset ``offset``) in ``producer_id``'s open
        transaction: pending until its marker."""
        if value is not None:
            tps = self.txn_offsets.setdefault(producer_id, {}).setdefault(key.group, {})
            tps[(key.topic, key.partition)] = (value, offset)

    def complete_txn(self, producer_id: int, commit: bool, in_partition: Callable[[str], bool]) -> None:
        """The producer's transaction ended in the ``__consumer_offsets`` partition holding
        the groups ``in_partition`` accepts: apply (COMMIT) or drop (ABORT) its offsets."""
        groups = self.txn_offsets.get(producer_id)
        if not groups:
            return
        for group_id in [g for g in groups if in_partition(g)]:
            tps = groups.pop(group_id)
            if commit:
                for (topic, partition), (value, at) in tps.items():
                    # A plain commit written after this record (before the marker) stays.
                    if _later(at, self._at.get((group_id, topic, partition), -1)):
                        self.replay(OffsetCommitKey(group_id, topic, partition), value, at)
        if not groups:
            del self.txn_offsets[producer_id]

    # ============================================================ OffsetFetch
    def fetch(self, group_id: str, topics: Iterable[tuple[str, Iterable[int]]] | None,
              require_stable: bool = False) -> list[tuple[str, list[FetchedOffset]]]:
        """The listed partitions, or every committed one when ``topics`` is None. Unknown
        groups and partitions read as offset -1; with ``require_stable``, one with an
        offset pending in an open transaction reads as UNSTABLE_OFFSET_COMMIT."""
        committed = self.offsets.get(group_id, {})

        def one(topic: str, partition: int) -> FetchedOffset:
            if require_stable and self._unstable(group_id, topic, partition):
                return FetchedOffset(partition, error=E.UNSTABLE_OFFSET_COMMIT)
            v = committed.get((topic, partition))
            return FetchedOffset(partition) if v is None \
                else FetchedOffset(partition, v.offset, v.leader_epoch, v.metadata)

        if topics is None:
            by_topic: dict[str, list[FetchedOffset]] = {}
            for topic, partition in sorted(committed):
                by_topic.setdefault(topic, []).append(one(topic, partition))
            return list(by_topic.items())
        return [(topic, [one(topic, p) for p in partitions]) for topic, partitions in topics]

    # ============================================================ deletion
    def delete(self, group_id: str, topics: list[tuple[str, list[int]]],
               is_subscribed: Callable[[str], bool]) -> Waiter[tuple[ErrorCode, TopicResults]]:
        """OffsetDelete of an already validated group: (group error, per topic
        [(partition, error)]) once the tombstones are durable. Topics the group reads
        are refused with GROUP_SUBSCRIBED_TO_TOPIC."""
        waiter: Waiter[tuple[ErrorCode, TopicResults]] = Waiter()
        results: TopicResults = []
        facts: list[tuple[str, tuple]] = []
        for topic, partitions in topics:
            if is_subscribed(topic):
                results.append((topic, [(p, E.GROUP_SUBSCRIBED_TO_TOPIC) for p in partitions]))
                continue
            results.append((topic, [(p, E.NONE) for p in partitions]))
            for p in partitions:
                if self.has_offset(group_id, topic, p):
                    facts.append((group_id, (OffsetCommitKey(group_id, topic, p), None)))

        def persisted(error: ErrorCode) -> None:
            waiter.complete((write_error_to_response(error), results if error == E.NONE else []))

        self._queue(facts, persisted)
        return waiter

    def tombstones(self, group_id: str) -> list[tuple[str, tuple]]:
        """Facts deleting every offset of the group, committed or queued."""
        return [(group_id, (OffsetCommitKey(group_id, topic, partition), None))
                for topic, partition in {**self.offsets.get(group_id, {}), **self._pending.get(group_id, {})}]

    # ============================================================ retention
    def expire(self, group_id: str, condition: OffsetExpiration, now_ms: int) -> tuple[list[tuple[str, tuple]], bool]:
        """(tombstones of the group's expired offsets, whether every offset expired)."""
        all_expired = True
        facts: list[tuple[str, tuple]] = []
        for (topic, partition), v in self.offsets.get(group_id, {}).items():
            if condition.is_subscribed(topic):
                all_expired = False
                continue
            if v.expire_timestamp_ms >= 0:
                expired = now_ms >= v.expire_timestamp_ms
            else:
                base = v.commit_timestamp_ms if condition.base_timestamp_ms is None else condition.base_timestamp_ms
                expired = now_ms - base >= self.offsets_retention_ms
            if expired:
                facts.append((group_id, (OffsetCommitKey(group_id, topic, partition), None)))
            else:
                all_expired = False
        return facts, all_expired

    def _queue(self, facts: list[tuple[str, tuple]], on_done: Callable[[ErrorCode], None]) -> None:
        self.outbox.write(facts, on_done)


def _later(a: int, b: int) -> bool:
    """Is the record at log offset ``a`` later than the one at ``b``? -1 (unknown) counts as
    later either way: what comes without an offset is applied in the order it comes."""
    return a < 0 or b < 0 or a > b
