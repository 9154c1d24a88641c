"""Acknowledged writes survive a clean stop and a kill -9 of `kafkito serve`."""

from __future__ import annotations

import signal
import time

import pytest
from e2e.clients import CONSUMERS, PRODUCERS, Msg
from e2e.serve import ServeProcess

from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e


def _messages(n: int, tag: str) -> list[Msg]:
    return [Msg(f"k{i}".encode(), f"{tag}-{i}".encode() * 20, [("n", str(i).encode())]) for i in range(n)]


def test_clean_restart_keeps_every_message(tmp_path):
    sent = _messages(200, "clean")
    with embedded_broker(tmp_path) as b:
        b.create_topic("durable", partitions=2)
        offsets = PRODUCERS["confluent"](b.bootstrap_servers, "durable", sent, acks="all")
        assert offsets == list(range(200))
    assert (tmp_path / "durable-0").is_dir()
    with embedded_broker(tmp_path) as b:
        seen = CONSUMERS["aiokafka"](b.bootstrap_servers, "durable", 0, 0, 200)
        assert [s.value for s in seen] == [m.value for m in sent]
        # Appends continue where the log ended.
        assert PRODUCERS["kafka-python"](b.bootstrap_servers, "durable", [Msg(b"k", b"after")]) == [200]


def test_kill_minus_nine_loses_no_acknowledged_write(tmp_path):
    data = tmp_path / "data"
    serve = ServeProcess(data)
    try:
        sent = _messages(300, "kill9")
        offsets = PRODUCERS["confluent"](serve.bootstrap, "survivor", sent, acks="all")
        assert offsets == list(range(300))
    finally:
        serve.stop(signal.SIGKILL)
    serve = ServeProcess(data)
    try:
        seen = CONSUMERS["confluent"](serve.bootstrap, "survivor", 0, 0, 300)
        assert [s.value for s in seen] == [m.value for m in sent]
        assert [s.headers for s in seen] == [m.headers for m in sent]
    finally:
        assert serve.stop() == 0
    # The restart noticed the crash and verified the logs instead of trusting them.
    assert "unclean shutdown" in serve.log.read_text()


def test_sigterm_shuts_down_cleanly(tmp_path):
    serve = ServeProcess(tmp_path / "data")
    PRODUCERS["kafka-python"](serve.bootstrap, "t", [Msg(b"k", b"v")])
    assert serve.stop(signal.SIGTERM) == 0
    text = serve.log.read_text()
    assert "shutting down" in text and "stopped" in text


def test_kill_minus_nine_mid_stream_keeps_every_acknowledged_write(tmp_path):
    """kill -9 while an acks=all producer is streaming: every acknowledged message is
    there after restart, in order, and nothing unacknowledged shows up corrupted."""
    import threading

    from confluent_kafka import Producer

    data = tmp_path / "data"
    acked: list[tuple[int, bytes]] = []
    for round_ in range(3):
        serve = ServeProcess(data)
        producer = Producer({"bootstrap.servers": serve.bootstrap, "acks": "all", "linger.ms": 1,
                             "message.timeout.ms": 3000, "retries": 0})
        stop = threading.Event()

        def on_delivery(err, msg):
            if err is None:
                acked.append((msg.offset(), msg.value()))

        def stream():
            i = 0
            while not stop.is_set():
                try:
                    producer.produce("stream", value=b"r%d-%06d" % (round_, i), on_delivery=on_delivery)
                    i += 1
                except BufferError:
                    pass
                producer.poll(0.001)

        thread = threading.Thread(target=stream)
        thread.start()
        deadline = time.monotonic() + 10
        while len(acked) < (round_ + 1) * 500 and time.monotonic() < deadline:
            time.sleep(0.01)
        serve.stop(signal.SIGKILL)  # mid-stream: requests in flight, batches half-written
        stop.set()
        thread.join()
        producer.flush(5)  # the rest fail: the broker is gone
    serve = ServeProcess(data)
    try:
        expected = sorted(acked)
        seen = CONSUMERS["confluent"](serve.bootstrap, "stream", 0, 0, expected[-1][0] + 1)
        by_offset = {s.offset: s.value for s in seen}
        for offset, value in expected:
            assert by_offset.get(offset) == value, f"acknowledged offset {offset} lost or changed"
        assert [s.offset for s in seen] == list(range(len(seen)))  # dense: nothing torn in between
    finally:
        serve.stop()
