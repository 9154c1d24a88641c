"""The key index across a kill -9 of `kafkito serve`: after the restart the HTTP answer for
every session equals a scan of its partition by confluent-kafka, byte for byte."""

from __future__ import annotations

import json
import signal
import urllib.request

import msgspec
import pytest

from kafkito.records.batch import Record
from kafkito.records.jsonview import encode_bytes, record_to_json

from e2e.clients import confluent_consume
from e2e.serve import ServeProcess, free_port

pytestmark = pytest.mark.e2e

TOPIC = "killed-index"
SESSIONS = [f"s-{i}" for i in range(25)]


def produce(bootstrap: str, start: int, n: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                  "partitioner": "murmur2_random", "enable.idempotence": True})
    for i in range(start, start + n):
        sid = SESSIONS[(i * 11) % len(SESSIONS)]
        p.produce(TOPIC, key=sid.encode(), value=json.dumps({"event_type": "tool_call", "i": i}).encode(),
                  headers=[("traceparent", b"00-1-2-01")])
    assert p.flush(30) == 0


def answers_match(serve: ServeProcess, http: str) -> int:
    ends = {}
    for p in range(2):
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": serve.bootstrap, "group.id": "x"})
        ends[p] = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
        c.close()
    records = {p: confluent_consume(serve.bootstrap, TOPIC, p, 0, ends[p]) for p in range(2)}
    assert sum(len(r) for r in records.values()) == sum(ends.values())
    checked = 0
    for sid in SESSIONS:
        key = sid.encode()
        want = [record_to_json(p, Record(m.offset, m.timestamp_ms, m.key, m.value, m.headers))
                for p in range(2) for m in records[p] if m.key == key]
        with urllib.request.urlopen(f"{http}/v1/topics/{TOPIC}/keys/{sid}/records", timeout=10) as r:
            got = json.loads(r.read())
        got.pop("batches_read")
        assert msgspec.json.encode(got) == msgspec.json.encode(
            {"topic": TOPIC, "key": encode_bytes(key), "records": want}), sid
        checked += len(want)
    return checked


def test_index_answers_equal_the_scan_after_kill_9(tmp_path):
    from confluent_kafka.admin import AdminClient, NewTopic

    data = tmp_path / "data"
    hport = free_port()
    settings = {"http.listeners": f"127.0.0.1:{hport}", "log.segment.bytes": "8000"}
    http = f"http://127.0.0.1:{hport}"
    with ServeProcess(data, settings, log_dir=tmp_path) as serve:
        admin = AdminClient({"bootstrap.servers": serve.bootstrap})
        futures = admin.create_topics([NewTopic(TOPIC, 2, 1, config={"key.index.enable": "true"})])
        futures[TOPIC].result(10)
        produce(serve.bootstrap, 0, 200)
        assert answers_match(serve, http) == 200
        produce(serve.bootstrap, 200, 150)
        serve.stop(signal.SIGKILL)  # the active segments' index was only in memory
    hport = free_port()
    settings["http.listeners"] = f"127.0.0.1:{hport}"
    http = f"http://127.0.0.1:{hport}"
    with ServeProcess(data, settings, log_dir=tmp_path) as serve:
        assert "key index of segment" in serve.log.read_text()  # recovery rebuilt the lost part
        assert answers_match(serve, http) == 350
        produce(serve.bootstrap, 350, 50)
        assert answers_match(serve, http) == 400
        assert serve.stop() == 0
    with ServeProcess(data, settings, log_dir=tmp_path) as serve:  # a clean restart: sidecars read
        assert "key index of segment" not in serve.log.read_text()
        assert answers_match(serve, http) == 400
