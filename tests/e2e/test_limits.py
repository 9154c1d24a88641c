"""Each per-connection limit at its edge: frames, idle time, in-flight requests, order."""

from __future__ import annotations

import time

import pytest
from e2e.clients import CONSUMERS, PRODUCERS, Msg
from e2e.raw import RawClient

from kafkito.protocol import ApiKey, encode_request
from kafkito.protocol.messages.api_versions import ApiVersionsRequest
from kafkito.protocol.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkito.records import build_batch
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def small_broker(tmp_path_factory):
    settings = {
        "socket.request.max.bytes": 4096,
        "connections.max.idle.ms": 400,
        "queued.max.requests": 2,
        "queued.max.request.bytes.per.connection": 8192,
        "queued.max.request.bytes": 65536,
    }
    with embedded_broker(tmp_path_factory.mktemp("limits"), settings=settings) as b:
        b.create_topic("limits")
        yield b


def _produce_request(value_bytes: int) -> ProduceRequest:
    batch = build_batch([(b"k", b"x" * value_bytes, [], 1_700_000_000_000)])
    return ProduceRequest(acks=1, timeout_ms=5000, topic_data=[
        TopicProduceData(name="limits", partition_data=[PartitionProduceData(index=0, records=batch)])])


def test_frame_at_the_limit_is_served_and_above_it_closes(small_broker):
    raw = RawClient(small_broker.host, small_broker.port)
    response = raw.call(ApiKey.PRODUCE, 9, _produce_request(3000))
    assert response.responses[0].partition_responses[0].error_code == 0
    raw.send(ApiKey.PRODUCE, 9, _produce_request(5000))  # a frame over socket.request.max.bytes
    assert raw.closed_by_broker()
    # Nothing of the refused frame reached the log; others carry on.
    seen = CONSUMERS["confluent"](small_broker.bootstrap_servers, "limits", 0, 0, 2, timeout_s=3)
    assert [len(s.value) for s in seen] == [3000]


def test_idle_connection_is_closed(small_broker):
    raw = RawClient(small_broker.host, small_broker.port)
    raw.call(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    started = time.monotonic()
    assert raw.closed_by_broker()
    assert 0.3 < time.monotonic() - started < 5


def test_pipelined_requests_beyond_the_in_flight_cap_are_all_answered_in_order(small_broker):
    raw = RawClient(small_broker.host, small_broker.port)
    body = ApiVersionsRequest(client_software_name="t", client_software_version="1")
    sent = [raw.send(ApiKey.API_VERSIONS, 3, body) for _ in range(50)]
    received = [raw.receive(ApiKey.API_VERSIONS, 3)[0] for _ in range(50)]
    assert received == sent


def test_responses_keep_request_order_behind_a_long_poll(kbroker, topic_name):
    kbroker.create_topic(topic_name)
    raw = RawClient(kbroker.host, kbroker.port)
    fetch = FetchRequest(replica_id=-1, max_wait_ms=600, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                         session_id=0, session_epoch=-1, topics=[FetchTopic(topic=topic_name, partitions=[
                             FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])])
    started = time.monotonic()
    first = raw.send(ApiKey.FETCH, 11, fetch)
    second = raw.send(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    correlation_id, response = raw.receive(ApiKey.FETCH, 11)
    waited = time.monotonic() - started
    assert correlation_id == first and 0.5 < waited < 5
    assert bytes(response.responses[0].partitions[0].records) == b""
    assert raw.receive(ApiKey.API_VERSIONS, 3)[0] == second


def test_a_long_poll_does_not_hold_up_a_produce_behind_it(kbroker, topic_name):
    """One connection: a Fetch that long-polls for 5 s, then a Produce to the partition it
    watches. The Produce must run while the Fetch waits (its handler defers the wait), and
    its append must wake the Fetch at once with the new record."""
    kbroker.create_topic(topic_name)
    raw = RawClient(kbroker.host, kbroker.port)
    fetch = FetchRequest(replica_id=-1, max_wait_ms=5000, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                         session_id=0, session_epoch=-1, topics=[FetchTopic(topic=topic_name, partitions=[
                             FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])])
    produce = ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[TopicProduceData(name=topic_name, partition_data=[
        PartitionProduceData(index=0, records=build_batch([(b"k", b"woken", [], 1_700_000_000_000)]))])])
    started = time.monotonic()
    first = raw.send(ApiKey.FETCH, 11, fetch)
    second = raw.send(ApiKey.PRODUCE, 9, produce)
    correlation_id, response = raw.receive(ApiKey.FETCH, 11)
    assert correlation_id == first
    assert time.monotonic() - started < 2.5
    assert b"woken" in bytes(response.responses[0].partitions[0].records)
    correlation_id, response = raw.receive(ApiKey.PRODUCE, 9)
    assert correlation_id == second
    assert response.responses[0].partition_responses[0].error_code == 0


def test_acks_zero_error_closes_the_connection(kbroker):
    raw = RawClient(kbroker.host, kbroker.port)
    request = _produce_request(10)
    request.acks = 0
    request.topic_data[0].name = "no-such-topic-acks0"
    raw.send(ApiKey.PRODUCE, 9, request)
    assert raw.closed_by_broker()
    # The same request with acks=1 is answered with the error instead.
    raw = RawClient(kbroker.host, kbroker.port)
    request.acks = 1
    part = raw.call(ApiKey.PRODUCE, 9, request).responses[0].partition_responses[0]
    assert part.error_code == 3  # UNKNOWN_TOPIC_OR_PARTITION
    assert PRODUCERS["confluent"](kbroker.bootstrap_servers, "after-acks0", [Msg(b"k", b"v")]) == [0]


def test_pipelined_produce_requests_append_in_the_order_sent(kbroker, topic_name):
    """Regression: handlers ran as concurrent tasks and trio does not start tasks in
    FIFO order, so pipelined Produce requests could append out of order (seen as
    kafka-python's gzip batches landing 23..34 before 0..22)."""
    kbroker.create_topic(topic_name)
    raw = RawClient(kbroker.host, kbroker.port)
    for acks in (1, -1):
        sent = []
        for i in range(40):
            batch = build_batch([(b"k", b"%d" % i, [], 1_700_000_000_000)])
            request = ProduceRequest(acks=acks, timeout_ms=5000, topic_data=[TopicProduceData(
                name=topic_name, partition_data=[PartitionProduceData(index=0, records=batch)])])
            sent.append(raw.send(ApiKey.PRODUCE, 9, request))
        offsets = []
        for correlation_id in sent:
            got, response = raw.receive(ApiKey.PRODUCE, 9)
            assert got == correlation_id
            offsets.append(response.responses[0].partition_responses[0].base_offset)
        assert offsets == sorted(offsets) and len(set(offsets)) == 40
    seen = CONSUMERS["confluent"](kbroker.bootstrap_servers, topic_name, 0, 0, 80)
    assert [s.value for s in seen] == [b"%d" % i for i in range(40)] * 2


def test_requests_sent_before_the_client_closes_are_carried_out(kbroker, topic_name):
    """Regression: an acks=0 producer closes right after its last send; the broker used
    to cancel the requests it had read but not yet run, losing those records."""
    kbroker.create_topic(topic_name)
    for c in range(5):
        raw = RawClient(kbroker.host, kbroker.port)
        for i in range(10):
            batch = build_batch([(b"k", b"%d-%d" % (c, i), [], 1_700_000_000_000)])
            raw.send(ApiKey.PRODUCE, 9, ProduceRequest(acks=0, timeout_ms=5000, topic_data=[TopicProduceData(
                name=topic_name, partition_data=[PartitionProduceData(index=0, records=batch)])]))
        raw.close()
    seen = CONSUMERS["kafka-python"](kbroker.bootstrap_servers, topic_name, 0, 0, 50)
    values = [s.value for s in seen]
    assert len(values) == 50
    for c in range(5):  # each connection's records in its own order (connections interleave)
        assert [v for v in values if v.startswith(b"%d-" % c)] == [b"%d-%d" % (c, i) for i in range(10)]


def test_pipelined_bytes_beyond_the_buffer_cap_are_all_answered(small_broker):
    """20 x 3 KB pipelined against an 8 KB in-flight cap: reading pauses, nothing is lost."""
    raw = RawClient(small_broker.host, small_broker.port)
    before = raw.call(ApiKey.PRODUCE, 9, _produce_request(1)).responses[0].partition_responses[0].base_offset
    sent = [raw.send(ApiKey.PRODUCE, 9, _produce_request(3000)) for _ in range(20)]
    offsets = []
    for correlation_id in sent:
        got, response = raw.receive(ApiKey.PRODUCE, 9)
        assert got == correlation_id
        offsets.append(response.responses[0].partition_responses[0].base_offset)
    assert offsets == list(range(before + 1, before + 21))


def _api_versions_frame(correlation_id: int, size: int) -> bytes:
    """An ApiVersions v3 frame of exactly ``size`` bytes (prefix included), padded by its name."""
    for name_len in range(size, -1, -1):
        body = ApiVersionsRequest(client_software_name="x" * name_len, client_software_version="1")
        frame = encode_request(ApiKey.API_VERSIONS, 3, correlation_id, "raw", body)
        if len(frame) == size:
            return frame
    raise ValueError(size)


@pytest.mark.parametrize("cut", [1, 2, 3, 5])
def test_a_size_prefix_split_across_reads_is_reassembled(kbroker, cut):
    """Frames that fill the broker's 64 KB receive buffer exactly, less ``cut`` bytes, then
    the first ``cut`` bytes of the next frame; the rest of it follows later. However the
    reads fall, every request is answered, in order."""
    raw = RawClient(kbroker.host, kbroker.port)
    frames = [_api_versions_frame(i + 1, 300) for i in range(217)]
    frames.append(_api_versions_frame(218, 65536 - cut - sum(map(len, frames))))
    last = _api_versions_frame(219, 300)
    raw.sock.sendall(b"".join(frames) + last[:cut])
    time.sleep(0.1)
    raw.sock.sendall(last[cut:])
    raw.correlation_id = 219
    answered = [raw.receive(ApiKey.API_VERSIONS, 3) for _ in range(219)]
    assert [c for c, _ in answered] == list(range(1, 220))
    assert all(r.error_code == 0 for _, r in answered)
    again = ApiVersionsRequest(client_software_name="t", client_software_version="1")
    assert raw.call(ApiKey.API_VERSIONS, 3, again).error_code == 0
