"""connections.max.idle.ms is watched by one task per connection, not a deadline per frame.

The watchdog may only close a connection that is waiting for the first byte of a frame
with nothing in flight: traffic below the idle time, a long poll in flight and a frame
that arrives in pieces must all keep the connection open.
"""

from __future__ import annotations

import struct
import time

import pytest
from e2e.raw import RawClient

from kafkito.protocol import ApiKey, encode_request
from kafkito.protocol.messages.api_versions import ApiVersionsRequest
from kafkito.protocol.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e

IDLE_MS = 400
VERSIONS = ApiVersionsRequest(client_software_name="t", client_software_version="1")


@pytest.fixture(scope="module")
def idle_broker(tmp_path_factory):
    with embedded_broker(tmp_path_factory.mktemp("idle"), settings={"connections.max.idle.ms": IDLE_MS}) as b:
        b.create_topic("idle")
        yield b


def test_requests_more_often_than_the_idle_time_keep_the_connection(idle_broker):
    raw = RawClient(idle_broker.host, idle_broker.port)
    started = time.monotonic()
    while time.monotonic() - started < 3 * IDLE_MS / 1000:
        raw.call(ApiKey.API_VERSIONS, 3, VERSIONS)
        time.sleep(IDLE_MS / 4000)
    raw.call(ApiKey.API_VERSIONS, 3, VERSIONS)  # still open
    started = time.monotonic()
    assert raw.closed_by_broker()
    assert IDLE_MS / 1000 * 0.75 < time.monotonic() - started < 5


def test_a_long_poll_in_flight_is_not_idle(idle_broker):
    raw = RawClient(idle_broker.host, idle_broker.port)
    wait_ms = 3 * IDLE_MS
    fetch = FetchRequest(replica_id=-1, max_wait_ms=wait_ms, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                         session_id=0, session_epoch=-1, topics=[FetchTopic(topic="idle", partitions=[
                             FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])])
    started = time.monotonic()
    raw.call(ApiKey.FETCH, 11, fetch)
    assert time.monotonic() - started > wait_ms / 1000 * 0.9
    raw.call(ApiKey.API_VERSIONS, 3, VERSIONS)


def test_a_frame_arriving_in_pieces_is_never_cut(idle_broker):
    raw = RawClient(idle_broker.host, idle_broker.port)
    frame = encode_request(ApiKey.API_VERSIONS, 3, 7, "t", VERSIONS)
    assert struct.unpack(">i", frame[:4])[0] == len(frame) - 4
    raw.sock.sendall(frame[:6])  # the size and part of the header, then a pause past the idle time
    time.sleep(2 * IDLE_MS / 1000)
    raw.sock.sendall(frame[6:])
    correlation_id, _ = raw.receive(ApiKey.API_VERSIONS, 3)
    assert correlation_id == 7
