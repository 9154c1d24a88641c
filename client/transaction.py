"""Transactions for a producer with a ``transactional.id`` (KIP-98), when the broker offers them.

Theory of operation
-------------------
``TransactionManager`` is the producer's half of the protocol, a small state machine:

    READY --begin--> IN_TRANSACTION --commit/abort--> (EndTxn) --> READY
                                \\--a fatal error--> FATAL (fenced: only close() is left)

* ``init`` finds the transaction coordinator (FindCoordinator, key type 1) and asks it for
  the producer id and epoch of the transactional id (InitProducerId); this also fences any
  older producer with the same id and makes the coordinator finish (abort) whatever that
  one left open.
* a partition joins the transaction before its first batch is sent: the sender calls
  ``ensure_added`` with the partitions it is about to drain, which sends one
  AddPartitionsToTxn for the new ones (CONCURRENT_TRANSACTIONS, the previous transaction's
  markers still being written, is retried after a short backoff);
* ``send_offsets_to_transaction`` adds the consumer group (AddOffsetsToTxn) and commits the
  offsets through the group coordinator as part of the transaction (TxnOffsetCommit): they
  become visible only if the transaction commits (consume-transform-produce);
* ``commit`` flushes every queued record, refuses to commit if any of them failed (the
  transaction must then be aborted), and ends the transaction (EndTxn committed=True);
  ``abort`` drops records not yet sent, waits for those in flight, and ends it aborted.

Errors that mean this producer has been replaced (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH,
TRANSACTIONAL_ID_AUTHORIZATION_FAILED) are fatal: every later call raises them.
"""

from __future__ import annotations

import time
from collections import defaultdict

import anyio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.add_offsets_to_txn import AddOffsetsToTxnRequest
from kafkito.protocol.messages.add_partitions_to_txn import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)
from kafkito.protocol.messages.end_txn import EndTxnRequest
from kafkito.protocol.messages.txn_offset_commit import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
)

from .errors import IllegalStateError, KafkaError, error_for
from .types import OffsetAndMetadata, TopicPartition

__all__ = ["TransactionManager"]

ADD_PARTITIONS_MAX_VERSION = 4
ADD_OFFSETS_MAX_VERSION = 3
END_TXN_MAX_VERSION = 3
TXN_OFFSET_COMMIT_MAX_VERSION = 3
_FATAL = {ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH,
          ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, ErrorCode.INVALID_PRODUCER_ID_MAPPING}
_COORDINATOR_MOVED = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE}

READY, IN_TRANSACTION, FATAL = "READY", "IN_TRANSACTION", "FATAL"


class TransactionManager:
    def __init__(self, producer) -> None:
        self.producer = producer
        self.cluster = producer.cluster
        self.transactional_id: str = producer.transactional_id
        self.state = READY
        self.added: set[TopicPartition] = set()
        self.offsets_added = False
        self.fatal: KafkaError | None = None
        self._coordinator: int | None = None

    # -- helpers -----------------------------------------------------------------------------
    def _check(self, *allowed: str) -> None:
        if self.fatal is not None:
            raise self.fatal
        if self.state not in allowed:
            raise IllegalStateError(f"transaction state is {self.state}; needs {' or '.join(allowed)}")

    async def _call(self, api_key, body, max_version, check, *, to_group: str | None = None):
        """Send to the transaction (or ``to_group``'s) coordinator, retrying moves and
        retriable errors until ``transaction.timeout.ms``; raises fatal errors as such."""
        deadline = time.monotonic() + self.producer.transaction_timeout_ms / 1000
        while True:
            try:
                if to_group is not None:
                    node = await self.cluster.coordinator(to_group)
                else:
                    if self._coordinator is None:
                        self._coordinator = await self.cluster.coordinator(self.transactional_id, 1)
                    node = self._coordinator
                resp = await self.cluster.send(node, api_key, body, max_version)
                code = check(resp)
            except KafkaError as exc:
                code, resp = exc.code, None
                if not exc.retriable:
                    raise
            if not code:
                return resp
            err = error_for(code, f"transactional id {self.transactional_id!r}")
            if code in _FATAL:
                self.state, self.fatal = FATAL, err
                raise err
            if code in _COORDINATOR_MOVED or code == ErrorCode.NETWORK_EXCEPTION:
                self._coordinator = None
            if not err.retriable or time.monotonic() > deadline:
                raise err
            await anyio.sleep(self.cluster.retry_backoff_ms / 1000)

    # -- lifecycle ---------------------------------------------------------------------------
    async def init(self) -> None:
        await self.producer._init_producer_id(self.transactional_id)

    def begin(self) -> None:
        self._check(READY)
        self.state = IN_TRANSACTION
        self.added.clear()
        self.offsets_added = False

    def record_partition(self, tp: TopicPartition) -> None:
        if self.fatal is not None:
            raise self.fatal
        if self.state != IN_TRANSACTION:
            raise IllegalStateError("a transactional producer sends only inside begin_transaction()")

    async def ensure_added(self, ready: list[TopicPartition]) -> list[TopicPartition]:
        """The ready partitions that are in the transaction, adding the new ones first."""
        new = [tp for tp in ready if tp not in self.added]
        if not new:
            return ready
        by_topic: dict[str, list[int]] = defaultdict(list)
        for tp in new:
            by_topic[tp.topic].append(tp.partition)
        topics = [AddPartitionsToTxnTopic(name=t, partitions=ps) for t, ps in by_topic.items()]
        p = self.producer

        def body(version):
            if version >= 4:
                return AddPartitionsToTxnRequest(transactions=[AddPartitionsToTxnTransaction(
                    transactional_id=self.transactional_id, producer_id=p.producer_id,
                    producer_epoch=p.producer_epoch, verify_only=False, topics=topics)])
            return AddPartitionsToTxnRequest(v3_and_below_transactional_id=self.transactional_id,
                                             v3_and_below_producer_id=p.producer_id,
                                             v3_and_below_producer_epoch=p.producer_epoch,
                                             v3_and_below_topics=topics)

        def check(resp):
            if getattr(resp, "error_code", 0):
                return resp.error_code
            results = resp.results_by_topic_v3_and_below
            if resp.results_by_transaction:
                results = resp.results_by_transaction[0].topic_results
            for t in results:
                for r in t.results_by_partition:
                    if r.partition_error_code:
                        return r.partition_error_code
            return 0

        await self._call(ApiKey.ADD_PARTITIONS_TO_TXN, body, ADD_PARTITIONS_MAX_VERSION, check)
        self.added.update(new)
        return ready

    async def send_offsets(self, offsets: dict, group_id: str, *, generation_id: int = -1, member_id: str = "",
                           group_instance_id: str | None = None) -> None:
        self._check(IN_TRANSACTION)
        p = self.producer
        await self._call(ApiKey.ADD_OFFSETS_TO_TXN, AddOffsetsToTxnRequest(
            transactional_id=self.transactional_id, producer_id=p.producer_id, producer_epoch=p.producer_epoch,
            group_id=group_id), ADD_OFFSETS_MAX_VERSION, lambda r: r.error_code)
        self.offsets_added = True
        by_topic: dict[str, list] = defaultdict(list)
        for tp, om in offsets.items():
            tp = TopicPartition(*tp)
            om = om if isinstance(om, OffsetAndMetadata) else OffsetAndMetadata(int(om))
            by_topic[tp.topic].append(TxnOffsetCommitRequestPartition(
                partition_index=tp.partition, committed_offset=om.offset, committed_leader_epoch=om.leader_epoch,
                committed_metadata=om.metadata or ""))
        body = TxnOffsetCommitRequest(
            transactional_id=self.transactional_id, group_id=group_id, producer_id=p.producer_id,
            producer_epoch=p.producer_epoch, generation_id=generation_id, member_id=member_id,
            group_instance_id=group_instance_id,
            topics=[TxnOffsetCommitRequestTopic(name=t, partitions=ps) for t, ps in by_topic.items()])

        def check(resp):
            for t in resp.topics:
                for part in t.partitions:
                    if part.error_code:
                        return part.error_code
            return 0

        await self._call(ApiKey.TXN_OFFSET_COMMIT, body, TXN_OFFSET_COMMIT_MAX_VERSION, check, to_group=group_id)

    async def commit(self) -> None:
        self._check(IN_TRANSACTION)
        failed = await self.producer._flush_collecting_errors()
        if failed is not None:
            raise IllegalStateError(f"a record of the transaction failed ({failed}); abort the transaction")
        await self._end(True)

    async def abort(self) -> None:
        if self.fatal is not None:
            raise self.fatal
        if self.state != IN_TRANSACTION:
            raise IllegalStateError(f"transaction state is {self.state}; nothing to abort")
        self.producer._acc.fail_all(error_for(ErrorCode.TRANSACTION_ABORTABLE, "the transaction was aborted"))
        await self.producer._flush_collecting_errors()
        await self._end(False)

    async def _end(self, committed: bool) -> None:
        # A transaction that touched nothing has no state on the coordinator: nothing to end.
        if self.added or self.offsets_added:
            p = self.producer
            body = EndTxnRequest(transactional_id=self.transactional_id, producer_id=p.producer_id,
                                 producer_epoch=p.producer_epoch, committed=committed)
            await self._call(ApiKey.END_TXN, body, END_TXN_MAX_VERSION, lambda r: r.error_code)
        self.added.clear()
        self.offsets_added = False
        self.state = READY
