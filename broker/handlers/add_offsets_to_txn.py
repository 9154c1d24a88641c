"""AddOffsetsToTxn (key 25): versions 0-4.

Adds the consumer group's ``__consumer_offsets`` partition (where the group's offsets
live: Kafka's placement of the group id) to the producer's transaction, so the
TxnOffsetCommit that follows is committed or aborted with it. Errors are
AddPartitionsToTxn's (PRODUCER_FENCED reads as INVALID_PRODUCER_EPOCH before v2).

Not served: the TV2 behaviour of KIP-890 (this broker does not finalise
``transaction.version`` 2, so clients keep sending AddOffsetsToTxn).
"""

from __future__ import annotations

from kafkito.broker.group.coordinator import partition_for
from kafkito.broker.group.service import OFFSETS_TOPIC
from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.add_offsets_to_txn import AddOffsetsToTxnResponse

from ..context import Deferred
from ._txn import fenced_for, unavailable

API_KEY = ApiKey.ADD_OFFSETS_TO_TXN
MIN_VERSION = 0
MAX_VERSION = 4


async def handle(ctx, request) -> AddOffsetsToTxnResponse | Deferred:
    v = ctx.api_version
    down = unavailable(ctx)
    if down is None and ctx.broker.groups is None:
        down = ErrorCode.COORDINATOR_NOT_AVAILABLE
    if down is not None:
        return AddOffsetsToTxnResponse(throttle_time_ms=0, error_code=down)
    if not request.group_id:
        return AddOffsetsToTxnResponse(throttle_time_ms=0, error_code=ErrorCode.INVALID_GROUP_ID)
    partition = partition_for(request.group_id, ctx.broker.groups.config.offsets_topic_num_partitions)
    txns = ctx.broker.txns
    waiter = txns.add_partitions(request.transactional_id, request.producer_id, request.producer_epoch,
                                 [(OFFSETS_TOPIC, partition)])

    async def answer() -> AddOffsetsToTxnResponse:
        return AddOffsetsToTxnResponse(throttle_time_ms=0, error_code=fenced_for(v, 2, await txns.wait(waiter)))

    return Deferred(answer)
