"""Helpers shared by the transaction coordinator's handlers (init_producer_id.py,
add_partitions_to_txn.py, end_txn.py, ...). The coordinator lives in ``kafkito.broker.txn``."""

from __future__ import annotations

from kafkito.protocol import ErrorCode


def unavailable(ctx) -> ErrorCode | None:
    """The error every transactional request gets while the coordinator cannot serve it."""
    txns = ctx.broker.txns
    if txns is None:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    if txns.loading:
        return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    return None


def fenced_for(version: int, first_version: int, error: ErrorCode) -> ErrorCode:
    """PRODUCER_FENCED exists from ``first_version`` of an API on (KIP-588); older
    versions hear INVALID_PRODUCER_EPOCH, as Kafka answers them."""
    if error == ErrorCode.PRODUCER_FENCED and version < first_version:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return error
