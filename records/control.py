"""Control batches: the COMMIT and ABORT markers that end a transaction in a partition.

Theory of operation. When a transaction ends, its coordinator writes one control batch to
every partition the transaction touched. The batch (attributes isControl | isTransactional,
the producer's id and epoch, base sequence -1) holds exactly one record:

    key   = int16 version (0), int16 type (0 ABORT, 1 COMMIT)    Kafka's ControlRecordKey
    value = int16 version (0), int32 coordinator epoch           Kafka's EndTxnMarker

Storage writes these batches (``PartitionLog.append_control``) and reads them back when it
rebuilds transaction state; consumers read them to drop aborted records. Both sides need the
same bytes, and storage may not import ``protocol`` (whose ``protocol/records/control.py``
declares the same records for the codec), so this is the record-format spelling of them:
struct packing, no schema machinery. The type values other than 0 and 1 belong to KRaft's
own log and are reported as they are. ``ReadCommittedFilter`` is the consumer's half: which
fetched batches a read_committed reader keeps (the client and the tests use it).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from .batch import HEADER_BYTES, RecordBatch, build_batch
from .errors import CorruptRecordError

__all__ = ["ABORT", "COMMIT", "ControlMarker", "ReadCommittedFilter", "build_control_batch",
           "control_marker", "control_marker_of"]

ABORT = 0
COMMIT = 1
CONTROL_KEY = struct.Struct(">hh")  # version, type
END_TXN_MARKER = struct.Struct(">hi")  # version, coordinator epoch
CONTROL_VERSION = 0


class ControlMarker(NamedTuple):
    type: int  # ABORT, COMMIT (or a KRaft type)
    coordinator_epoch: int  # -1 when the record carries no EndTxnMarker value

    @property
    def is_commit(self) -> bool:
        return self.type == COMMIT

    @property
    def is_abort(self) -> bool:
        return self.type == ABORT


def build_control_batch(producer_id: int, producer_epoch: int, commit: bool,
                        coordinator_epoch: int, timestamp_ms: int) -> bytes:
    """One control batch holding one COMMIT or ABORT marker (base offset 0: the log stamps it)."""
    key = CONTROL_KEY.pack(CONTROL_VERSION, COMMIT if commit else ABORT)
    value = END_TXN_MARKER.pack(CONTROL_VERSION, coordinator_epoch)
    return build_batch([(key, value, None, timestamp_ms)], producer_id=producer_id,
                       producer_epoch=producer_epoch, base_sequence=-1, is_transactional=True,
                       is_control=True)


def control_marker(batch: RecordBatch) -> ControlMarker:
    """The marker a control batch holds. Raises ``CorruptRecordError`` for a batch that is
    not a control batch or whose record is not a control record."""
    if not batch.is_control:
        raise CorruptRecordError(f"batch at offset {batch.base_offset} is not a control batch")
    for record in batch.records():
        key, value = record.key, record.value
        if key is None or len(key) < CONTROL_KEY.size:
            break
        version, kind = CONTROL_KEY.unpack_from(key)
        if version < 0:
            break
        epoch = -1
        if value is not None and len(value) >= END_TXN_MARKER.size:
            epoch = END_TXN_MARKER.unpack_from(value)[1]
        return ControlMarker(kind, epoch)
    raise CorruptRecordError(f"control batch at offset {batch.base_offset} holds no control record")


def control_marker_of(buf: bytes | bytearray | memoryview) -> ControlMarker:
    """``control_marker`` of the batch at the start of ``buf`` (the storage scans' bytes)."""
    if len(buf) < HEADER_BYTES:
        raise CorruptRecordError("control batch shorter than its header")
    return control_marker(RecordBatch(buf))


class ReadCommittedFilter:
    """What a read_committed consumer keeps of one partition's fetched batches, given the
    response's aborted transactions: Kafka's consumer algorithm (the Java client's
    ``CompletedFetch``). An aborted transaction's producer is dropped from the batch that
    reaches its first offset until that producer's ABORT marker; control batches are never
    handed to the application. Batches must be offered in offset order."""

    def __init__(self, aborted: list[tuple[int, int]] | None) -> None:
        self._pending = sorted(aborted or (), key=lambda a: a[1], reverse=True)
        self._aborted_producers: set[int] = set()

    def keep(self, batch: RecordBatch) -> bool:
        if batch.producer_id >= 0:
            while self._pending and self._pending[-1][1] <= batch.last_offset:
                self._aborted_producers.add(self._pending.pop()[0])
            if batch.is_control:
                if control_marker(batch).is_abort:
                    self._aborted_producers.discard(batch.producer_id)
                return False
            if batch.is_transactional and batch.producer_id in self._aborted_producers:
                return False
        return not batch.is_control
