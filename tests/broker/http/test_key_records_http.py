"""The HTTP listener and GET /v1/topics/{topic}/keys/{key}/records, against a real broker
fed by confluent-kafka (murmur2 partitioning, as the Java client)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from urllib.parse import quote

import msgspec
import pytest

from kafkito.records.jsonview import encode_bytes, record_from_json, record_to_json
from kafkito.records.batch import Record
from kafkito.testing import broker as embedded_broker

from e2e.clients import Msg, confluent_consume

T0 = 1_700_000_000_000
SESSIONS = [f"session-{i}" for i in range(12)]


@pytest.fixture(scope="module")
def hbroker(tmp_path_factory):
    with embedded_broker(tmp_path_factory.mktemp("http"),
                         settings={"http.listeners": "127.0.0.1:0"}) as running:
        yield running


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def produce(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                  "partitioner": "murmur2_random"})
    for i in range(n):
        key = SESSIONS[(i * 7) % len(SESSIONS)].encode()
        value = json.dumps({"event_type": "tool_call", "i": i}).encode() if i % 5 else b"\xff\x00raw"
        p.produce(topic, key=key, value=value, headers=[("traceparent", b"00-abc-01")],
                  timestamp=T0 + i)
    assert p.flush(30) == 0


def scan_answer(bootstrap: str, topic: str, partitions: int, key: bytes, counts: dict) -> list[dict]:
    out = []
    for p in range(partitions):
        for m in confluent_consume(bootstrap, topic, p, 0, counts[p]):
            if m.key == key:
                out.append(record_to_json(p, Record(m.offset, m.timestamp_ms, m.key, m.value,
                                                    m.headers)))
    return out


def test_http_answer_equals_the_scan_answer_byte_for_byte(hbroker):
    topic = "http-keys"
    hbroker.create_topic(topic, 3, {"key.index.enable": "true", "segment.bytes": "4096"})
    produce(hbroker.bootstrap_servers, topic, 300)
    plogs = [hbroker.broker.state.logs.log(topic, p) for p in range(3)]
    counts = {p: plogs[p].flushed_offset for p in range(3)}
    assert sum(counts.values()) == 300 and all(counts.values())
    for session in SESSIONS[:4]:
        key = session.encode()
        want = scan_answer(hbroker.bootstrap_servers, topic, 3, key, counts)
        assert want
        status, body = get(f"{hbroker.http_url}/v1/topics/{topic}/keys/{session}/records")
        assert status == 200, body
        expected = msgspec.json.encode({"topic": topic, "key": encode_bytes(key), "records": want})
        got = json.loads(body)
        assert got.pop("batches_read") >= 1
        assert msgspec.json.encode(got) == expected
        # last=N: the newest N in log order; a record decodes back to the produced bytes.
        status, body = get(f"{hbroker.http_url}/v1/topics/{topic}/keys/{session}/records?last=3")
        assert json.loads(body)["records"] == want[-3:]
        raw = [record_from_json(r)[1].value for r in want]
        assert b"\xff\x00raw" in raw or all(v.startswith(b"{") for v in raw)
        # a time window, in epoch ms and ISO-8601
        lo, hi = want[1]["timestamp"], want[-2]["timestamp"]
        for frm in (str(lo), quote("2023-11-14T22:13:20+00:00")):
            status, body = get(f"{hbroker.http_url}/v1/topics/{topic}/keys/{session}/records"
                               f"?from={frm}&to={hi}")
            expect = [r for r in want if (lo if frm == str(lo) else T0) <= r["timestamp"] <= hi]
            assert json.loads(body)["records"] == expect


@pytest.mark.parametrize("path,status,code", [
    ("/v1/topics/nope/keys/k/records", 404, "UNKNOWN_TOPIC_OR_PARTITION"),
    ("/v1/topics/http-bad/keys/k/records?last=0", 400, "INVALID_REQUEST"),
    ("/v1/topics/http-bad/keys/k/records?last=x", 400, "INVALID_REQUEST"),
    ("/v1/topics/http-bad/keys/k/records?from=yesterday", 400, "INVALID_REQUEST"),
    ("/v1/topics/http-bad/keys/k/records?from=5&to=4", 400, "INVALID_REQUEST"),
    ("/v1/topics/http-bad/keys/k/records?lst=4", 400, "INVALID_REQUEST"),
    ("/v1/topics/http-bad/keys/k/records?partition=9", 404, "UNKNOWN_TOPIC_OR_PARTITION"),
    ("/v1/topics/http-plain/keys/k/records", 409, "KEY_INDEX_NOT_ENABLED"),
    ("/v1/nothing", 404, "NOT_FOUND"),
])
def test_bad_requests_get_clear_json_errors(hbroker, path, status, code):
    state = hbroker.broker.state
    for name, configs in (("http-bad", {"key.index.enable": "true"}), ("http-plain", {})):
        if state.logs.topic(name) is None:
            hbroker.create_topic(name, 1, configs)
    got_status, body = get(hbroker.http_url + path)
    assert got_status == status
    answer = json.loads(body)
    assert answer["error"] == code and answer["message"]


def test_wrong_method_and_malformed_http(hbroker):
    req = urllib.request.Request(hbroker.http_url + "/v1/topics/t/keys/k/records", method="POST",
                                 data=b"x")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("POST accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 405 and e.headers["allow"] == "GET"
    host, port = hbroker.broker.http_address
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert s.recv(1000).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection((host, port), timeout=10) as s:  # an oversized head: 431
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 40_000 + b"\r\n\r\n")
        assert s.recv(1000).startswith(b"HTTP/1.1 431 ")


def test_embedded_brokers_keep_http_off_by_default(tmp_path):
    with embedded_broker(tmp_path) as b:
        assert b.http_url is None


def test_http_port_in_use_is_one_clear_line(tmp_path):
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "kafkito.broker.cli", "serve", "--data-dir",
                                 str(tmp_path), "--listen", "127.0.0.1:0", "--http", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"cannot listen for HTTP on 127.0.0.1:{port}: address already in use" in result.stderr
    assert "Traceback" not in result.stderr
