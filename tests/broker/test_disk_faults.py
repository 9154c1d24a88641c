"""A failing fsync through a real broker (the FileIO seam wraps the real calls).

An fsync that fails is never an acknowledgement: acks=all gets KAFKA_STORAGE_ERROR, the
log goes offline (the kernel may have dropped the pages, so a retry could lie), the high
watermark does not move, and the shutdown says plainly that data could not be flushed
(exit 1 from the CLI, no traceback) and claims no clean shutdown, so the next start
recovers the log.
"""

from __future__ import annotations

import threading

import pytest
import trio
from e2e.clients import CONSUMERS
from e2e.raw import RawClient, list_offset
from faultio import FaultyIO

from kafkito.broker import cli
from kafkito.broker.server import Broker, BrokerShutdownError
from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkito.records import build_batch
from kafkito.storage.manager import CLEAN_SHUTDOWN_FILE
from kafkito.testing import broker as embedded_broker

LATEST = -1


def _produce(raw: RawClient, topic: str, value: bytes, acks: int = -1):
    request = ProduceRequest(acks=acks, timeout_ms=5000, topic_data=[TopicProduceData(
        name=topic, partition_data=[PartitionProduceData(
            index=0, records=build_batch([(b"k", value, [], 1_700_000_000_000)]))])])
    if acks == 0:
        raw.send(ApiKey.PRODUCE, 9, request)
        return None
    part = raw.call(ApiKey.PRODUCE, 9, request).responses[0].partition_responses[0]
    return part.error_code, part.base_offset


def _high_watermark(raw: RawClient, topic: str) -> int:
    error, offset = list_offset(raw, topic, 0, LATEST)
    assert error == ErrorCode.NONE
    return offset


def test_failed_fsync_is_never_acknowledged_and_shutdown_says_so(tmp_path):
    io = FaultyIO()
    with embedded_broker(tmp_path, io=io) as b:
        b.create_topic("t")
        raw = RawClient(b.host, b.port)
        assert _produce(raw, "t", b"acked") == (ErrorCode.NONE, 0)
        io.fail_fsync = True
        assert _produce(raw, "t", b"not durable") == (ErrorCode.KAFKA_STORAGE_ERROR, -1)
        io.fail_fsync = False  # a later fsync that "works" proves nothing: still refused
        assert _produce(raw, "t", b"offline") == (ErrorCode.KAFKA_STORAGE_ERROR, -1)
        assert _high_watermark(raw, "t") == 1  # nothing unflushed became visible
        assert [s.value for s in CONSUMERS["kafka-python"](b.bootstrap_servers, "t", 0, 0, 1)] == [b"acked"]
        raw.close()
    assert isinstance(b.error, BrokerShutdownError)
    assert "could not be flushed" in str(b.error) and "t-0" in str(b.error)
    assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()  # the next start verifies the log

    with embedded_broker(tmp_path) as b:
        raw = RawClient(b.host, b.port)
        # Recovery keeps what is valid on disk: the acked record, and here also the one
        # whose fsync "failed" (the injected fault left the pages intact), never "offline".
        end = _high_watermark(raw, "t")
        seen = CONSUMERS["kafka-python"](b.bootstrap_servers, "t", 0, 0, end)
        assert [s.value for s in seen] in ([b"acked"], [b"acked", b"not durable"])
        assert _produce(raw, "t", b"again") == (ErrorCode.NONE, end)  # reopened: online again
        raw.close()
    assert b.error is None


def test_cli_exits_1_with_a_message_when_data_could_not_be_flushed(tmp_path, monkeypatch, capsys):
    """The CLI's own path (signals, trio.run, exit status), in this process so the fault
    hook reaches the broker."""
    io = FaultyIO()
    made: list[Broker] = []

    def make_broker(config):
        made.append(Broker(config, io=io))
        return made[-1]

    monkeypatch.setattr(cli, "Broker", make_broker)

    def drive():
        import time

        deadline = time.monotonic() + 20
        while not (made and made[0].address) and time.monotonic() < deadline:
            time.sleep(0.02)
        broker = made[0]
        try:
            trio.from_thread.run_sync(broker.state.logs.create_topic, "t", 1, {},
                                      trio_token=broker.trio_token)
            raw = RawClient(*broker.address)
            outcomes.append(_produce(raw, "t", b"acked")[0])
            io.fail_fsync = True
            outcomes.append(_produce(raw, "t", b"lost")[0])
            raw.close()
        finally:
            broker.request_stop()

    outcomes: list[int] = []
    thread = threading.Thread(target=drive)
    thread.start()
    code = cli.main(["serve", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
                     "--http", "off"])
    thread.join()
    err = capsys.readouterr().err
    assert outcomes == [ErrorCode.NONE, ErrorCode.KAFKA_STORAGE_ERROR]
    assert code == 1
    assert "kafkito: shutdown incomplete: data of 1 log(s) could not be flushed" in err
    assert "t-0" in err and "Traceback" not in err


@pytest.mark.parametrize("when", ["seal", "marker"])
def test_shutdown_skips_derived_writes_on_a_full_disk(tmp_path, when):
    """No data at stake: the broker stops without an error; a skipped index only costs the
    next start a rebuild, a skipped marker a full verification."""
    io = FaultyIO()
    with embedded_broker(tmp_path, io=io, settings={"log.index.interval.bytes": "1000000"}) as b:
        b.create_topic("t")
        raw = RawClient(b.host, b.port)
        for i in range(3):
            assert _produce(raw, "t", b"v%d" % i) == (ErrorCode.NONE, i)
        raw.close()
        if when == "seal":
            io.fail_paths = (".timeindex", ".timeindex.rebuild")
        else:
            io.fail_paths = (CLEAN_SHUTDOWN_FILE + ".tmp",)
    assert b.error is None
    assert (tmp_path / CLEAN_SHUTDOWN_FILE).exists() == (when == "seal")
    with embedded_broker(tmp_path) as b:
        seen = CONSUMERS["kafka-python"](b.bootstrap_servers, "t", 0, 0, 3)
        assert [s.value for s in seen] == [b"v0", b"v1", b"v2"]
        report = b.broker.state.logs.recovery_reports[("t", 0)]
        assert report.clean_shutdown == (when == "seal")
        assert report.segments[-1].index_rebuilt == (when == "seal")
