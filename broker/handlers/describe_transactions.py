"""DescribeTransactions (key 65): version 0.

The state of each named transactional id as the coordinator holds it: state name
(Kafka's: Empty, Ongoing, PrepareCommit, ...), timeout, start time of the open
transaction, producer id and epoch, and its partitions by topic.
TRANSACTIONAL_ID_NOT_FOUND for an id the coordinator does not know.
"""

from __future__ import annotations

from kafkito.protocol import ApiKey
from kafkito.protocol.messages.describe_transactions import (
    DescribeTransactionsResponse,
    TopicData,
    TransactionState,
)

from ._txn import unavailable

API_KEY = ApiKey.DESCRIBE_TRANSACTIONS
MIN_VERSION = 0
MAX_VERSION = 0


async def handle(ctx, request) -> DescribeTransactionsResponse:
    down = unavailable(ctx)
    if down is not None:
        return DescribeTransactionsResponse(throttle_time_ms=0, transaction_states=[
            TransactionState(error_code=down, transactional_id=tid, transaction_state="",
                             transaction_timeout_ms=0, transaction_start_time_ms=-1, producer_id=-1,
                             producer_epoch=-1, topics=[])
            for tid in request.transactional_ids])
    out = []
    for d in ctx.broker.txns.describe(request.transactional_ids):
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(d.partitions):
            by_topic.setdefault(topic, []).append(partition)
        out.append(TransactionState(
            error_code=d.error, transactional_id=d.transactional_id, transaction_state=d.state,
            transaction_timeout_ms=d.timeout_ms, transaction_start_time_ms=d.start_ms,
            producer_id=d.producer_id, producer_epoch=d.producer_epoch,
            topics=[TopicData(topic=t, partitions=ps) for t, ps in by_topic.items()]))
    return DescribeTransactionsResponse(throttle_time_ms=0, transaction_states=out)
