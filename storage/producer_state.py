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

Where transactions plug in: Kafka keeps ongoing transactions and the last stable offset
in this same object (``ongoingTxns``, ``firstUnstableOffset``); they belong beside
``producers`` here, staged through ``ProducerAppendInfo`` the same way, and snapshotted
with it.
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
    "InvalidProducerEpochError",
    "OutOfOrderSequenceError",
    "ProducerAppendInfo",
    "ProducerStateManager",
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

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    def remember(self, first_seq: int, first_offset: int, last_offset: int, timestamp_ms: int) -> None:
        last_seq = _last_seq(first_seq, last_offset - first_offset)
        self.batches.append(BatchMetadata(first_seq, last_seq, first_offset, last_offset, timestamp_ms))

    def copy(self) -> "ProducerEntry":
        return ProducerEntry(self.epoch, deque(self.batches, maxlen=BATCHES_KEPT))


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


class ProducerStateManager:
    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}

    def check(self, producer_id: int, epoch: int, first_seq: int, last_offset_delta: int) -> Duplicate | None:
        """Decide one batch: None to append it, a Duplicate to skip it, or raise."""
        return _check(self.producers.get(producer_id), producer_id, epoch, first_seq,
                      last_offset_delta)

    def begin_append(self) -> "ProducerAppendInfo":
        return ProducerAppendInfo(self)

    def record(self, producer_id: int, epoch: int, first_seq: int, first_offset: int, last_offset: int,
               timestamp_ms: int) -> None:
        """Remember a batch that was appended at ``first_offset..last_offset``."""
        if producer_id == NO_PRODUCER_ID:
            return
        entry = self.producers.get(producer_id)
        if entry is None or epoch > entry.epoch:
            entry = self.producers[producer_id] = ProducerEntry(epoch)
        entry.remember(first_seq, first_offset, last_offset, timestamp_ms)

    def rebuild(self, headers: Iterable[tuple[int, int, int, int, int, int]]) -> None:
        """Replay (producer_id, epoch, first_seq, base_offset, last_offset, max_timestamp)."""
        for producer_id, epoch, first_seq, base_offset, last_offset, timestamp in headers:
            if producer_id != NO_PRODUCER_ID:
                self.record(producer_id, epoch, first_seq, base_offset, last_offset, timestamp)

    def truncate_before(self, offset: int) -> None:
        """Forget batches below ``offset`` (retention/DeleteRecords took them)."""
        for producer_id in list(self.producers):
            entry = self.producers[producer_id]
            while entry.batches and entry.batches[0].last_offset < offset:
                entry.batches.popleft()
            if not entry.batches:
                del self.producers[producer_id]

    # -- snapshots -----------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {
            str(pid): {"epoch": e.epoch, "batches": [list(b) for b in e.batches]}
            for pid, e in self.producers.items()
        }

    @classmethod
    def restore(cls, data: dict) -> "ProducerStateManager":
        manager = cls()
        for pid, item in data.items():
            entry = ProducerEntry(int(item["epoch"]))
            for b in item["batches"]:
                entry.batches.append(BatchMetadata(*b))
            manager.producers[int(pid)] = entry
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

    def append(self, producer_id: int, epoch: int, first_seq: int, first_offset: int,
               last_offset: int, timestamp_ms: int) -> Duplicate | None:
        """Check one batch that would land at ``first_offset..last_offset``; stage it when it
        is new, return the original's offsets when it is a duplicate, or raise."""
        if producer_id == NO_PRODUCER_ID:
            return None
        entry = self._staged.get(producer_id) or self._manager.producers.get(producer_id)
        duplicate = _check(entry, producer_id, epoch, first_seq, last_offset - first_offset)
        if duplicate is not None:
            return duplicate
        if entry is None or epoch > entry.epoch:
            staged = ProducerEntry(epoch)
        elif producer_id in self._staged:
            staged = entry
        else:
            staged = entry.copy()
        staged.remember(first_seq, first_offset, last_offset, timestamp_ms)
        self._staged[producer_id] = staged
        return None

    def commit(self) -> None:
        self._manager.producers.update(self._staged)
        self._staged = {}


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


def encode_snapshot(manager: ProducerStateManager, offset: int) -> bytes:
    """The file body of a snapshot of ``manager`` as it is just before ``offset``."""
    return metafile.encode(SNAPSHOT_KIND, {"offset": offset, "producers": manager.snapshot()})


def read_snapshot(directory: str, offset: int) -> ProducerStateManager:
    """Raises ``CorruptMetadataError`` (or KeyError/TypeError/ValueError for a body that
    checks out but does not hold a snapshot of ``offset``)."""
    data = metafile.read(snapshot_path(directory, offset), SNAPSHOT_KIND)
    if data["offset"] != offset:
        raise ValueError(f"snapshot file of offset {offset} holds offset {data['offset']}")
    return ProducerStateManager.restore(data["producers"])
