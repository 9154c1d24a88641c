"""Issue 10 findings 3 and 5 against `kafkito serve` under `ulimit -n 1024`.

Before: CreateTopics with one topic of 100,000 partitions ran out of descriptors half-way,
left the topic listed, and every restart exited with "Too many open files"; one Metadata
request naming 10,000 unknown topics created all of them, stalled the broker ~10 s and made
accept() fail with EMFILE.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest
from e2e.clients import CONSUMERS, PRODUCERS, Msg
from e2e.raw import RawClient
from e2e.serve import ServeProcess

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages import create_topics as CT
from kafkito.protocol.messages import metadata as MD
from kafkito.protocol.messages import produce as PR
from kafkito.protocol.messages.api_versions import ApiVersionsRequest
from kafkito.records import build_batch

pytestmark = pytest.mark.e2e

NOFILE = 1024
VERSIONS = ApiVersionsRequest(client_software_name="t", client_software_version="1")


def raw(serve: ServeProcess, timeout_s: float = 120) -> RawClient:
    return RawClient("127.0.0.1", serve.port, timeout_s=timeout_s)


def create_topic(client: RawClient, name: str, partitions: int):
    body = CT.CreateTopicsRequest(topics=[CT.CreatableTopic(
        name=name, num_partitions=partitions, replication_factor=1)], timeout_ms=60_000)
    [result] = client.call(ApiKey.CREATE_TOPICS, 7, body).topics
    return result


def metadata(client: RawClient, names: list[str], *, auto_create: bool = True):
    body = MD.MetadataRequest(topics=[MD.MetadataRequestTopic(name=n) for n in names],
                              allow_auto_topic_creation=auto_create)
    return client.call(ApiKey.METADATA, 12, body).topics


def round_trip(bootstrap: str, topic: str, tag: str, partition: int = 0) -> None:
    sent = [Msg(b"k", f"{tag}-{i}".encode(), partition=partition) for i in range(5)]
    offsets = PRODUCERS["confluent"](bootstrap, topic, sent, acks="all")
    seen = CONSUMERS["confluent"](bootstrap, topic, partition, offsets[0], len(sent))
    assert [m.value for m in seen] == [m.value for m in sent]


@pytest.mark.slow
def test_100000_partition_create_topics_under_ulimit_1024_then_restart(tmp_path):
    data = tmp_path / "data"
    serve = ServeProcess(data, nofile=NOFILE)
    try:
        client = raw(serve)
        huge = create_topic(client, "huge", 100_000)
        assert huge.error_code == ErrorCode.POLICY_VIOLATION
        assert "max.partitions.per.request" in huge.error_message
        # Within the bound, and three times more files than ulimit -n allows at once.
        wide = create_topic(client, "wide", 3_000)
        assert wide.error_code == ErrorCode.NONE, wide.error_message
        assert create_topic(client, "normal", 1).error_code == ErrorCode.NONE
        listed = {t.name: len(t.partitions)
                  for t in metadata(client, ["huge", "wide"], auto_create=False)
                  if t.error_code == ErrorCode.NONE}
        assert listed == {"wide": 3_000}  # nothing of "huge" is left
        client.close()
        round_trip(serve.bootstrap, "normal", "before")
        assert not (data / "huge-0").exists()
    finally:
        assert serve.stop() == 0
    serve = ServeProcess(data, nofile=NOFILE, start_timeout_s=60)
    try:
        round_trip(serve.bootstrap, "normal", "after")
        round_trip(serve.bootstrap, "wide", "last", partition=2_999)
        assert "Too many open files" not in serve.log.read_text()
    finally:
        assert serve.stop() == 0


def test_metadata_naming_10000_unknown_topics_creates_at_most_the_bound_while_others_are_served(
        tmp_path):
    bound = 100  # auto.create.topics.max.per.request's default
    serve = ServeProcess(tmp_path / "data", nofile=NOFILE)
    try:
        admin = raw(serve)
        assert create_topic(admin, "steady", 1).error_code == ErrorCode.NONE
        other = raw(serve, timeout_s=30)
        latencies: list[float] = []
        stop = threading.Event()
        errors: list[BaseException] = []

        def keep_busy() -> None:
            batch = build_batch([(b"k", b"v" * 100, [], int(time.time() * 1000))])
            produce = PR.ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[PR.TopicProduceData(
                name="steady", partition_data=[PR.PartitionProduceData(index=0, records=batch)])])
            try:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    other.call(ApiKey.API_VERSIONS, 3, VERSIONS)
                    [topic] = other.call(ApiKey.PRODUCE, 9, produce).responses
                    assert topic.partition_responses[0].error_code == ErrorCode.NONE
                    latencies.append(time.perf_counter() - t0)
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)

        busy = threading.Thread(target=keep_busy)
        busy.start()
        try:
            time.sleep(0.2)
            names = [f"unknown-{i:05d}" for i in range(10_000)]
            t0 = time.perf_counter()
            topics = metadata(admin, names)
            elapsed = time.perf_counter() - t0
            # A new connection is accepted meanwhile and answered.
            fresh = raw(serve, timeout_s=10)
            fresh.call(ApiKey.API_VERSIONS, 3, VERSIONS)
            fresh.close()
        finally:
            stop.set()
            busy.join(30)
        assert not errors, errors
        codes = [t.error_code for t in topics]
        assert codes.count(ErrorCode.NONE) == bound
        assert codes.count(ErrorCode.LEADER_NOT_AVAILABLE) == 10_000 - bound
        created = [d for d in (tmp_path / "data").iterdir() if d.name.startswith("unknown-")]
        assert len(created) == bound
        # A retry creates the next batch, no more.
        again = metadata(admin, names)
        assert [t.error_code for t in again].count(ErrorCode.NONE) == 2 * bound
        # The other client kept its latency while the request was served.
        assert len(latencies) > 5
        print(f"metadata for 10,000 unknown topics: {elapsed * 1000:.0f} ms; other client's "
              f"ApiVersions+Produce: median {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} rounds")
        assert max(latencies) < 1.0
        admin.close()
        other.close()
        assert "Too many open files" not in serve.log.read_text()
    finally:
        assert serve.stop() == 0
