"""Golden frames from real clients: decoding then re-encoding gives the same bytes.

The frames in data/golden_*.json were sent by confluent-kafka (librdkafka), kafka-python
and aiokafka to the capture listener (capture.py; regenerate with
``python -m tests.protocol.capture_clients``). Each file names the client version.
"""

from __future__ import annotations

import json
import os
import struct

import pytest

from kafkito.protocol import decode_request, encode_request

DATA = os.path.join(os.path.dirname(__file__), "data")
FILES = sorted(f for f in os.listdir(DATA) if f.startswith("golden_") and f.endswith(".json"))


def _load(name: str) -> dict:
    with open(os.path.join(DATA, name)) as f:
        return json.load(f)


FRAMES = [
    pytest.param(bytes.fromhex(fr["hex"]), id=f"{d['client']}-{fr['api_name']}-v{fr['api_version']}-{i}")
    for name in FILES
    for d in [_load(name)]
    for i, fr in enumerate(d["frames"])
]


@pytest.mark.parametrize("frame", FRAMES)
def test_golden_frame_round_trips(frame):
    header, body = decode_request(frame)
    again = encode_request(header.api_key, header.api_version, header.correlation_id, header.client_id, body)
    assert again == struct.pack(">i", len(frame)) + frame


@pytest.mark.parametrize("name", FILES)
def test_capture_saw_no_undecodable_frames(name):
    data = _load(name)
    assert data["client_version"] and data["frames"]
    assert data["decode_errors"] == []


# What the README (shared/compat) says each client negotiates; the capture confirms it.
EXPECTED = {
    "aiokafka": {("ApiVersions", 0), ("Produce", 7), ("Fetch", 11), ("Metadata", 5), ("ListOffsets", 3),
                 ("OffsetFetch", 3), ("JoinGroup", 5), ("InitProducerId", 0), ("AddPartitionsToTxn", 0),
                 ("EndTxn", 0), ("AlterConfigs", 1)},
    "kafka-python": {("ApiVersions", 4), ("Produce", 9), ("Fetch", 12)},
    "confluent-kafka": {("ApiVersions", 3), ("Produce", 10), ("Fetch", 16), ("InitProducerId", 4)},
}


@pytest.mark.parametrize("name", FILES)
def test_capture_covers_the_versions_clients_are_known_to_send(name):
    data = _load(name)
    seen = {(fr["api_name"], fr["api_version"]) for fr in data["frames"]}
    assert EXPECTED[data["client"]] <= seen


@pytest.mark.parametrize("name", FILES)
def test_produce_frames_carry_the_record_batch(name):
    for fr in _load(name)["frames"]:
        if fr["api_name"] != "Produce":
            continue
        _, req = decode_request(bytes.fromhex(fr["hex"]))
        (topic,) = req.topic_data
        assert topic.name == "golden"
        records = topic.partition_data[0].records
        assert isinstance(records, memoryview) and records[16] == 2  # magic byte of batch v2


@pytest.mark.e2e
def test_live_capture_kafka_python_producer():
    """The capture path itself still works (a real client, our encoder answering)."""
    pytest.importorskip("kafka")
    from .capture import CaptureBroker
    from .capture_clients import kp_producer

    with CaptureBroker() as broker:
        kp_producer(broker.bootstrap)
        seen = {(k, v) for k, v, _ in broker.frames}
    assert {(18, 4), (3, 13), (0, 9)} <= seen and not broker.errors
