"""The transaction coordinator's facts and their ``__transaction_state`` records.

Theory of operation
-------------------
One fact per transactional id: the whole ``TransactionMetadata`` after a transition
(Kafka's TransactionLogValue), keyed by the id (TransactionLogKey), so compaction keeps
the latest state of each id and a tombstone (null value) forgets an expired one. The byte
layout is declared once in ``kafkito.protocol.records.transaction_log``; this module maps
the coordinator's frozen ``TransactionMetadata`` to it and back. Value version 0 is
written (what a Kafka broker writes without KIP-890's transaction version 2), every
declared version is read. Decoding untrusted bytes raises ``RecordFormatError``.
"""

from __future__ import annotations

import dataclasses
import enum

from kafkito.protocol.errors import ProtocolError
from kafkito.protocol.records import transaction_log as declared

__all__ = ["RecordFormatError", "TransactionMetadata", "TxnState", "decode_record", "encode_record"]

VALUE_VERSION = 0


class RecordFormatError(ValueError):
    """A ``__transaction_state`` key or value that is not one of Kafka's formats."""


class TxnState(enum.IntEnum):
    """Kafka's TransactionState, with the ids its log uses and the names its admin APIs show."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def kafka_name(self) -> str:
        return _NAMES[self]

    @classmethod
    def by_name(cls, name: str) -> TxnState | None:
        return _BY_NAME.get(name)


_NAMES = {
    TxnState.EMPTY: "Empty", TxnState.ONGOING: "Ongoing", TxnState.PREPARE_COMMIT: "PrepareCommit",
    TxnState.PREPARE_ABORT: "PrepareAbort", TxnState.COMPLETE_COMMIT: "CompleteCommit",
    TxnState.COMPLETE_ABORT: "CompleteAbort", TxnState.DEAD: "Dead",
    TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
_BY_NAME = {v: k for k, v in _NAMES.items()}


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionMetadata:
    """One transactional id's durable state (what a TransactionLogValue holds)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[tuple[str, int]] = frozenset()
    start_ms: int = -1  # when the current transaction began (its first AddPartitions)
    last_update_ms: int = -1

    def replace(self, **changes) -> TransactionMetadata:
        return dataclasses.replace(self, **changes)


def encode_record(meta: TransactionMetadata | None, transactional_id: str) -> tuple[bytes, bytes | None]:
    """(key, value) bytes; ``meta`` None is the id's tombstone."""
    try:
        key = declared.TRANSACTION_LOG.encode_key(declared.TransactionLogKey(transactional_id=transactional_id))
        if meta is None:
            return key, None
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(meta.partitions):
            by_topic.setdefault(topic, []).append(partition)
        value = declared.TransactionLogValue(
            producer_id=meta.producer_id, producer_epoch=meta.producer_epoch,
            transaction_timeout_ms=meta.timeout_ms, transaction_status=int(meta.state),
            transaction_partitions=[declared.TransactionPartitions(topic=t, partition_ids=ps)
                                    for t, ps in by_topic.items()],
            transaction_last_update_timestamp_ms=meta.last_update_ms,
            transaction_start_timestamp_ms=meta.start_ms)
        return key, declared.TRANSACTION_LOG.encode_value(value, VALUE_VERSION)
    except ValueError as exc:  # a string longer than an int16 length
        raise RecordFormatError(str(exc)) from exc


def decode_record(raw_key, raw_value) -> tuple[str, TransactionMetadata | None] | None:
    """(transactional id, metadata or None for a tombstone), or None for a record type
    this coordinator does not know (a newer Kafka's)."""
    if raw_key is None:
        raise RecordFormatError("record without a key")
    try:
        decoded = declared.TRANSACTION_STATE_RECORDS.decode_key(raw_key)
        if decoded is None:
            return None
        rt, key = decoded
        tid = key.transactional_id
        value = rt.decode_value(raw_value)
    except ProtocolError as exc:
        raise RecordFormatError(str(exc)) from None
    if value is None:
        return tid, None
    _, v = value
    try:
        state = TxnState(v.transaction_status)
    except ValueError:
        raise RecordFormatError(f"transaction {tid!r}: unknown status {v.transaction_status}") from None
    partitions = frozenset((tp.topic, p) for tp in (v.transaction_partitions or []) for p in tp.partition_ids)
    return tid, TransactionMetadata(tid, v.producer_id, v.producer_epoch, v.transaction_timeout_ms, state,
                                    partitions, v.transaction_start_timestamp_ms,
                                    v.transaction_last_update_timestamp_ms)
