"""A broker ``Connection`` over in-memory trio streams (``StreamTransport``), no socket.

The connection speaks through the sans-IO frame reader and a transport; these tests run
it over ``trio.testing.memory_stream_pair`` with the client-side state machine
(``ClientFraming``) at the other end: ApiVersions, Metadata, and a Produce whose records
a Fetch then reads back (a file region the stream transport copies, since a stream
cannot take sendfile); the same over TLS (``trio.SSLStream``); and the limits and
deadlines the connection keeps whatever its transport.
"""

from __future__ import annotations

import ssl
import struct

import pytest
import trio
import trio.testing

from kafkito.broker.connection import Connection
from kafkito.broker.request_pool import RequestMemoryPool
from kafkito.broker.transport import StreamTransport
from kafkito.protocol import CLOSED, NEED_DATA, ApiKey, ClientFraming, FileRegion, RecordsRef, Response
from kafkito.protocol.messages.api_versions import ApiVersionsRequest
from kafkito.protocol.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from kafkito.protocol.messages.metadata import MetadataRequest
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkito.records import build_batch

VERSIONS = ApiVersionsRequest(client_software_name="memory", client_software_version="1")


class _Client:
    """ClientFraming on a trio stream: the whole of a client's framing, no library."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.framing = ClientFraming("memory-client")

    async def send(self, api_key: int, version: int, body) -> int:
        correlation_id, frame = self.framing.send_request(api_key, version, body)
        await self.stream.send_all(frame)
        return correlation_id

    async def receive(self):
        """The next Response, or CLOSED when the broker closed the stream."""
        while True:
            event = self.framing.next_event()
            if event is not NEED_DATA:
                return event
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            self.framing.receive_data(data)

    async def call(self, api_key: int, version: int, body):
        correlation_id = await self.send(api_key, version, body)
        response = await self.receive()
        assert isinstance(response, Response) and response.correlation_id == correlation_id
        return response.body


def _with_pool(state):
    config = state.config
    state.request_pool = RequestMemoryPool(config.queued_max_request_bytes, config.queued_max_request_bytes_per_connection)
    state.request_pool_lot = trio.lowlevel.ParkingLot()
    return state


async def _plain(stream):
    return stream


def _serve(state, client_side, server_wrap=_plain, client_wrap=_plain):
    """Run ``client_side(client, conn)`` against a Connection over a memory stream pair,
    each end wrapped (e.g. in TLS) by its ``*_wrap``."""

    async def main():
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                state.partitions.attach(nursery)
                client_stream, server_stream = trio.testing.memory_stream_pair()
                server_stream = await server_wrap(server_stream)
                conn = Connection(StreamTransport(server_stream, peer="memory"), state)
                nursery.start_soon(conn.run)
                client_stream = await client_wrap(client_stream)
                await client_side(_Client(client_stream), conn)
                nursery.cancel_scope.cancel()

    trio.run(main)


def _produce(topic: str, records: bytes) -> ProduceRequest:
    return ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[
        TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=0, records=records)])])


def _fetch(topic: str, offset: int) -> FetchRequest:
    return FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                        session_id=0, session_epoch=-1, topics=[FetchTopic(topic=topic, partitions=[
                            FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)])])


async def _round_trip(client: _Client, conn) -> None:
    versions = await client.call(ApiKey.API_VERSIONS, 3, VERSIONS)
    assert versions.error_code == 0 and ApiKey.PRODUCE in {k.api_key for k in versions.api_keys}
    metadata = await client.call(ApiKey.METADATA, 12, MetadataRequest(topics=None, allow_auto_topic_creation=False))
    assert [t.name for t in metadata.topics] == ["memory"]
    batch = build_batch([(b"k", b"over a memory stream " * 50, [], 1_700_000_000_000)])
    produced = (await client.call(ApiKey.PRODUCE, 9, _produce("memory", batch))).responses[0].partition_responses[0]
    assert (produced.error_code, produced.base_offset) == (0, 0)
    fetched = (await client.call(ApiKey.FETCH, 12, _fetch("memory", 0))).responses[0].partitions[0]
    assert fetched.error_code == 0 and fetched.high_watermark == 1
    records = bytes(fetched.records)  # the file region, copied through the stream
    # Byte for byte what was produced after the partition leader epoch the broker stamps.
    assert len(records) == len(batch) and records[16:] == batch[16:]
    # Pipelined: three requests out before any answer is read, answered in order.
    sent = [await client.send(ApiKey.API_VERSIONS, 3, VERSIONS) for _ in range(3)]
    assert [(await client.receive()).correlation_id for _ in sent] == sent
    assert conn.state.request_pool.reserved_bytes == 0  # every frame gave its pool bytes back


def test_api_versions_metadata_produce_fetch_over_a_memory_stream(make_state):
    state = _with_pool(make_state())
    state.logs.create_topic("memory", 1)
    _serve(state, _round_trip)


def test_the_same_round_trip_over_tls(make_state):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("kafkito.test").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    state = _with_pool(make_state())
    state.logs.create_topic("memory", 1)

    async def server_wrap(stream):
        return trio.SSLStream(stream, server_context, server_side=True)

    async def client_side(client: _Client, conn) -> None:
        await _round_trip(client, conn)
        assert client.stream.version().startswith("TLS")  # a TLS session carried it all

    async def client_wrap(stream):
        return trio.SSLStream(stream, client_context, server_hostname="kafkito.test")

    _serve(state, client_side, server_wrap, client_wrap)


def test_a_frame_above_socket_request_max_bytes_closes_before_its_body_is_read(make_state):
    state = _with_pool(make_state(socket_request_max_bytes=4096))

    async def client_side(client: _Client, conn) -> None:
        assert (await client.call(ApiKey.API_VERSIONS, 3, VERSIONS)).error_code == 0
        await client.stream.send_all(struct.pack(">i", 4097) + b"\x00\x12\x00\x03")
        assert await client.receive() is CLOSED
        assert conn.state.request_pool.peak_reserved_bytes < 4096  # nothing was reserved for it

    _serve(state, client_side)


def test_deadlines_apply_over_a_stream_transport(make_state):
    """socket.request.incomplete.timeout.ms closes a half-sent frame and gives its pool
    bytes back; connections.max.idle.ms closes a connection waiting between frames."""
    state = _with_pool(make_state(connections_max_idle_ms=60_000, socket_request_incomplete_timeout_ms=10_000))

    async def half_a_frame(client: _Client, conn) -> None:
        frame = client.framing.send_request(ApiKey.API_VERSIONS, 3, VERSIONS)[1]
        await client.stream.send_all(frame[:-3])
        await trio.testing.wait_all_tasks_blocked()
        assert conn.state.request_pool.reserved_bytes == len(frame) - 4
        conn.expire(trio.current_time() + 5)  # not yet
        await trio.testing.wait_all_tasks_blocked()
        assert conn.state.request_pool.reserved_bytes == len(frame) - 4
        conn.expire(trio.current_time() + 11)
        assert await client.receive() is CLOSED
        assert conn.state.request_pool.reserved_bytes == 0

    async def idle(client: _Client, conn) -> None:
        assert (await client.call(ApiKey.API_VERSIONS, 3, VERSIONS)).error_code == 0
        await trio.testing.wait_all_tasks_blocked()
        conn.expire(trio.current_time() + 30)  # not yet
        await trio.testing.wait_all_tasks_blocked()
        assert (await client.call(ApiKey.API_VERSIONS, 3, VERSIONS)).error_code == 0
        await trio.testing.wait_all_tasks_blocked()
        conn.expire(trio.current_time() + 61)
        assert await client.receive() is CLOSED

    for case in (half_a_frame, idle):
        _serve(state, case)


def test_a_storage_file_slice_is_the_file_region_a_records_ref_carries(make_state):
    """The typed contract between storage and the transports: protocol's FileRegion
    (fileno, position, size), which storage's FileSlice meets without importing protocol."""
    state = make_state()
    state.logs.create_topic("slice", 1)
    plog = state.logs.log("slice", 0)
    batch = build_batch([(b"k", b"v" * 100, [], 1_700_000_000_000)])
    plog.append(batch, 1_700_000_000_000)
    plog.flush()
    file_slice = plog.read(0, 1 << 20)
    assert isinstance(file_slice, FileRegion)
    ref = RecordsRef(file_slice)
    assert ref.region is file_slice and ref.nbytes == file_slice.size == len(batch)
