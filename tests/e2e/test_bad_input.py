"""Bad input closes the offending connection (or answers it) and nobody else notices."""

from __future__ import annotations

import socket
import struct
import types

import pytest
import trio
from e2e.clients import CONSUMERS, PRODUCERS, Msg
from e2e.raw import RawClient

from kafkito.broker.context import Deferred
from kafkito.protocol import ApiKey
from kafkito.protocol.messages.api_versions import ApiVersionsRequest
from kafkito.protocol.messages.describe_cluster import DescribeClusterRequest

pytestmark = pytest.mark.e2e


def _connect(kbroker) -> socket.socket:
    s = socket.create_connection((kbroker.host, kbroker.port), timeout=5)
    return s


def _closed_by_broker(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def _request(api_key: int, version: int, correlation_id: int, body: bytes = b"", client_id=b"bad") -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


@pytest.fixture
def working_client(kbroker, topic_name):
    """A client that keeps producing and consuming while others misbehave."""
    kbroker.create_topic(topic_name)
    count = [0]

    def check():
        value = f"still-ok-{count[0]}".encode()
        offsets = PRODUCERS["confluent"](kbroker.bootstrap_servers, topic_name, [Msg(b"k", value)])
        seen = CONSUMERS["kafka-python"](kbroker.bootstrap_servers, topic_name, 0, offsets[0], 1)
        assert [s.value for s in seen] == [value]
        count[0] += 1

    check()
    return check


def test_garbage_frame_closes_connection(kbroker, working_client):
    s = _connect(kbroker)
    s.sendall(struct.pack(">i", 12) + b"\xff" * 12)
    assert _closed_by_broker(s)
    working_client()


def test_two_gigabyte_frame_is_refused_before_reading(kbroker, working_client):
    s = _connect(kbroker)
    s.sendall(struct.pack(">i", 2**31 - 1) + b"x" * 100)
    assert _closed_by_broker(s)
    working_client()


def test_negative_frame_size(kbroker, working_client):
    s = _connect(kbroker)
    s.sendall(struct.pack(">i", -5))
    assert _closed_by_broker(s)
    working_client()


def test_unknown_api_key_closes_connection(kbroker, working_client):
    s = _connect(kbroker)
    s.sendall(_request(9999, 0, 7))
    assert _closed_by_broker(s)
    working_client()


def test_unsupported_version_of_served_api_closes_connection(kbroker, working_client):
    s = _connect(kbroker)
    s.sendall(_request(3, 99, 8))  # Metadata v99
    assert _closed_by_broker(s)
    working_client()


def test_future_api_versions_gets_v0_fallback(kbroker, working_client):
    s = _connect(kbroker)
    s.sendall(_request(18, 99, 42, body=b"\x00\x01\x02"))
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    body = s.recv(size, socket.MSG_WAITALL)
    correlation_id, error_code, count = struct.unpack(">ihi", body[:10])
    assert correlation_id == 42
    assert error_code == 35  # UNSUPPORTED_VERSION
    ranges = {k: (lo, hi) for k, lo, hi in struct.iter_unpack(">hhh", body[10:10 + 6 * count])}
    assert ranges[18] == (0, 4)
    assert ranges[0][0] == 0 and ranges[1][0] == 4
    # The connection stays usable: a v0 request now succeeds.
    s.sendall(_request(18, 0, 43))
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    body = s.recv(size, socket.MSG_WAITALL)
    assert struct.unpack(">ih", body[:6]) == (43, 0)
    working_client()


def test_truncated_body_closes_connection(kbroker, working_client):
    s = _connect(kbroker)
    # A Metadata v1 request whose topic array claims 1000 entries that are not there.
    s.sendall(_request(3, 1, 9, body=struct.pack(">i", 1000)))
    assert _closed_by_broker(s)
    working_client()


def test_client_vanishing_mid_request_costs_nothing(kbroker, working_client):
    s = _connect(kbroker)
    s.sendall(struct.pack(">i", 1000) + b"\x00\x03")  # promise 1000 bytes, send 2, leave
    s.close()
    working_client()


def test_connection_reset_by_client_does_not_stop_the_broker(kbroker, working_client):
    """Regression: an RST from a client used to escape the connection task and stop serving."""
    for _ in range(3):
        s = _connect(kbroker)
        s.sendall(_request(18, 0, 1))  # a request whose answer the client will never read
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # linger 0: the kernel sends RST
    working_client()


@pytest.mark.parametrize("where", ["inline", "deferred"])
def test_a_failing_handler_costs_only_its_connection(kbroker, working_client, where):
    """A handler bug, whether in its in-order part or in the wait it deferred: the answers
    before it still arrive, its connection is closed, everyone else is served."""

    async def failing(ctx, request):
        if where == "inline":
            raise RuntimeError("a handler bug, on purpose")

        async def wait():
            await trio.sleep(0.05)
            raise RuntimeError("a handler bug in a deferred wait, on purpose")

        return Deferred(wait)

    handlers = kbroker.broker.state.handlers
    real = handlers[ApiKey.DESCRIBE_CLUSTER]
    handlers[ApiKey.DESCRIBE_CLUSTER] = types.SimpleNamespace(
        MIN_VERSION=real.MIN_VERSION, MAX_VERSION=real.MAX_VERSION, handle=failing)
    try:
        raw = RawClient(kbroker.host, kbroker.port)
        versions = ApiVersionsRequest(client_software_name="t", client_software_version="1")
        first = raw.send(ApiKey.API_VERSIONS, 3, versions)
        raw.send(ApiKey.DESCRIBE_CLUSTER, 0, DescribeClusterRequest())
        raw.send(ApiKey.API_VERSIONS, 3, versions)
        assert raw.receive(ApiKey.API_VERSIONS, 3)[0] == first
        assert raw.closed_by_broker()
    finally:
        handlers[ApiKey.DESCRIBE_CLUSTER] = real
    working_client()
    assert RawClient(kbroker.host, kbroker.port).call(
        ApiKey.DESCRIBE_CLUSTER, 0, DescribeClusterRequest()).error_code == 0
