"""Tiered storage end to end: a real S3 endpoint (moto's server over HTTP), a real broker,
the three real clients.

Segments are small so a few thousand records roll many of them; local.retention.ms=0 makes
local copies go as soon as they are offloaded, so reading from offset 0 must come from the
bucket. The oracle for "byte-exact" is the bucket itself, read with boto3: the batches a
Fetch returns below the local log start are the bytes of the remote segment objects.
"""

from __future__ import annotations

import shutil
import signal
import time

import pytest

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from kafkito.protocol.messages.list_offsets import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkito.records.batch import iter_batches
from kafkito.storage.remote import PartitionManifest
from kafkito.testing import broker as embedded_broker

from e2e.clients import (
    Msg,
    aiokafka_consume,
    confluent_consume,
    confluent_produce,
    kafka_python_consume,
)
from e2e.raw import RawClient
from e2e.serve import ServeProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUCKET = "kafkito-tiered"
EARLIEST_LOCAL, LATEST_TIERED = -4, -5
TIERED = {"remote.storage.enable": "true", "segment.bytes": "16384", "local.retention.ms": "0",
          "retention.ms": "-1", "file.delete.delay.ms": "0"}
BROKER = {"remote.log.manager.task.interval.ms": "100",
          "remote.log.manager.task.retry.backoff.ms": "100",
          "remote.log.manager.task.retry.backoff.max.ms": "500",
          "remote.log.reader.chunk.bytes": "8192"}


class Moto:
    """moto's S3 server in this process, on a fixed port so it can be stopped and started
    again (its buckets live in the process, so they survive the restart)."""

    def __init__(self):
        self.port = free_port()
        self.server = None
        self.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        from moto.server import ThreadedMotoServer
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self):
        self.server.stop()

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture(scope="module")
def moto():
    server = Moto()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture
def s3_env(moto, monkeypatch):
    for name, value in {"AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    return moto


def wait_until(predicate, timeout_s: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def list_offset(bootstrap: str, topic: str, timestamp: int) -> int:
    host, port = bootstrap.rsplit(":", 1)
    raw = RawClient(host, int(port))
    try:
        request = ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[ListOffsetsTopic(
            name=topic, partitions=[ListOffsetsPartition(partition_index=0, timestamp=timestamp)])])
        part = raw.call(ApiKey.LIST_OFFSETS, 9, request).topics[0].partitions[0]
        assert part.error_code == 0, part
        return part.offset
    finally:
        raw.close()


def fetch_partition(raw: RawClient, topic: str, offset: int):
    request = FetchRequest(
        replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
        session_id=0, session_epoch=-1, topics=[FetchTopic(topic=topic, partitions=[
            FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)])])
    return raw.call(ApiKey.FETCH, 12, request).responses[0].partitions[0]


def fetch_all(bootstrap: str, topic: str, end: int) -> bytes:
    """Every batch from offset 0 up to ``end``, as the wire carries them."""
    host, port = bootstrap.rsplit(":", 1)
    raw = RawClient(host, int(port))
    out, offset = [], 0
    try:
        while offset < end:
            part = fetch_partition(raw, topic, offset)
            assert part.error_code == 0, part
            data = bytes(part.records)
            assert data, offset
            out.append(data)
            offset = list(iter_batches(data))[-1].next_offset
        return b"".join(out)
    finally:
        raw.close()


def fetch_error(bootstrap: str, topic: str, offset: int) -> int:
    host, port = bootstrap.rsplit(":", 1)
    raw = RawClient(host, int(port))
    try:
        return fetch_partition(raw, topic, offset).error_code
    finally:
        raw.close()


def bucket_manifest(moto, topic: str) -> tuple[str, PartitionManifest]:
    s3 = moto.client()
    keys = bucket_keys(moto)
    found = [k for k in keys if f"/{topic}-" in k and k.endswith("/0/manifest")]
    assert len(found) == 1, keys
    body = s3.get_object(Bucket=BUCKET, Key=found[0])["Body"].read()
    return found[0].rsplit("/", 1)[0], PartitionManifest.decode(body, found[0])


def bucket_keys(moto) -> set[str]:
    pages = moto.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def check_manifest_consistent(moto, topic: str) -> PartitionManifest:
    """Every object the manifest names exists; segments are contiguous and ordered."""
    prefix, m = bucket_manifest(moto, topic)
    keys = bucket_keys(moto)
    for seg in m.segments:
        for suffix in seg.files:
            assert f"{prefix}/{seg.base_offset:020d}{suffix}" in keys, (seg, suffix)
    for a, b in zip(m.segments, m.segments[1:]):
        assert b.base_offset == a.next_offset
    return m


def remote_bytes(moto, topic: str) -> bytes:
    prefix, m = bucket_manifest(moto, topic)
    s3 = moto.client()
    return b"".join(s3.get_object(Bucket=BUCKET, Key=f"{prefix}/{s.base_offset:020d}.log")["Body"].read()
                    for s in m.segments)


def messages(n: int, t0: int) -> list[Msg]:
    return [Msg(key=b"key-%d" % i if i % 7 else None, value=b"value %d " % i + bytes([i % 251]) * (i % 90),
                headers=[("i", b"%d" % i)] if i % 3 else [], timestamp_ms=t0 + i * 10)
            for i in range(n)]


SMALL_BATCHES = {"batch.size": 4000}  # many batches, so many small segments


def produce(bootstrap, topic, msgs):
    confluent_produce(bootstrap, topic, msgs, extra=SMALL_BATCHES)


def assert_seen(seen, msgs, start: int = 0):
    assert [s.offset for s in seen] == list(range(start, start + len(msgs)))
    assert [(s.key, s.value, s.headers, s.timestamp_ms) for s in seen] == \
        [(m.key, m.value, m.headers, m.timestamp_ms) for m in msgs]


def remote_settings(url: str) -> dict:
    return dict(BROKER, **{"remote.log.storage.system.enable": "true",
                           "remote.log.storage.url": url})


def an_hour_ago_ms() -> int:
    """Record timestamps in the past: local.retention.ms=0 applies to them at once."""
    return int(time.time() * 1000) - 3_600_000


def test_real_clients_read_offloaded_data_byte_exact_from_s3(tmp_path, s3_env, moto):
    settings = remote_settings(f"s3://{BUCKET}/e2e")
    t0 = an_hour_ago_ms()
    msgs = messages(3000, t0)
    with embedded_broker(tmp_path / "data", settings=settings) as b:
        b.create_topic("tiered", 1, TIERED)
        bootstrap = b.bootstrap_servers
        produce(bootstrap, "tiered", msgs)
        # closed segments get offloaded and their local copies deleted
        local_start = wait_until(lambda: list_offset(bootstrap, "tiered", EARLIEST_LOCAL) > 2000 and
                                 list_offset(bootstrap, "tiered", EARLIEST_LOCAL), what="offload")
        assert list_offset(bootstrap, "tiered", -2) == 0  # earliest: the remote log start
        tiered = list_offset(bootstrap, "tiered", LATEST_TIERED)
        assert tiered == local_start - 1
        m = check_manifest_consistent(moto, "tiered")
        assert len(m.segments) > 10 and m.end_offset == local_start
        # byte-exact: what Fetch returns below the local start is the bucket's bytes
        remote = remote_bytes(moto, "tiered")
        assert fetch_all(bootstrap, "tiered", local_start) == remote
        for consume in (confluent_consume, kafka_python_consume, aiokafka_consume):
            assert_seen(consume(bootstrap, "tiered", 0, 0, len(msgs)), msgs)
        # offset for a timestamp deep in the remote tier, and between two records
        from kafka import KafkaConsumer, TopicPartition
        consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        try:
            tp = TopicPartition("tiered", 0)
            for i, ts in ((123, t0 + 1230), (124, t0 + 1235), (0, t0 - 5), (local_start + 3, t0 + (local_start + 3) * 10)):
                found = consumer.offsets_for_times({tp: ts})[tp]
                assert found.offset == i and found.timestamp == t0 + i * 10, (i, found)
        finally:
            consumer.close()


def test_store_outage_mid_offload_loses_nothing_and_offload_resumes(tmp_path, s3_env, moto):
    settings = remote_settings(f"s3://{BUCKET}/outage")
    msgs = messages(3000, an_hour_ago_ms())
    with embedded_broker(tmp_path / "data", settings=settings) as b:
        b.create_topic("outage", 1, TIERED)
        bootstrap = b.bootstrap_servers
        produce(bootstrap, "outage", msgs[:1000])
        wait_until(lambda: list_offset(bootstrap, "outage", EARLIEST_LOCAL) > 0, what="first offload")
        moto.stop()
        try:
            # produce and fetch of local data go on while the store is down
            produce(bootstrap, "outage", msgs[1000:])
            stuck = list_offset(bootstrap, "outage", EARLIEST_LOCAL)
            seen = confluent_consume(bootstrap, "outage", 0, stuck, len(msgs) - stuck)
            assert [s.offset for s in seen] == list(range(stuck, len(msgs)))
            time.sleep(1)
            assert list_offset(bootstrap, "outage", EARLIEST_LOCAL) == stuck  # nothing deleted
            # remote data cannot be read now: a retriable storage error, not a hang
            assert fetch_error(bootstrap, "outage", 0) == ErrorCode.KAFKA_STORAGE_ERROR
        finally:
            moto.start()
        wait_until(lambda: list_offset(bootstrap, "outage", EARLIEST_LOCAL) > 2000, what="catch-up")
        check_manifest_consistent(moto, "outage")
        assert_seen(confluent_consume(bootstrap, "outage", 0, 0, len(msgs)), msgs)


def test_kill_during_upload_restart_and_recovery_from_bucket(tmp_path, s3_env, moto):
    data = tmp_path / "data"
    settings = remote_settings(f"s3://{BUCKET}/crash")
    msgs = messages(6000, an_hour_ago_ms())
    prefix = "crash/"
    with ServeProcess(data, {**settings, "remote.log.manager.task.interval.ms": "1000000"}) as srv:
        from kafka.admin import KafkaAdminClient, NewTopic
        admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap)
        admin.create_topics([NewTopic("crash", 1, 1, topic_configs=TIERED)])
        admin.close()
        produce(srv.bootstrap, "crash", msgs)
        srv.stop()  # clean stop: the offload pass below starts from a known state
    with ServeProcess(data, settings) as srv:
        # kill -9 as soon as the first segment object is in the bucket: an upload is under way
        wait_until(lambda: any(k.startswith(prefix) and k.endswith(".log")
                               for k in bucket_keys(moto)), what="first upload", timeout_s=60)
        srv.stop(signal.SIGKILL)
    manifests = [k for k in bucket_keys(moto) if k.startswith(prefix) and k.endswith("/manifest")]
    before = check_manifest_consistent(moto, "crash") if manifests else None
    with ServeProcess(data, settings) as srv:  # restart: redoes or finishes the offload
        wait_until(lambda: list_offset(srv.bootstrap, "crash", EARLIEST_LOCAL) > 5000,
                   what="offload after restart", timeout_s=60)
        after = check_manifest_consistent(moto, "crash")
        if before is not None:
            assert after.version > before.version
            assert after.segments[: len(before.segments)] == before.segments
        assert_seen(kafka_python_consume(srv.bootstrap, "crash", 0, 0, len(msgs)), msgs)
        tiered_end = list_offset(srv.bootstrap, "crash", LATEST_TIERED) + 1
        srv.stop()
    shutil.rmtree(data)  # the disk is lost; the bucket is not
    with ServeProcess(data, settings) as srv:
        assert list_offset(srv.bootstrap, "crash", -2) == 0
        assert list_offset(srv.bootstrap, "crash", -1) == tiered_end
        assert_seen(aiokafka_consume(srv.bootstrap, "crash", 0, 0, tiered_end), msgs[:tiered_end])


def test_parquet_export_queried_by_duckdb_equals_consumer(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    bucket = tmp_path / "bucket"
    settings = remote_settings(f"file://{bucket}")
    t0 = an_hour_ago_ms()
    msgs = [Msg(key=b"k%d" % i, value=b'{"user": "u%d", "n": %d}' % (i % 5, i),
                headers=[("h", b"%d" % i)], timestamp_ms=t0 + i) for i in range(2000)]
    with embedded_broker(tmp_path / "data", settings=settings) as b:
        b.create_topic("pq", 1, dict(TIERED, **{"remote.storage.parquet.enable": "true",
                                                "remote.storage.parquet.json.columns": "true"}))
        produce(b.bootstrap_servers, "pq", msgs)
        end = wait_until(lambda: list_offset(b.bootstrap_servers, "pq", LATEST_TIERED) > 1000 and
                         list_offset(b.bootstrap_servers, "pq", LATEST_TIERED), what="offload") + 1
        seen = confluent_consume(b.bootstrap_servers, "pq", 0, 0, end)
    # (offload may have gone on past ``end``: later segments' files hold later offsets)
    files = sorted(str(p) for p in bucket.rglob("*.parquet"))
    assert files
    rows = duckdb.sql(
        "SELECT partition, \"offset\", epoch_ms(\"timestamp\") AS ts, key, value, "
        "[(h.key, h.value) for h in headers] AS hs, \"user\", n "
        f"FROM read_parquet({files!r}) WHERE \"offset\" < {end} ORDER BY \"offset\"").fetchall()
    assert len(rows) == end
    assert [(r[1], r[2], r[3], r[4], [tuple(h) for h in r[5]]) for r in rows] == \
        [(s.offset, s.timestamp_ms, s.key, s.value, s.headers) for s in seen]
    assert all(r[0] == 0 and r[6] == f"u{r[1] % 5}" and r[7] == r[1] for r in rows)


def test_delete_records_and_delete_topics_leave_nothing_in_the_bucket(tmp_path, s3_env, moto):
    settings = remote_settings(f"s3://{BUCKET}/deletes")
    msgs = messages(3000, an_hour_ago_ms())
    with embedded_broker(tmp_path / "data", settings=settings) as b:
        b.create_topic("doomed", 1, TIERED)
        bootstrap = b.bootstrap_servers
        produce(bootstrap, "doomed", msgs)
        wait_until(lambda: list_offset(bootstrap, "doomed", EARLIEST_LOCAL) > 2000, what="offload")
        before = check_manifest_consistent(moto, "doomed")
        from kafka.admin import KafkaAdminClient
        from kafka.structs import TopicPartition
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            cut = before.segments[2].base_offset + 1
            admin.delete_records({TopicPartition("doomed", 0): cut})
            assert list_offset(bootstrap, "doomed", -2) == cut  # earliest over both tiers
            after = check_manifest_consistent(moto, "doomed")
            assert after.log_start_offset == cut and after.segments[0] == before.segments[2]
            prefix = bucket_manifest(moto, "doomed")[0]
            assert not any(k.startswith(f"{prefix}/{s.base_offset:020d}")
                           for s in before.segments[:2] for k in bucket_keys(moto))
            assert_seen(confluent_consume(bootstrap, "doomed", 0, cut, len(msgs) - cut), msgs[cut:], cut)
            admin.delete_topics(["doomed"])
        finally:
            admin.close()
        wait_until(lambda: not any(k.startswith("deletes/") for k in bucket_keys(moto)),
                   what="remote objects deleted")
