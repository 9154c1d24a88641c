"""Compaction end to end: a compacted topic written by confluent-kafka (every codec, with
tombstones), cleaned by the broker's cleaner threads, then read from the beginning by
kafka-python and aiokafka; fetches at cleaned-away offsets; the compaction configs through
CreateTopics, IncrementalAlterConfigs and AlterConfigs; and ``__consumer_offsets`` kept small
by a group that commits 100,000 times."""

from __future__ import annotations

import os
import time

import pytest
from e2e.clients import CODECS, CONSUMERS, Msg, confluent_produce
from e2e.raw import RawClient, commit_offset, committed_offset
from e2e.test_admin import AiokafkaAdmin, ConfluentAdmin

from kafkito.protocol import ApiKey
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e

FAST_CLEANER = {"log.cleaner.backoff.ms": "50"}
COMPACTED = {"cleanup.policy": "compact", "segment.bytes": "1024", "segment.ms": "100",
             "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "300"}


@pytest.fixture(scope="module")
def cbroker(tmp_path_factory):
    with embedded_broker(tmp_path_factory.mktemp("kafkito-compaction"), settings=FAST_CLEANER) as running:
        yield running


def _wait(predicate, timeout_s=15.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _log(broker, topic):
    return broker.broker.state.logs.log(topic, 0)


def _records_in_log(plog):
    return [r for b in plog.batches() if not b.is_control for r in b.records()]


def test_a_compacted_topic_read_from_the_start_by_every_client_holds_the_latest_values(cbroker, topic_name):
    assert ConfluentAdmin(cbroker.bootstrap_servers).create(topic_name, 1, configs=COMPACTED) is None
    expected: dict[bytes, bytes | None] = {}
    for round_ in range(3):
        for codec in CODECS:
            msgs = []
            for k in range(8):
                key = b"key-%d" % k
                tombstone = round_ == 2 and k % 3 == 0
                value = None if tombstone else b"%s-%d-%s-" % (codec.encode(), round_, key) + b"x" * 80
                msgs.append(Msg(key, value, headers=[("codec", codec.encode())]))
                expected[key] = value
            confluent_produce(cbroker.bootstrap_servers, topic_name, msgs, compression=codec)
    plog = _log(cbroker, topic_name)
    written = plog.log_end_offset
    time.sleep(0.15)  # past segment.ms: the next append rolls, so every key above is cleanable
    confluent_produce(cbroker.bootstrap_servers, topic_name, [Msg(b"last", b"roll")])
    expected[b"last"] = b"roll"
    live = {k: v for k, v in expected.items() if v is not None}
    # The cleaner runs by itself; tombstones go delete.retention.ms after the clean that saw them.
    _wait(lambda: {r.key for r in _records_in_log(plog)} == set(live), what="the cleaner")
    assert plog.log_end_offset == written + 1
    for client in ("kafka-python", "aiokafka", "confluent"):
        seen = CONSUMERS[client](cbroker.bootstrap_servers, topic_name, 0, 0, len(live))
        assert {s.key: s.value for s in seen} == live, client
        assert [s.offset for s in seen] == sorted(s.offset for s in seen)
        assert seen[-1].offset == written  # nothing else follows: every older record is gone
        for s in seen:
            if s.key != b"last":
                assert s.headers == [("codec", s.value.split(b"-")[0])]


def test_a_fetch_at_a_cleaned_away_offset_returns_the_next_batch(cbroker, topic_name):
    assert ConfluentAdmin(cbroker.bootstrap_servers).create(topic_name, 1, configs=COMPACTED) is None
    for i in range(20):
        confluent_produce(cbroker.bootstrap_servers, topic_name, [Msg(b"same", b"v%d" % i + b"." * 100)])
    time.sleep(0.15)
    confluent_produce(cbroker.bootstrap_servers, topic_name, [Msg(b"other", b"roll")])
    plog = _log(cbroker, topic_name)
    _wait(lambda: len(_records_in_log(plog)) == 2, what="the cleaner")
    for client in ("kafka-python", "aiokafka", "confluent"):
        seen = CONSUMERS[client](cbroker.bootstrap_servers, topic_name, 0, 5, 2)
        assert [(s.offset, s.value) for s in seen] == [(19, b"v19" + b"." * 100), (20, b"roll")], client


def test_compaction_configs_through_create_incremental_and_legacy_alter(cbroker, topic_name):
    confluent = ConfluentAdmin(cbroker.bootstrap_servers)
    assert confluent.create(topic_name, 1, configs={"cleanup.policy": "compact,delete"}) is None
    plog = _log(cbroker, topic_name)
    assert plog.config.compact and plog.config.delete
    assert confluent.alter(topic_name, {"min.cleanable.dirty.ratio": "0.2", "min.compaction.lag.ms": "5",
                                        "max.compaction.lag.ms": "60000", "delete.retention.ms": "7"}) is None
    c = plog.config
    assert (c.min_cleanable_dirty_ratio, c.min_compaction_lag_ms, c.max_compaction_lag_ms,
            c.delete_retention_ms) == (0.2, 5, 60000, 7)
    # The floors: 1 KiB segments and 100 ms rolls are fine, anything smaller is INVALID_CONFIG.
    assert confluent.alter(topic_name, {"segment.bytes": "1024", "segment.ms": "100"}) is None
    assert confluent.alter(topic_name, {"segment.bytes": "1023"}) == "INVALID_CONFIG"
    assert confluent.alter(topic_name, {"segment.ms": "99"}) == "INVALID_CONFIG"
    assert confluent.alter(topic_name, {"min.cleanable.dirty.ratio": "1.5"}) == "INVALID_CONFIG"
    legacy = AiokafkaAdmin(cbroker.bootstrap_servers)
    try:
        assert legacy.alter(topic_name, {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.9"}) is None
    finally:
        legacy.close()
    assert plog.config.cleanup_policy == ("compact",) and plog.config.min_cleanable_dirty_ratio == 0.9


def test_the_broker_cleaner_settings_come_from_the_toml_file(tmp_path):
    from kafkito.broker.config import load_config

    path = tmp_path / "kafkito.toml"
    path.write_text('[log.cleaner]\nenable = false\nthreads = 3\n"io.max.bytes.per.second" = 1048576.0\n'
                    'backoff.ms = 250\n"dedupe.buffer.size" = 2097152\n"delete.retention.ms" = 5\n')
    config = load_config(config_file=path, environ={})
    assert (config.log_cleaner_enable, config.log_cleaner_threads, config.log_cleaner_backoff_ms,
            config.log_cleaner_io_max_bytes_per_second, config.log_cleaner_dedupe_buffer_size) == (
        False, 3, 250, 1048576.0, 2097152)
    from kafkito.broker.config import log_config_from

    assert log_config_from(config).delete_retention_ms == 5


def _du(directory: str) -> int:
    return sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory))


def _commit_many(b, group: str, count: int, window: int = 400) -> None:
    """``count`` OffsetCommits of one group, pipelined ``window`` at a time."""
    from kafkito.protocol.messages.offset_commit import (
        OffsetCommitRequest,
        OffsetCommitRequestPartition,
        OffsetCommitRequestTopic,
    )

    raw = RawClient(b.host, b.port, timeout_s=60)
    try:
        sent = 0
        while sent < count:
            n = min(window, count - sent)
            for i in range(n):
                request = OffsetCommitRequest(
                    group_id=group, generation_id_or_member_epoch=-1, member_id="",
                    group_instance_id=None, topics=[OffsetCommitRequestTopic(
                        name="events", partitions=[OffsetCommitRequestPartition(
                            partition_index=0, committed_offset=sent + i + 1, committed_metadata="")])])
                raw.send(ApiKey.OFFSET_COMMIT, 8, request)
            for _ in range(n):
                _cid, response = raw.receive(ApiKey.OFFSET_COMMIT, 8)
                assert response.topics[0].partitions[0].error_code == 0
            sent += n
    finally:
        raw.close()


def _start_time_s(directory) -> tuple[float, str]:
    started = time.perf_counter()
    with embedded_broker(directory, settings=SETTINGS_100K) as b:
        elapsed = time.perf_counter() - started
        raw = RawClient(b.host, b.port)
        try:
            return elapsed, committed_offset(raw, "g", "events", 0)
        finally:
            raw.close()


# Replaced segments are removed by the retention pass once file.delete.delay.ms is over.
SETTINGS_100K = {"offsets.topic.segment.bytes": str(1024 * 1024), "log.cleaner.backoff.ms": "100",
                 "log.segment.delete.delay.ms": "0", "log.retention.check.interval.ms": "200"}


@pytest.mark.slow
def test_a_group_committing_100000_times_keeps_consumer_offsets_small_and_start_up_flat(tmp_path):
    """The active segment (offsets.topic.segment.bytes, 1 MiB here: the floor for internal
    topics) is all the cleaner leaves to replay, whatever the number of commits."""
    sizes, times = {}, {}
    for count in (100, 30_000, 100_000):
        directory = tmp_path / f"d{count}"
        with embedded_broker(directory, settings=SETTINGS_100K) as b:
            b.create_topic("events")
            began = time.perf_counter()
            _commit_many(b, "g", count)
            commit_s = time.perf_counter() - began
            offsets_dir = os.path.join(str(directory), "__consumer_offsets-0")
            # The cleaner keeps up: the active segment and a few cleaned records remain.
            _wait(lambda: _du(offsets_dir) < 1.5 * 1024 * 1024, timeout_s=60, what="the cleaner")
            raw = RawClient(b.host, b.port)
            assert commit_offset(raw, "g", "events", 0, count + 1) == 0
            raw.close()
            sizes[count] = _du(offsets_dir)
        start_s, committed = _start_time_s(directory)
        assert committed == (0, count + 1)
        times[count] = start_s
        print(f"{count} commits: committed in {commit_s:.1f} s, __consumer_offsets "
              f"{sizes[count] / 1024:.0f} KiB on disk, broker start {start_s * 1000:.0f} ms")
    assert sizes[100_000] < 1.5 * 1024 * 1024
    # Flat in the number of commits: 100,000 start as fast as 30,000 (both replay at most
    # one active segment), and within the cost of one such segment of 100.
    assert times[100_000] < times[30_000] * 2 + 0.2, times
    assert times[100_000] < times[100] + 1.0, times
