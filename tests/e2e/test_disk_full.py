"""A broker whose disk fills up (issue 10, finding 7), on a real tmpfs that really fills.

Shutdown on the full disk exits 0 without a traceback; a restart on the still-full disk
starts, serves every acknowledged record and committed offset, and refuses writes with
KAFKA_STORAGE_ERROR (commits with NOT_COORDINATOR, Kafka's answer for a group write that
hit a storage error); once space is freed, writes work again without a restart, and
nothing acknowledged is ever lost.
"""

from __future__ import annotations

import signal

import pytest
from e2e.clients import CONSUMERS, PRODUCERS, Msg
from e2e.raw import RawClient, commit_offset, committed_offset, list_offset
from e2e.serve import ServeProcess

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.init_producer_id import InitProducerIdRequest
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkito.records import build_batch

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOPIC = "full"
# No index entries while appending: the time index of every active segment stays empty,
# so sealing it at shutdown needs a fresh page, which is exactly what a full disk refuses.
SETTINGS = {"log.index.interval.bytes": str(64 * 1024 * 1024)}


def _raw(serve: ServeProcess) -> RawClient:
    return RawClient("127.0.0.1", serve.port)


def _produce_until_refused(serve: ServeProcess, start: int, attempts: int = 20):
    """Produce 2 KB records (acks=all) until the broker refuses one; returns the acked
    (offset, value) pairs and the refusal (error code, message)."""
    raw = _raw(serve)
    acked = []
    try:
        for i in range(start, start + attempts):
            value = b"%06d" % i + b"x" * 2048
            request = ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[TopicProduceData(
                name=TOPIC, partition_data=[PartitionProduceData(
                    index=0, records=build_batch([(b"k", value, [], 1_700_000_000_000)]))])])
            part = raw.call(ApiKey.PRODUCE, 9, request).responses[0].partition_responses[0]
            if part.error_code != ErrorCode.NONE:
                return acked, (part.error_code, part.error_message)
            acked.append((part.base_offset, value))
    finally:
        raw.close()
    raise AssertionError(f"{attempts} produces of 2 KB all succeeded on a full disk")


def _commit(raw: RawClient, group: str, offset: int) -> int:
    return commit_offset(raw, group, TOPIC, 0, offset)


def _committed(serve: ServeProcess, group: str) -> int:
    raw = _raw(serve)
    try:
        error, offset = committed_offset(raw, group, TOPIC, 0)
        assert error == ErrorCode.NONE
        return offset
    finally:
        raw.close()


def _init_producer_id(serve: ServeProcess) -> tuple[int, int]:
    raw = _raw(serve)
    try:
        r = raw.call(ApiKey.INIT_PRODUCER_ID, 4, InitProducerIdRequest(transaction_timeout_ms=60000))
        return r.error_code, r.producer_id
    finally:
        raw.close()


def _read_all(serve: ServeProcess, count: int) -> list[tuple[int, bytes]]:
    seen = CONSUMERS["confluent"](serve.bootstrap, TOPIC, 0, 0, count)
    return [(s.offset, s.value) for s in seen]


def _stop_cleanly(serve: ServeProcess) -> str:
    code = serve.stop(signal.SIGTERM)
    text = serve.log.read_text()
    assert "Traceback" not in text, text
    assert code == 0, text
    return text


def _produce_acked(serve: ServeProcess, n: int, size: int) -> list[tuple[int, bytes]]:
    sent = [Msg(b"k%d" % i, b"%06d" % i + b"v" * size) for i in range(n)]
    acked = list(zip(PRODUCERS["confluent"](serve.bootstrap, TOPIC, sent, acks="all"),
                     (m.value for m in sent)))
    assert [o for o, _ in acked] == list(range(n))
    return acked


def test_shutdown_and_restart_on_a_full_disk_finding_7(small_tmpfs, tmp_path):
    disk = small_tmpfs(2 * 1024 * 1024)
    data = disk.path / "data"
    serve = ServeProcess(data, SETTINGS, log_dir=tmp_path)
    try:
        acked = _produce_acked(serve, 100, 200)
        raw = _raw(serve)
        assert _commit(raw, "reader", 42) == ErrorCode.NONE

        disk.fill()
        more, (code, message) = _produce_until_refused(serve, 100)
        assert code == ErrorCode.KAFKA_STORAGE_ERROR and "No space left" in message, message
        acked += more
        # Commits fill the last page of the offsets log, then are refused as Kafka refuses a
        # group write that hit a storage error: NOT_COORDINATOR (the client looks it up again).
        errors = [_commit(raw, "writer", n) for n in range(1, 200)]
        refused = errors.index(ErrorCode.NOT_COORDINATOR)
        assert set(errors[:refused]) == {ErrorCode.NONE}
        acked_commit = refused if refused else None  # commit n went in at index n - 1
        raw.close()
    finally:
        text = _stop_cleanly(serve)
    assert "No space left on device" in text  # the skipped seal is reported, not raised

    # Restart on the still-full disk: it starts, serves reads, refuses writes.
    serve = ServeProcess(data, SETTINGS, log_dir=tmp_path)
    try:
        assert _read_all(serve, len(acked)) == acked
        raw = _raw(serve)
        assert list_offset(raw, TOPIC, 0, -2) == (ErrorCode.NONE, 0)
        assert list_offset(raw, TOPIC, 0, -1) == (ErrorCode.NONE, len(acked))
        raw.close()
        assert _committed(serve, "reader") == 42
        if acked_commit is not None:
            assert _committed(serve, "writer") == acked_commit
        refused_acked, (code, _message) = _produce_until_refused(serve, 1000)
        assert code == ErrorCode.KAFKA_STORAGE_ERROR
        acked += refused_acked
        # A new producer id needs its block recorded first: refused with the error clients
        # retry, never handed out unrecorded (a restart could hand it out again).
        assert _init_producer_id(serve)[0] == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS

        disk.make_room()  # no restart: the next writes succeed
        after = [Msg(b"k", b"after-%d" % i) for i in range(5)]
        offsets = PRODUCERS["confluent"](serve.bootstrap, TOPIC, after, acks="all")
        assert offsets == list(range(len(acked), len(acked) + 5))
        acked += list(zip(offsets, (m.value for m in after)))
        raw = _raw(serve)
        assert _commit(raw, "reader", 77) == ErrorCode.NONE
        raw.close()
        code, producer_id = _init_producer_id(serve)
        assert code == ErrorCode.NONE and producer_id >= 0
    finally:
        text = _stop_cleanly(serve)
    assert "kept in memory" in text  # recovery could not rewrite an index: it served anyway

    serve = ServeProcess(data, SETTINGS, log_dir=tmp_path)
    try:
        assert _read_all(serve, len(acked)) == acked
        assert _committed(serve, "reader") == 77
    finally:
        _stop_cleanly(serve)


def test_restart_after_a_crash_on_a_full_disk(small_tmpfs, tmp_path):
    """kill -9 while the disk is full, then a restart on it: recovery verifies every
    segment and rebuilds every index in memory where it cannot write them, and serves."""
    disk = small_tmpfs(2 * 1024 * 1024)
    data = disk.path / "data"
    serve = ServeProcess(data, SETTINGS, log_dir=tmp_path)
    try:
        acked = _produce_acked(serve, 200, 500)
        disk.fill()
        more, (code, _message) = _produce_until_refused(serve, 200)
        assert code == ErrorCode.KAFKA_STORAGE_ERROR
        acked += more
    finally:
        serve.stop(signal.SIGKILL)
    serve = ServeProcess(data, SETTINGS, log_dir=tmp_path)
    try:
        assert _read_all(serve, len(acked)) == acked
        assert _produce_until_refused(serve, 2000)[1][0] == ErrorCode.KAFKA_STORAGE_ERROR
    finally:
        text = _stop_cleanly(serve)
    assert "unclean shutdown" in text and "kept in memory" in text
