"""LogManager: topics, metadata files, the lock file, cluster id, clean-shutdown marker."""

import os
import subprocess
import sys
import uuid

import pytest
from storage_testlib import payload, read_all

from kafkito.storage import (
    TOPIC_CONFIGS,
    CorruptMetadataError,
    DataDirLockedError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    LogConfig,
    LogManager,
    TopicExistsError,
    UnknownTopicError,
)


@pytest.fixture
def manager(tmp_path, clock):
    m = LogManager(tmp_path / "data", LogConfig(), clock)
    m.startup()
    yield m
    m.shutdown()


def test_create_topic_persists_across_restart(tmp_path, clock):
    with LogManager(tmp_path, LogConfig(), clock) as m:
        tid = uuid.uuid4()
        meta = m.create_topic("orders", 3, {"retention.ms": "1000", "cleanup.policy": "compact,delete"},
                              topic_id=tid)
        assert meta.topic_id == tid and meta.num_partitions == 3
        assert m.log("orders", 2) is not None and m.log("orders", 3) is None
        assert m.topic_config("orders").retention_ms == 1000
        assert m.topic_config("orders").compact
        m.log("orders", 1).append(payload(0), clock.now_ms())
        cluster_id = m.cluster_id
    with LogManager(tmp_path, LogConfig(), clock) as m:
        assert m.clean_shutdown_detected
        assert m.cluster_id == cluster_id and len(cluster_id) == 22
        assert m.topic("orders") == meta
        assert m.topic_by_id(tid) == meta
        assert [t.name for t in m.topics()] == ["orders"]
        assert m.log("orders", 1).log_end_offset == 3
        assert len(read_all(m.log("orders", 1))) == 1


def test_create_topic_validation(manager):
    manager.create_topic("a", 1, {})
    with pytest.raises(TopicExistsError):
        manager.create_topic("a", 1, {})
    for bad in ("", ".", "..", "a/b", "x" * 250, "sp ace"):
        with pytest.raises(InvalidTopicError):
            manager.create_topic(bad, 1, {})
    manager.create_topic("x" * 249, 1, {})
    manager.log("x" * 249, 0).append(payload(0), 1_700_000_000_000)
    manager.delete_topic("x" * 249)  # its -delete directory name must fit in 255 bytes too
    manager.create_topic("a.b", 1, {})
    with pytest.raises(InvalidTopicError):
        manager.create_topic("a_b", 1, {})  # same metric name as a.b
    with pytest.raises(InvalidPartitionsError):
        manager.create_topic("b", 0, {})
    with pytest.raises(InvalidConfigError) as e:
        manager.create_topic("b", 1, {"retention.ms": "soon"})
    assert e.value.name == "retention.ms"
    with pytest.raises(InvalidConfigError):
        manager.create_topic("b", 1, {"no.such.config": "1"})
    with pytest.raises(InvalidConfigError):
        manager.create_topic("b", 1, {"cleanup.policy": "shred"})
    assert manager.topic("b") is None


def test_delete_topic_removes_data_after_the_delay(tmp_path, clock):
    with LogManager(tmp_path, LogConfig(file_delete_delay_ms=1000), clock) as m:
        m.create_topic("gone", 2, {})
        plog = m.log("gone", 0)
        plog.append(payload(0), clock.now_ms())
        s = plog.read(0, 1000)
        m.delete_topic("gone")
        assert m.topic("gone") is None and m.log("gone", 0) is None
        with pytest.raises(UnknownTopicError):
            m.delete_topic("gone")
        assert s.tobytes()  # an in-flight read still has its file
        m.apply_retention(clock.now_ms() + 999)
        assert any(n.endswith("-delete") for n in os.listdir(tmp_path))
        m.apply_retention(clock.now_ms() + 1000)
        assert not any(n.startswith("gone") for n in os.listdir(tmp_path))
        m.create_topic("gone", 1, {})  # the name is free again, with an empty log
        assert m.log("gone", 0).log_end_offset == 0


def test_interrupted_deletion_is_finished_on_startup(tmp_path, clock):
    with LogManager(tmp_path, LogConfig(), clock) as m:
        m.create_topic("t", 1, {})
        m.create_topic("keep", 1, {})
    with LogManager(tmp_path, LogConfig(), clock) as m:
        tid = m.topic("t").topic_id
    os.unlink(tmp_path / "__kafkito_topics" / f"{tid.hex}.meta")  # crash right after the commit point
    with LogManager(tmp_path, LogConfig(), clock) as m:
        assert m.topic("t") is None and m.topic("keep") is not None
        assert not os.path.exists(tmp_path / "t-0")


def test_create_partitions_and_alter_configs(tmp_path, clock):
    with LogManager(tmp_path, LogConfig(), clock) as m:
        m.create_topic("t", 1, {"retention.ms": "5"})
        with pytest.raises(InvalidPartitionsError):
            m.create_partitions("t", 1)
        meta = m.create_partitions("t", 3)
        assert meta.num_partitions == 3 and m.log("t", 2) is not None
        m.alter_topic_configs("t", {"segment.bytes": "2048"})
        assert m.topic("t").configs == {"segment.bytes": "2048"}
        assert m.log("t", 0).config.segment_bytes == 2048
        assert m.log("t", 0).config.retention_ms == LogConfig().retention_ms  # replaced set
        with pytest.raises(InvalidConfigError):
            m.alter_topic_configs("t", {"segment.bytes": "1"})
    with LogManager(tmp_path, LogConfig(), clock) as m:
        assert m.topic("t").num_partitions == 3
        assert m.log("t", 0).config.segment_bytes == 2048


def test_second_manager_on_the_same_directory_fails_clearly(tmp_path, clock):
    with LogManager(tmp_path, LogConfig(), clock):
        with pytest.raises(DataDirLockedError) as e:
            LogManager(tmp_path, LogConfig(), clock).startup()
        assert str(os.getpid()) in str(e.value) and "another kafkito broker" in str(e.value)
    # Released on shutdown.
    with LogManager(tmp_path, LogConfig(), clock):
        pass


def test_second_broker_process_is_refused(tmp_path, clock):
    code = ("import sys; from kafkito.storage import LogManager\n"
            "try:\n    LogManager(sys.argv[1]).startup()\n"
            "except Exception as e:\n    print(type(e).__name__, e); sys.exit(3)\n")
    with LogManager(tmp_path, LogConfig(), clock):
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert r.returncode == 3 and "DataDirLockedError" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_clean_shutdown_marker(tmp_path, clock):
    m = LogManager(tmp_path, LogConfig(), clock)
    m.startup()
    assert not m.clean_shutdown_detected  # first start
    assert not os.path.exists(tmp_path / ".kafka_cleanshutdown")
    m.create_topic("t", 1, {})
    m.shutdown()
    assert os.path.exists(tmp_path / ".kafka_cleanshutdown")
    m = LogManager(tmp_path, LogConfig(), clock)
    m.startup()
    assert m.clean_shutdown_detected
    assert not os.path.exists(tmp_path / ".kafka_cleanshutdown")  # gone before any write
    assert m.recovery_reports[("t", 0)].segments[0].mode == "tail"
    m.shutdown()


def test_corrupt_topic_metadata_is_refused(tmp_path, clock):
    with LogManager(tmp_path, LogConfig(), clock) as m:
        tid = m.create_topic("t", 1, {}).topic_id
    path = tmp_path / "__kafkito_topics" / f"{tid.hex}.meta"
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptMetadataError):
        LogManager(tmp_path, LogConfig(), clock).startup()
    # The failed start released the lock.
    path.write_bytes(bytes(data[:-3]) + bytes([data[-3] ^ 1]) + bytes(data[-2:]))
    with LogManager(tmp_path, LogConfig(), clock) as m:
        assert m.topic("t") is not None


def test_topic_config_table_round_trips():
    config = LogConfig()
    kafka = config.to_kafka()
    assert set(kafka) == set(TOPIC_CONFIGS)
    assert kafka["retention.ms"] == "604800000" and kafka["cleanup.policy"] == "delete"
    assert LogConfig.from_kafka(kafka) == config
    assert LogConfig.from_kafka({"min.cleanable.dirty.ratio": "0.2"}).min_cleanable_dirty_ratio == 0.2
    with pytest.raises(InvalidConfigError):
        LogConfig.from_kafka({"min.cleanable.dirty.ratio": "2"})
    with pytest.raises(InvalidConfigError):
        LogConfig.from_kafka({"message.timestamp.type": "Whenever"})


def test_flush_dirty_applies_flush_ms_and_retention_runs_for_every_log(tmp_path, clock):
    with LogManager(tmp_path, LogConfig(flush_ms=1000, file_delete_delay_ms=0), clock) as m:
        m.create_topic("a", 2, {"segment.bytes": "1024", "retention.ms": "5000"})
        for p in (0, 1):
            for i in range(20):
                m.log("a", p).append(payload(i, ts=clock.now_ms()), clock.now_ms())
        assert m.flush_dirty(clock.now_ms()) == 0  # younger than flush.ms
        clock.advance(1000)
        assert m.flush_dirty() == 2
        assert all(m.log("a", p).flushed_offset == 60 for p in (0, 1))
        assert m.flush_dirty() == 0  # nothing left to flush
        clock.advance(10_000)
        deleted = m.apply_retention()
        assert deleted >= 2 * 5
        assert all(m.log("a", p).log_start_offset == 60 for p in (0, 1))
