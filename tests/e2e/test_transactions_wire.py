"""The transactional APIs on the wire, version by version (our own codec, exact fields):
error mapping per version, the per-partition errors of AddPartitionsToTxn, its batched
v4+ form with verify_only, and the transactional Produce check."""

from __future__ import annotations

import pytest

from e2e.raw import RawClient
from kafkito.protocol import ErrorCode as E
from kafkito.protocol.messages.add_partitions_to_txn import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)
from kafkito.protocol.messages.create_topics import CreatableTopic, CreateTopicsRequest
from kafkito.protocol.messages.end_txn import EndTxnRequest
from kafkito.protocol.messages.init_producer_id import InitProducerIdRequest
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkito.records.batch import build_batch


@pytest.fixture
def raw(kbroker):
    host, port = kbroker.bootstrap_servers.split(":")
    client = RawClient(host, int(port))
    yield client
    client.close()


def _topic(raw, name):
    r = raw.call(19, 4, CreateTopicsRequest(topics=[CreatableTopic(name=name, num_partitions=2, replication_factor=1,
                                                                   assignments=[], configs=[])],
                                            timeout_ms=10_000, validate_only=False))
    assert r.topics[0].error_code == E.NONE


def _init(raw, tid, version=4, timeout_ms=60_000):
    return raw.call(22, version, InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=timeout_ms))


def _add_v3(raw, tid, pid, epoch, topics, version=3):
    r = raw.call(24, version, AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[AddPartitionsToTxnTopic(name=t, partitions=ps) for t, ps in topics]))
    return {(t.name, p.partition_index): p.partition_error_code
            for t in r.results_by_topic_v3_and_below for p in t.results_by_partition}


def _produce(raw, tid, topic, partition, pid, epoch, seq=0):
    batch = build_batch([(None, b"v", None, 0)], producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                        is_transactional=True)
    r = raw.call(0, 9, ProduceRequest(transactional_id=tid, acks=-1, timeout_ms=10_000, topic_data=[
        TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=partition, records=batch)])]))
    return r.responses[0].partition_responses[0].error_code


def test_init_rejects_bad_timeouts_and_empty_ids(raw, topic_name):
    assert _init(raw, "t-" + topic_name, timeout_ms=900_001).error_code == E.INVALID_TRANSACTION_TIMEOUT
    assert _init(raw, "t-" + topic_name, timeout_ms=0).error_code == E.INVALID_TRANSACTION_TIMEOUT
    assert _init(raw, "").error_code == E.INVALID_REQUEST
    first = _init(raw, "t-" + topic_name)
    second = _init(raw, "t-" + topic_name)
    assert (first.error_code, second.error_code) == (E.NONE, E.NONE)
    assert (second.producer_id, second.producer_epoch) == (first.producer_id, first.producer_epoch + 1)


def test_add_partitions_unknown_topic_and_fencing_per_version(raw, topic_name):
    _topic(raw, topic_name)
    tid = "t-" + topic_name
    r = _init(raw, tid)
    errors = _add_v3(raw, tid, r.producer_id, r.producer_epoch, [(topic_name, [0, 7]), ("no-such-topic", [0])])
    assert errors == {(topic_name, 0): E.OPERATION_NOT_ATTEMPTED, (topic_name, 7): E.UNKNOWN_TOPIC_OR_PARTITION,
                      ("no-such-topic", 0): E.UNKNOWN_TOPIC_OR_PARTITION}
    assert _add_v3(raw, tid, r.producer_id, r.producer_epoch, [(topic_name, [0])]) == {(topic_name, 0): E.NONE}
    newer = _init(raw, tid)  # fences r; aborts its open transaction first
    assert newer.error_code == E.CONCURRENT_TRANSACTIONS
    newer = _init(raw, tid)
    assert newer.error_code == E.NONE and newer.producer_epoch == r.producer_epoch + 2
    stale = r.producer_epoch
    assert _add_v3(raw, tid, r.producer_id, stale, [(topic_name, [0])], version=1) == \
        {(topic_name, 0): E.INVALID_PRODUCER_EPOCH}
    assert _add_v3(raw, tid, r.producer_id, stale, [(topic_name, [0])], version=2) == \
        {(topic_name, 0): E.PRODUCER_FENCED}
    for version, expected in ((1, E.INVALID_PRODUCER_EPOCH), (3, E.PRODUCER_FENCED)):
        end = raw.call(26, version, EndTxnRequest(transactional_id=tid, producer_id=r.producer_id,
                                                  producer_epoch=stale, committed=True))
        assert end.error_code == expected
    end = raw.call(26, 3, EndTxnRequest(transactional_id=tid, producer_id=newer.producer_id,
                                        producer_epoch=newer.producer_epoch, committed=True))
    assert end.error_code == E.INVALID_TXN_STATE  # nothing begun


def test_batched_v4_add_and_verify_only(raw, topic_name):
    _topic(raw, topic_name)
    a, b = "ta-" + topic_name, "tb-" + topic_name
    ra, rb = _init(raw, a), _init(raw, b)

    def txn(tid, r, verify, partitions):
        return AddPartitionsToTxnTransaction(transactional_id=tid, producer_id=r.producer_id,
                                             producer_epoch=r.producer_epoch, verify_only=verify,
                                             topics=[AddPartitionsToTxnTopic(name=topic_name, partitions=partitions)])

    resp = raw.call(24, 4, AddPartitionsToTxnRequest(transactions=[txn(a, ra, False, [0]), txn(b, rb, True, [1])]))
    got = {res.transactional_id: {p.partition_index: p.partition_error_code
                                  for t in res.topic_results for p in t.results_by_partition}
           for res in resp.results_by_transaction}
    assert got == {a: {0: E.NONE}, b: {1: E.INVALID_TXN_STATE}}
    resp = raw.call(24, 5, AddPartitionsToTxnRequest(transactions=[txn(a, ra, True, [0, 1])]))
    (res,) = resp.results_by_transaction
    assert {p.partition_index: p.partition_error_code for p in res.topic_results[0].results_by_partition} == \
        {0: E.NONE, 1: E.INVALID_TXN_STATE}


def test_transactional_produce_needs_the_partition_in_the_transaction(raw, topic_name):
    _topic(raw, topic_name)
    tid = "t-" + topic_name
    r = _init(raw, tid)
    assert _produce(raw, tid, topic_name, 0, r.producer_id, r.producer_epoch) == E.INVALID_TXN_STATE
    assert _add_v3(raw, tid, r.producer_id, r.producer_epoch, [(topic_name, [0])]) == {(topic_name, 0): E.NONE}
    assert _produce(raw, tid, topic_name, 1, r.producer_id, r.producer_epoch) == E.INVALID_TXN_STATE
    assert _produce(raw, tid, topic_name, 0, r.producer_id, r.producer_epoch) == E.NONE
    assert _produce(raw, tid, topic_name, 0, r.producer_id + 1, 0) == E.INVALID_PRODUCER_ID_MAPPING
    end = raw.call(26, 3, EndTxnRequest(transactional_id=tid, producer_id=r.producer_id,
                                        producer_epoch=r.producer_epoch, committed=True))
    assert end.error_code == E.NONE
    # the transaction is over: a late batch of it is refused
    assert _produce(raw, tid, topic_name, 0, r.producer_id, r.producer_epoch, seq=1) == E.INVALID_TXN_STATE
