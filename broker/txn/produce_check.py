"""The check before a transactional Produce: is the partition in the producer's transaction?

Kafka (KIP-890 part 1, ``transaction.partition.verification.enable``, on by default)
asks the transaction coordinator before appending a transactional batch, so a batch that
arrives for a partition never added (a buggy client), or after its transaction ended (a
late retry), cannot open a transaction that nothing will ever close, which would hold the
partition's last stable offset back forever. Here the coordinator is in the same process,
so the check is one lookup.

Answers as Kafka's produce path does: INVALID_TXN_STATE for a partition not in an open
transaction, INVALID_PRODUCER_EPOCH for a fenced epoch (Produce has no PRODUCER_FENCED),
INVALID_PRODUCER_ID_MAPPING for a producer id the transactional id does not hold,
NOT_ENOUGH_REPLICAS (retriable) while the coordinator is not ready or the transaction is
between states (CONCURRENT_TRANSACTIONS at the coordinator: Kafka's mapping too).
"""

from __future__ import annotations

import struct

from kafkito.protocol import ErrorCode
from kafkito.records.batch import ATTRIBUTES_AT, HEADER_BYTES, PRODUCER_ID_AT, TRANSACTIONAL_BIT

__all__ = ["check_transactional_produce"]

_ATTRIBUTES = struct.Struct(">h")
_PRODUCER = struct.Struct(">qh")


def check_transactional_produce(state, transactional_id: str | None, topic: str, partition: int,
                                records) -> ErrorCode:
    """NONE unless ``records`` (the partition's batch) is transactional and not allowed."""
    if records is None or len(records) < HEADER_BYTES:
        return ErrorCode.NONE  # the validator refuses it
    (attributes,) = _ATTRIBUTES.unpack_from(records, ATTRIBUTES_AT)
    if not attributes & TRANSACTIONAL_BIT:
        return ErrorCode.NONE
    producer_id, producer_epoch = _PRODUCER.unpack_from(records, PRODUCER_ID_AT)
    if producer_id < 0:
        return ErrorCode.NONE  # not a producer's batch at all: the validator refuses it
    txns = state.txns
    if txns is None or txns.loading:
        return ErrorCode.NOT_ENOUGH_REPLICAS
    if not transactional_id:
        return ErrorCode.INVALID_TXN_STATE
    error = txns.verify_partition(transactional_id, producer_id, producer_epoch, topic, partition)
    if error == ErrorCode.PRODUCER_FENCED:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    if error == ErrorCode.CONCURRENT_TRANSACTIONS:
        return ErrorCode.NOT_ENOUGH_REPLICAS  # Kafka's retriable stand-in: try again shortly
    if error == ErrorCode.INVALID_REQUEST:
        return ErrorCode.INVALID_TXN_STATE
    return error
