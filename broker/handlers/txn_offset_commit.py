"""TxnOffsetCommit (key 28): versions 0-4.

Commits a consumer group's offsets inside the producer's transaction (the
consume-transform-produce loop's ``send_offsets_to_transaction``). Checked in two steps:
the transaction coordinator (the producer's id and epoch are current, PRODUCER_FENCED
otherwise, INVALID_PRODUCER_EPOCH before v3; the group's ``__consumer_offsets`` partition
was added by AddOffsetsToTxn, INVALID_TXN_STATE otherwise), then the group (KIP-447, v3+:
a member id and generation, when given, must be the group's current ones:
UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID). The offsets are written to
``__consumer_offsets`` as a transactional batch of the producer and fsynced before the
answer; they become the group's committed offsets when the transaction's COMMIT marker is
written there, and are dropped by an ABORT. Until then OffsetFetch with
``require_stable`` answers UNSTABLE_OFFSET_COMMIT for them.

Not served: v5 (KIP-890 transaction version 2, which adds the partition implicitly).
"""

from __future__ import annotations

from kafkito.broker.group.coordinator import OffsetCommitEntry, partition_for
from kafkito.broker.group.service import OFFSETS_TOPIC
from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.txn_offset_commit import (
    TxnOffsetCommitResponse,
    TxnOffsetCommitResponsePartition,
    TxnOffsetCommitResponseTopic,
)

from ..context import Deferred
from . import _group, _txn

API_KEY = ApiKey.TXN_OFFSET_COMMIT
MIN_VERSION = 0
MAX_VERSION = 4


async def handle(ctx, request) -> TxnOffsetCommitResponse | Deferred:
    v = ctx.api_version
    state = ctx.broker
    down = _txn.unavailable(ctx) or _group.unavailable(ctx)
    if down is None:
        partition = partition_for(request.group_id, state.groups.config.offsets_topic_num_partitions)
        down = _txn.fenced_for(v, 3, state.txns.verify_partition(
            request.transactional_id, request.producer_id, request.producer_epoch, OFFSETS_TOPIC, partition))
        if down == ErrorCode.NONE:
            down = None
    errors, to_commit = _group.split_commit(ctx, request.topics, down, lambda p: OffsetCommitEntry(
        p.partition_index, p.committed_offset, leader_epoch=p.committed_leader_epoch if v >= 2 else -1,
        metadata=p.committed_metadata))
    if not to_commit:
        return _response(request, errors)
    groups = state.groups
    waiter = groups.commit_txn_offsets(
        group_id=request.group_id, producer_id=request.producer_id, producer_epoch=request.producer_epoch,
        member_id=request.member_id if v >= 3 else "",
        group_instance_id=request.group_instance_id if v >= 3 else None,
        generation_id=request.generation_id if v >= 3 else -1, topics=to_commit)

    async def answer() -> TxnOffsetCommitResponse:
        return _response(request, await _group.commit_answered(groups, waiter, errors))

    return Deferred(answer)


def _response(request, errors) -> TxnOffsetCommitResponse:
    return TxnOffsetCommitResponse(throttle_time_ms=0, topics=[
        TxnOffsetCommitResponseTopic(name=t.name, partitions=[
            TxnOffsetCommitResponsePartition(partition_index=p.partition_index,
                                             error_code=errors[(t.name, p.partition_index)])
            for p in t.partitions])
        for t in request.topics])
