"""ProducerStateManager: idempotent-producer state of one partition, owned by its log.

Theory of operation
-------------------
An idempotent producer stamps every batch with its producer id, epoch and the sequence
number of the batch's first record. For each producer the partition remembers its
current epoch and the last ``BATCHES_KEPT`` (5, as Kafka: the most batches a producer
may have in flight) batches it appended: first and last sequence, first and last offset.
A new batch is then exactly one of:

* a **duplicate** of a remembered batch (a retry after a lost response): not appended
  again; the producer is told the offsets the original got;
* the **next** batch (first sequence = last sequence + 1, wrapping at 2**31 - 1), or the
  first batch (sequence 0) of a new epoch: appended and remembered;
* an error: an older epoch is fenced (``InvalidProducerEpochError``); a gap is
  ``OutOfOrderSequenceError``; a producer we have no state for that does not start at 0
  is ``UnknownProducerIdError`` (its state was lost or expired; clients reset and go on).

``check`` is pure: it decides for one batch header without changing anything. The log
checks an append batch by batch through a ``ProducerAppendInfo`` (Kafka's name): it stages
each batch's effect so the next batch of the same append is checked against it, and the
log commits the staged entries only once the write succeeded, so a refused or failed
append leaves the state as it was.

Snapshots (Kafka's ``<base offset>.snapshot`` beside the segments) hold the whole state as
it was just before one offset: the log takes one at every segment roll and at close, and
at open loads the newest trustworthy one and replays only the batch headers after it
(log.py, *Producer state*). The file is a metafile (versioned, CRC-checked); a damaged
snapshot is skipped for an older one, since the log can always rebuild the state.

Transactions (KIP-98) live here too, as in Kafka's ProducerStateManager. A producer's first
transactional batch opens its transaction at that batch's first offset
(``current_txn_first_offset``, also kept in ``ongoing``); a non-transactional batch while
one is open is ``InvalidTxnStateError``. A COMMIT or ABORT marker (a control batch the
coordinator writes) closes it and yields a ``CompletedTxn``: the transaction's first offset
(the marker's own when none was open: Kafka writes such a marker too) and the marker's
offset. A marker with an older producer epoch is refused (``InvalidProducerEpochError``), one
with a newer epoch is the coordinator fencing a zombie and bumps the epoch (the sequences
start again); a marker from an older coordinator epoch is ``TransactionCoordinatorFencedError``.
A completed transaction stays *unstable* until its marker is flushed (``unreplicated``,
Kafka's name: the high watermark is the flushed offset here), so the first unstable offset
(``first_unstable_offset``), from which the log derives the last stable offset, never
moves past a marker a crash could take back. Staging, commit and snapshots treat the
transaction fields like the rest of an entry, so a snapshot carries the open transactions
and each producer's coordinator epoch, as Kafka's does.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from . import metafile
from .errors import StorageError

__all__ = [
    "BATCHES_KEPT",
    "BatchMetadata",
    "Duplicate",
    "CompletedTxn",
    "InvalidProducerEpochError",
    "InvalidTxnStateError",
    "OutOfOrderSequenceError",
    "ProducerInfo",
    "ProducerAppendInfo",
    "ProducerStateManager",
    "TransactionCoordinatorFencedError",
    "UnknownProducerIdError",
]

BATCHES_KEPT = 5
SEQUENCE_MAX = 2**31 - 1
NO_PRODUCER_ID = -1
SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_KIND = "producer-snapshot"
_SNAPSHOT_FILE = re.compile(r"^(\d{20})\.snapshot$")


class InvalidProducerEpochError(StorageError):
    """The batch's epoch is older than the producer's current one (a fenced zombie)."""

    error_name = "INVALID_PRODUCER_EPOCH"


class OutOfOrderSequenceError(StorageError):
    """The batch's first sequence is not the next one expected."""

    error_name = "OUT_OF_ORDER_SEQUENCE_NUMBER"


class UnknownProducerIdError(StorageError):
    """No state for this producer and the batch does not start a sequence."""

    error_name = "UNKNOWN_PRODUCER_ID"


class InvalidTxnStateError(StorageError):
    """A non-transactional batch from a producer whose transaction is open."""

    error_name = "INVALID_TXN_STATE"


class TransactionCoordinatorFencedError(StorageError):
    """A marker written by an older transaction coordinator than the producer's last one."""

    error_name = "TRANSACTION_COORDINATOR_FENCED"


class CompletedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int  # the marker's offset
    is_aborted: bool


class ProducerInfo(NamedTuple):
    """One producer as DescribeProducers reports it."""

    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp: int
    coordinator_epoch: int
    current_txn_start_offset: int  # -1: no transaction open


class BatchMetadata(NamedTuple):
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp_ms: int


class Duplicate(NamedTuple):
    """The batch was already appended; these are the offsets it got then."""

    first_offset: int
    last_offset: int


@dataclass
class ProducerEntry:
    epoch: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=BATCHES_KEPT))
    coordinator_epoch: int = -1  # of the last marker written for this producer
    current_txn_first_offset: int = -1  # -1: no transaction open
    last_timestamp: int = -1
    # Retention or DeleteRecords took every batch of a producer whose transaction is open:
    # its next sequence is unknown, so any is accepted (Kafka forgets such a producer and
    # accepts any sequence from it; we keep it, since its transaction holds the LSO).
    sequence_unknown: bool = False

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    def remember(self, first_seq: int, first_offset: int, last_offset: int, timestamp_ms: int) -> None:
        last_seq = _last_seq(first_seq, last_offset - first_offset)
        self.batches.append(BatchMetadata(first_seq, last_seq, first_offset, last_offset, timestamp_ms))
        self.last_timestamp = timestamp_ms
        self.sequence_unknown = False

    def bump_epoch(self, epoch: int) -> None:
        """A newer epoch: its sequences start afresh; an open transaction stays open (only
        a marker ends it)."""
        if epoch > self.epoch:
            self.epoch = epoch
            self.batches.clear()
            self.sequence_unknown = False

    def apply_batch(self, epoch: int, first_seq: int, first_offset: int, last_offset: int,
                    timestamp_ms: int, is_transactional: bool) -> None:
        self.bump_epoch(epoch)
        if first_seq >= 0:
            self.remember(first_seq, first_offset, last_offset, timestamp_ms)
        else:  # a coordinator's batch carries no sequence (see ProducerAppendInfo.append)
            self.last_timestamp = timestamp_ms
        if is_transactional and self.current_txn_first_offset < 0:
            self.current_txn_first_offset = first_offset

    def apply_marker(self, epoch: int, commit: bool, coordinator_epoch: int, offset: int,
                     timestamp_ms: int, producer_id: int) -> CompletedTxn:
        self.bump_epoch(epoch)
        first = self.current_txn_first_offset if self.current_txn_first_offset >= 0 else offset
        self.current_txn_first_offset = -1
        self.coordinator_epoch = coordinator_epoch
        self.last_timestamp = timestamp_ms
        return CompletedTxn(producer_id, first, offset, not commit)

    def copy(self) -> "ProducerEntry":
        return ProducerEntry(self.epoch, deque(self.batches, maxlen=BATCHES_KEPT),
                             self.coordinator_epoch, self.current_txn_first_offset,
                             self.last_timestamp, self.sequence_unknown)


def _last_seq(first_seq: int, record_count_minus_one: int) -> int:
    return (first_seq + record_count_minus_one) % (SEQUENCE_MAX + 1)


def _next_seq(seq: int) -> int:
    return 0 if seq == SEQUENCE_MAX else seq + 1


def _check(entry: "ProducerEntry | None", producer_id: int, epoch: int, first_seq: int,
           last_offset_delta: int) -> Duplicate | None:
    if producer_id == NO_PRODUCER_ID:
        return None
    if entry is None:
        if first_seq != 0:
            raise UnknownProducerIdError(
                f"no state for producer {producer_id} and its batch starts at sequence {first_seq}"
            )
        return None
    if epoch < entry.epoch:
        raise InvalidProducerEpochError(
            f"producer {producer_id} epoch {epoch} is older than the current epoch {entry.epoch}"
        )
    if epoch > entry.epoch:
        if first_seq != 0:
            raise OutOfOrderSequenceError(
                f"producer {producer_id} new epoch {epoch} starts at sequence {first_seq}, not 0"
            )
        return None
    if entry.sequence_unknown:
        return None
    last_seq = _last_seq(first_seq, last_offset_delta)
    for batch in entry.batches:
        if batch.first_seq == first_seq and batch.last_seq == last_seq:
            return Duplicate(batch.first_offset, batch.last_offset)
    expected = _next_seq(entry.last_seq)
    if first_seq != expected:
        raise OutOfOrderSequenceError(
            f"producer {producer_id} epoch {epoch}: sequence {first_seq}, expected {expected}"
        )
    return None


def _check_marker(entry: "ProducerEntry | None", producer_id: int, epoch: int,
                  coordinator_epoch: int) -> None:
    if entry is None:
        return
    if epoch < entry.epoch:
        raise InvalidProducerEpochError(
            f"marker for producer {producer_id} has epoch {epoch}, older than the current "
            f"epoch {entry.epoch}")
    if coordinator_epoch < entry.coordinator_epoch:
        raise TransactionCoordinatorFencedError(
            f"marker for producer {producer_id} from coordinator epoch {coordinator_epoch}; "
            f"the last one came from epoch {entry.coordinator_epoch}")


def _check_txn(entry: "ProducerEntry | None", producer_id: int, is_transactional: bool) -> None:
    if entry is not None and entry.current_txn_first_offset >= 0 and not is_transactional:
        raise InvalidTxnStateError(
            f"producer {producer_id} sent a non-transactional batch while its transaction "
            f"from offset {entry.current_txn_first_offset} is open")


class ProducerStateManager:
    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}
        self.ongoing: dict[int, int] = {}  # producer id -> first offset of its open transaction
        self.unreplicated: list[CompletedTxn] = []  # completed, the marker not yet flushed

    def check(self, producer_id: int, epoch: int, first_seq: int, last_offset_delta: int) -> Duplicate | None:
        """Decide one batch: None to append it, a Duplicate to skip it, or raise."""
        return _check(self.producers.get(producer_id), producer_id, epoch, first_seq,
                      last_offset_delta)

    def begin_append(self) -> "ProducerAppendInfo":
        return ProducerAppendInfo(self)

    def record(self, producer_id: int, epoch: int, first_seq: int, first_offset: int, last_offset: int,
               timestamp_ms: int, is_transactional: bool = False) -> None:
        """Remember a batch that was appended at ``first_offset..last_offset`` (replay: no
        checks, the log already holds it)."""
        if producer_id == NO_PRODUCER_ID:
            return
        entry = self.producers.get(producer_id)
        if entry is None:
            entry = self.producers[producer_id] = ProducerEntry(epoch)
        entry.apply_batch(epoch, first_seq, first_offset, last_offset, timestamp_ms,
                          is_transactional)
        self._track(producer_id, entry)

    def record_marker(self, producer_id: int, epoch: int, commit: bool, coordinator_epoch: int,
                      offset: int, timestamp_ms: int) -> CompletedTxn:
        """Apply a marker the log holds at ``offset`` (replay: no checks)."""
        entry = self.producers.get(producer_id)
        if entry is None:
            entry = self.producers[producer_id] = ProducerEntry(epoch)
        completed = entry.apply_marker(epoch, commit, coordinator_epoch, offset, timestamp_ms,
                                       producer_id)
        self._track(producer_id, entry)
        return completed

    def _track(self, producer_id: int, entry: ProducerEntry) -> None:
        if entry.current_txn_first_offset >= 0:
            self.ongoing[producer_id] = entry.current_txn_first_offset
        else:
            self.ongoing.pop(producer_id, None)

    def rebuild(self, headers: Iterable[tuple[int, int, int, int, int, int]]) -> None:
        """Replay (producer_id, epoch, first_seq, base_offset, last_offset, max_timestamp)."""
        for producer_id, epoch, first_seq, base_offset, last_offset, timestamp in headers:
            if producer_id != NO_PRODUCER_ID:
                self.record(producer_id, epoch, first_seq, base_offset, last_offset, timestamp)

    def truncate_before(self, offset: int) -> list[int]:
        """Forget batches below ``offset`` (retention/DeleteRecords took them). A producer
        whose transaction is still open stays: only its marker may end it. Returns the
        producers whose open transaction began below ``offset``: the log finds where their
        data now begins (``restart_txns``), as a replay from ``offset`` would."""
        for producer_id in list(self.producers):
            entry = self.producers[producer_id]
            while entry.batches and entry.batches[0].last_offset < offset:
                entry.batches.popleft()
            if not entry.batches:
                if entry.current_txn_first_offset < 0:
                    del self.producers[producer_id]
                else:
                    entry.sequence_unknown = True
        self.unreplicated = [t for t in self.unreplicated if t.last_offset >= offset]
        below = {pid for pid, first in self.ongoing.items() if first < offset}
        below.update(t.producer_id for t in self.unreplicated if t.first_offset < offset)
        return sorted(below)

    def restart_txns(self, first_offsets: dict[int, int], producer_ids: list[int]) -> None:
        """The unstable transactions of ``producer_ids`` now begin at their first data
        batch at or past the log start (``first_offsets``), as a replay from there finds
        them. An open one with no batch left there holds no data anyone can read, so it no
        longer holds the LSO (its marker still ends it); a completed one whose marker is
        not flushed yet begins at the marker then."""
        for pid in producer_ids:
            entry = self.producers.get(pid)
            if entry is not None and entry.current_txn_first_offset >= 0:
                entry.current_txn_first_offset = first_offsets.get(pid, -1)
                self._track(pid, entry)
        self.unreplicated = [
            t._replace(first_offset=first_offsets.get(t.producer_id, t.last_offset))
            if t.producer_id in producer_ids else t for t in self.unreplicated]

    # -- transactions ---------------------------------------------------------------------
    def complete_txn(self, completed: CompletedTxn) -> None:
        """A marker was appended: its transaction stays unstable until the marker is flushed."""
        self.unreplicated.append(completed)

    def on_high_watermark(self, high_watermark: int) -> None:
        """Markers below ``high_watermark`` are durable: their transactions are stable."""
        if self.unreplicated:
            self.unreplicated = [t for t in self.unreplicated if t.last_offset >= high_watermark]

    def first_unstable_offset(self) -> int | None:
        """The first offset of the earliest transaction that is open or whose marker is not
        yet flushed, or None."""
        firsts = list(self.ongoing.values())
        firsts.extend(t.first_offset for t in self.unreplicated)
        return min(firsts) if firsts else None

    def next_stable_offset(self, completed: CompletedTxn) -> int:
        """Kafka's lastStableOffset(completedTxn), recorded in the aborted-transaction index:
        the first offset of the earliest transaction still open (after ``completed`` was
        applied), or the offset after its marker."""
        others = [first for pid, first in self.ongoing.items() if pid != completed.producer_id]
        return min(others) if others else completed.last_offset + 1

    def describe(self) -> list[ProducerInfo]:
        """Every producer with state here, as DescribeProducers reports them."""
        return [ProducerInfo(pid, e.epoch, e.last_seq, e.last_timestamp, e.coordinator_epoch,
                             e.current_txn_first_offset)
                for pid, e in sorted(self.producers.items())]

    # -- snapshots -----------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {
            str(pid): {"epoch": e.epoch, "batches": [list(b) for b in e.batches],
                       "coordinator_epoch": e.coordinator_epoch,
                       "txn_first_offset": e.current_txn_first_offset,
                       "last_timestamp": e.last_timestamp,
                       "sequence_unknown": e.sequence_unknown}
            for pid, e in self.producers.items()
        }

    @classmethod
    def restore(cls, data: dict) -> "ProducerStateManager":
        """From ``snapshot()``'s dict; a snapshot written before transactions has no
        transaction fields: none was open then."""
        manager = cls()
        for pid, item in data.items():
            entry = ProducerEntry(int(item["epoch"]),
                                  coordinator_epoch=int(item.get("coordinator_epoch", -1)),
                                  current_txn_first_offset=int(item.get("txn_first_offset", -1)),
                                  last_timestamp=int(item.get("last_timestamp", -1)),
                                  sequence_unknown=bool(item.get("sequence_unknown", False)))
            for b in item["batches"]:
                entry.batches.append(BatchMetadata(*b))
            if entry.last_timestamp < 0 and entry.batches:
                entry.last_timestamp = entry.batches[-1].timestamp_ms
            manager.producers[int(pid)] = entry
            manager._track(int(pid), entry)
        return manager


class ProducerAppendInfo:
    """The effect of one append on producer state, staged until the write succeeded.

    ``append`` checks one batch against the state as the earlier batches of the same
    append left it (copies of the entries they touched), so every batch is checked, not
    just the first; ``commit`` publishes the staged entries.
    """

    def __init__(self, manager: ProducerStateManager) -> None:
        self._manager = manager
        self._staged: dict[int, ProducerEntry] = {}
        self.completed: list[CompletedTxn] = []  # transactions the staged markers end

    def _entry(self, producer_id: int, epoch: int) -> ProducerEntry:
        """The staged copy of a producer's entry (made on first use; new if none)."""
        staged = self._staged.get(producer_id)
        if staged is None:
            current = self._manager.producers.get(producer_id)
            staged = current.copy() if current is not None else ProducerEntry(epoch)
            self._staged[producer_id] = staged
        return staged

    def append(self, producer_id: int, epoch: int, first_seq: int, first_offset: int,
               last_offset: int, timestamp_ms: int, is_transactional: bool = False) -> Duplicate | None:
        """Check one batch that would land at ``first_offset..last_offset``; stage it when it
        is new, return the original's offsets when it is a duplicate, or raise."""
        if producer_id == NO_PRODUCER_ID:
            return None
        entry = self._staged.get(producer_id) or self._manager.producers.get(producer_id)
        if first_seq < 0:
            # Written by a coordinator for the producer (TxnOffsetCommit's offsets, Kafka's
            # AppendOrigin.COORDINATOR): no sequence to check, but the epoch still fences.
            # The validator refuses a client's producer batch without a sequence.
            if entry is not None and epoch < entry.epoch:
                raise InvalidProducerEpochError(
                    f"producer {producer_id} epoch {epoch} is older than the current epoch "
                    f"{entry.epoch}")
        else:
            duplicate = _check(entry, producer_id, epoch, first_seq, last_offset - first_offset)
            if duplicate is not None:
                return duplicate
        _check_txn(entry, producer_id, is_transactional)
        self._entry(producer_id, epoch).apply_batch(epoch, first_seq, first_offset, last_offset,
                                                    timestamp_ms, is_transactional)
        return None

    def append_marker(self, producer_id: int, epoch: int, commit: bool, coordinator_epoch: int,
                      offset: int, timestamp_ms: int) -> CompletedTxn:
        """Check and stage a COMMIT/ABORT marker that would land at ``offset``."""
        entry = self._staged.get(producer_id) or self._manager.producers.get(producer_id)
        _check_marker(entry, producer_id, epoch, coordinator_epoch)
        completed = self._entry(producer_id, epoch).apply_marker(
            epoch, commit, coordinator_epoch, offset, timestamp_ms, producer_id)
        self.completed.append(completed)
        return completed

    def commit(self) -> list[CompletedTxn]:
        """Publish the staged entries; returns the transactions the append completed (the
        log indexes the aborted ones, then hands each to ``complete_txn``)."""
        manager = self._manager
        for producer_id, entry in self._staged.items():
            manager.producers[producer_id] = entry
            manager._track(producer_id, entry)
        self._staged = {}
        completed, self.completed = self.completed, []
        return completed


# -- snapshot files ---------------------------------------------------------------------
def snapshot_path(directory: str, offset: int) -> str:
    return os.path.join(directory, f"{offset:020d}{SNAPSHOT_SUFFIX}")


def snapshot_offsets(directory: str) -> list[int]:
    """Offsets of the snapshot files in a partition directory, oldest first."""
    found = []
    for name in os.listdir(directory):
        m = _SNAPSHOT_FILE.match(name)
        if m:
            found.append(int(m.group(1)))
    return sorted(found)


def encode_snapshot(manager: ProducerStateManager, offset: int,
                    txn_index_counts: dict[str, int] | None = None) -> bytes:
    """The file body of a snapshot of ``manager`` as it is just before ``offset``.
    ``txn_index_counts``: per segment base offset, the aborted-transaction index entries
    below ``offset`` (recovery compares them with the ``.txnindex`` files it finds)."""
    body = {"offset": offset, "producers": manager.snapshot()}
    if txn_index_counts is not None:
        body["txn_index_counts"] = txn_index_counts
    return metafile.encode(SNAPSHOT_KIND, body)


class Snapshot(NamedTuple):
    state: ProducerStateManager
    txn_index_counts: dict[int, int] | None  # None: written before transactions


def load_snapshot(directory: str, offset: int) -> Snapshot:
    """Raises ``CorruptMetadataError`` (or KeyError/TypeError/ValueError for a body that
    checks out but does not hold a snapshot of ``offset``)."""
    data = metafile.read(snapshot_path(directory, offset), SNAPSHOT_KIND)
    if data["offset"] != offset:
        raise ValueError(f"snapshot file of offset {offset} holds offset {data['offset']}")
    counts = data.get("txn_index_counts")
    return Snapshot(ProducerStateManager.restore(data["producers"]),
                    None if counts is None else {int(k): int(v) for k, v in counts.items()})


def read_snapshot(directory: str, offset: int) -> ProducerStateManager:
    return load_snapshot(directory, offset).state
