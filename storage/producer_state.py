"""ProducerStateManager: idempotent-producer sequence checks for one partition.

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

``check`` is pure: it decides for one batch header without changing anything, so the
caller can append first and ``record`` only what was really written. State is a plain
mapping; ``snapshot``/``restore`` turn it into JSON-able data for a snapshot file, and
``rebuild`` replays batch headers read back from the log after a crash.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from .errors import StorageError

__all__ = [
    "BATCHES_KEPT",
    "BatchMetadata",
    "Duplicate",
    "InvalidProducerEpochError",
    "OutOfOrderSequenceError",
    "ProducerStateManager",
    "UnknownProducerIdError",
]

BATCHES_KEPT = 5
SEQUENCE_MAX = 2**31 - 1
NO_PRODUCER_ID = -1


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


def _last_seq(first_seq: int, record_count_minus_one: int) -> int:
    return (first_seq + record_count_minus_one) % (SEQUENCE_MAX + 1)


def _next_seq(seq: int) -> int:
    return 0 if seq == SEQUENCE_MAX else seq + 1


class ProducerStateManager:
    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}

    def check(self, producer_id: int, epoch: int, first_seq: int, last_offset_delta: int) -> Duplicate | None:
        """Decide one batch: None to append it, a Duplicate to skip it, or raise."""
        if producer_id == NO_PRODUCER_ID:
            return None
        entry = self.producers.get(producer_id)
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

    def record(self, producer_id: int, epoch: int, first_seq: int, first_offset: int, last_offset: int,
               timestamp_ms: int) -> None:
        """Remember a batch that was appended at ``first_offset..last_offset``."""
        if producer_id == NO_PRODUCER_ID:
            return
        entry = self.producers.get(producer_id)
        if entry is None or epoch > entry.epoch:
            entry = self.producers[producer_id] = ProducerEntry(epoch)
        last_seq = _last_seq(first_seq, last_offset - first_offset)
        entry.batches.append(BatchMetadata(first_seq, last_seq, first_offset, last_offset, timestamp_ms))

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
