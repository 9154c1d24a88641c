"""AddPartitionsToTxn (key 24): versions 0-5.

Adds partitions to the producer's transaction, starting one if none is open; answered
once the new state of the transaction is fsynced in ``__transaction_state``. Per-partition
errors: UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist, and then
OPERATION_NOT_ATTEMPTED for the others of the request (nothing is added), as Kafka does;
otherwise every partition gets the transaction's answer: PRODUCER_FENCED (an older epoch;
INVALID_PRODUCER_EPOCH before v2), INVALID_PRODUCER_ID_MAPPING, CONCURRENT_TRANSACTIONS
(the previous transaction is still completing: the client retries), or a coordinator error.

v0-v3 carry one transaction (the client's form). v4+ carry a list of transactions (the
form Kafka's brokers use for KIP-890 verification): each is answered on its own, and
``verify_only`` checks, without adding anything, that each partition is already in the
transaction (INVALID_TXN_STATE for one that is not). v5 only allows TRANSACTION_ABORTABLE,
which this broker does not answer.
"""

from __future__ import annotations

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.add_partitions_to_txn import (
    AddPartitionsToTxnPartitionResult,
    AddPartitionsToTxnResponse,
    AddPartitionsToTxnResult,
    AddPartitionsToTxnTopicResult,
)

from ..context import Deferred
from ._txn import fenced_for, unavailable

API_KEY = ApiKey.ADD_PARTITIONS_TO_TXN
MIN_VERSION = 0
MAX_VERSION = 5


def _results(topics, errors: dict[tuple[str, int], ErrorCode]) -> list[AddPartitionsToTxnTopicResult]:
    return [AddPartitionsToTxnTopicResult(name=t.name, results_by_partition=[
        AddPartitionsToTxnPartitionResult(partition_index=p, partition_error_code=errors[(t.name, p)])
        for p in t.partitions]) for t in topics]


def _one(ctx, tid: str, pid: int, epoch: int, topics, verify_only: bool):
    """(errors by partition, or a waiter whose error every partition gets)."""
    v = ctx.api_version
    tps = [(t.name, p) for t in topics for p in t.partitions]
    down = unavailable(ctx)
    if down is not None:
        return {tp: down for tp in tps}, None
    logs = ctx.broker.logs
    missing = set()
    for topic, p in tps:
        meta = logs.topic(topic)
        if meta is None or not 0 <= p < meta.num_partitions:
            missing.add((topic, p))
    if missing:
        return {tp: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if tp in missing else ErrorCode.OPERATION_NOT_ATTEMPTED
                for tp in tps}, None
    txns = ctx.broker.txns
    if verify_only:
        return {tp: fenced_for(v, 2, txns.verify_partition(tid, pid, epoch, *tp)) for tp in tps}, None
    return tps, txns.add_partitions(tid, pid, epoch, tps)


async def handle(ctx, request) -> AddPartitionsToTxnResponse | Deferred:
    v = ctx.api_version
    txns = ctx.broker.txns
    if v <= 3:
        errors, waiter = _one(ctx, request.v3_and_below_transactional_id, request.v3_and_below_producer_id,
                              request.v3_and_below_producer_epoch, request.v3_and_below_topics, False)
        topics = request.v3_and_below_topics
        if waiter is None:
            return AddPartitionsToTxnResponse(throttle_time_ms=0, results_by_topic_v3_and_below=_results(topics, errors))

        async def answer_one() -> AddPartitionsToTxnResponse:
            error = fenced_for(v, 2, await txns.wait(waiter))
            return AddPartitionsToTxnResponse(throttle_time_ms=0, results_by_topic_v3_and_below=_results(
                topics, {tp: error for tp in errors}))

        return Deferred(answer_one)

    parts = [(t, _one(ctx, t.transactional_id, t.producer_id, t.producer_epoch, t.topics, t.verify_only))
             for t in request.transactions]

    async def answer_many() -> AddPartitionsToTxnResponse:
        out = []
        for t, (errors, waiter) in parts:
            if waiter is not None:
                error = await txns.wait(waiter)
                errors = {tp: error for tp in errors}
            out.append(AddPartitionsToTxnResult(transactional_id=t.transactional_id,
                                                topic_results=_results(t.topics, errors)))
        return AddPartitionsToTxnResponse(throttle_time_ms=0, error_code=ErrorCode.NONE,
                                          results_by_transaction=out)

    return Deferred(answer_many)
