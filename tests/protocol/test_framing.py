"""The sans-IO framing state machine (protocol/framing.py), without a network.

Server side: whatever way a stream of pipelined frames is cut, and whichever of the two
input paths carries it, the same frames come out, in order; a size prefix may arrive a
byte at a time; a size above the limit is refused before anything is allocated for it;
a frame waits, unbuffered, until the caller accepts it. Client side: requests are
matched to their responses by correlation id and decoded with the request's key and
version (checked against the codec round trip).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkito.protocol import (
    CLOSED,
    FRAME_ANNOUNCED,
    NEED_DATA,
    ApiKey,
    ClientFraming,
    FrameReader,
    FrameSizeError,
    ProtocolError,
    decode_request,
    decode_response,
    encode_response_bytes,
)
from kafkito.protocol.messages.api_versions import ApiVersionsRequest, ApiVersion, ApiVersionsResponse
from kafkito.protocol.messages.metadata import MetadataRequest, MetadataResponse, MetadataResponseBroker
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _payloads() -> list[bytes]:
    # Around the edges of a 64-byte receive buffer: empty, tiny, exactly the buffer, larger.
    sizes = [0, 1, 3, 60, 64, 65, 200, 5000]
    return [bytes((i * 7 + j) % 251 for j in range(n)) for i, n in enumerate(sizes)]


class _Recorder:
    """A frame_buffer factory that records what it was asked for."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, size: int):
        self.sizes.append(size)
        return bytearray(size)


def _drain(reader: FrameReader, out: list) -> object:
    """Take every frame available; returns the event that stopped it."""
    while True:
        event = reader.next_event()
        if event is FRAME_ANNOUNCED:
            event = reader.accept_frame()
            if event is not None:
                out.append(bytes(event))
        elif event is NEED_DATA or event is CLOSED:
            return event
        else:
            out.append(bytes(event))


def _feed_zero_copy(reader: FrameReader, pieces: list[bytes]) -> list[bytes]:
    """As a transport that reads into the reader's buffer (readv), however short the reads."""
    out: list[bytes] = []
    for piece in pieces:
        view = memoryview(piece)
        while view:
            assert _drain(reader, out) is NEED_DATA
            target = reader.data_buffer()
            n = min(len(target), len(view))
            target[:n] = view[:n]
            reader.data_received(n)
            view = view[n:]
    reader.data_received(0)
    assert _drain(reader, out) is CLOSED
    return out


def _feed_copying(reader: FrameReader, pieces: list[bytes]) -> list[bytes]:
    """As a transport that hands out byte strings (trio streams, TLS)."""
    out: list[bytes] = []
    for piece in pieces:
        reader.receive_data(piece)
        assert _drain(reader, out) is NEED_DATA
    reader.receive_data(b"")
    assert _drain(reader, out) is CLOSED
    return out


def _cut(stream: bytes, points) -> list[bytes]:
    points = sorted(set(points))
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]


@pytest.mark.parametrize("feed", [_feed_zero_copy, _feed_copying])
def test_every_single_split_of_pipelined_frames_gives_the_same_frames(feed):
    payloads = _payloads()
    stream = b"".join(_frame(p) for p in payloads)
    for point in range(1, len(stream)):
        reader = FrameReader(receive_buffer=bytearray(64))
        assert feed(reader, _cut(stream, [point])) == payloads, point
        assert not reader.incomplete


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_split_of_pipelined_frames_gives_the_same_frames(data):
    payloads = data.draw(st.lists(st.binary(max_size=300), min_size=1, max_size=10))
    stream = b"".join(_frame(p) for p in payloads)
    points = data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=20)) if len(stream) > 1 else []
    buffer_bytes = data.draw(st.sampled_from([4, 5, 7, 64, 65536]))
    feed = data.draw(st.sampled_from([_feed_zero_copy, _feed_copying]))
    assert feed(FrameReader(receive_buffer=bytearray(buffer_bytes)), _cut(stream, points)) == payloads


@pytest.mark.parametrize("feed", [_feed_zero_copy, _feed_copying])
def test_a_size_prefix_split_at_every_byte(feed):
    payload = b"hello, frame"
    frame = _frame(payload)
    for cut in range(1, 5):
        reader = FrameReader()
        assert feed(reader, [frame[:cut], frame[cut:]]) == [payload]
    reader = FrameReader()
    assert feed(reader, [bytes([b]) for b in frame + frame]) == [payload, payload]


def test_a_prefix_cut_by_the_receive_buffers_end_moves_to_its_front():
    first, second = b"x" * 58, b"second"  # 62 bytes, then 2 of the next prefix fill 64
    stream = _frame(first) + _frame(second)
    reader = FrameReader(receive_buffer=bytearray(64))
    assert _feed_zero_copy(reader, [stream[:64], stream[64:]]) == [first, second]


def test_an_oversize_frame_is_refused_before_anything_is_allocated():
    frames = _Recorder()
    reader = FrameReader(max_frame_bytes=1000, frame_buffer=frames)
    reader.receive_data(struct.pack(">i", 1001))
    with pytest.raises(FrameSizeError, match="frame size 1001 outside 0..1000"):
        reader.next_event()
    with pytest.raises(FrameSizeError):  # it stays refused: the stream cannot be read further
        reader.next_event()
    assert frames.sizes == []
    negative = FrameReader(frame_buffer=frames)
    negative.receive_data(struct.pack(">i", -1) + b"x" * 100)
    with pytest.raises(FrameSizeError, match="-1"):
        negative.next_event()
    assert frames.sizes == []
    assert issubclass(FrameSizeError, ProtocolError)


def test_a_frame_at_the_limit_is_served():
    reader = FrameReader(max_frame_bytes=1000)
    assert _feed_copying(reader, [_frame(b"a" * 1000)]) == [b"a" * 1000]


def test_an_announced_frame_waits_for_accept_and_buffers_nothing_meanwhile():
    frames = _Recorder()
    reader = FrameReader(receive_buffer=bytearray(64), frame_buffer=frames)
    reader.receive_data(_frame(b"z" * 5000)[:10])
    assert reader.next_event() is FRAME_ANNOUNCED
    assert reader.frame_size == 5000
    reader.receive_data(b"z" * 500)
    assert reader.next_event() is FRAME_ANNOUNCED  # still waiting: nothing moved, nothing allocated
    assert frames.sizes == []
    with pytest.raises(RuntimeError):
        reader.data_buffer()
    assert reader.accept_frame() is None  # not whole yet: it gets its own buffer
    assert frames.sizes == [5000]  # the caller's buffer, for exactly the frame
    assert reader.next_event() is NEED_DATA
    reader.receive_data(b"z" * 4494)
    frame = reader.next_event()
    assert frame.__class__ is bytearray and frame == b"z" * 5000 and reader.at_frame_boundary


def test_the_frame_buffer_is_asked_for_only_frames_that_do_not_arrive_whole():
    frames = _Recorder()
    reader = FrameReader(receive_buffer=bytearray(64), frame_buffer=frames)
    small, large = b"s" * 20, b"L" * 5000
    assert _feed_copying(reader, [_frame(small) + _frame(small) + _frame(large)]) == [small, small, large]
    assert frames.sizes == [5000]


def test_small_frames_received_into_their_own_buffer_come_out_as_bytes():
    reader = FrameReader(receive_buffer=bytearray(8))
    reader.receive_data(_frame(b"q" * 100))
    assert reader.next_event() is FRAME_ANNOUNCED
    assert reader.accept_frame() is None
    frame = reader.next_event()
    assert frame.__class__ is bytes and frame == b"q" * 100


def test_end_of_stream_inside_a_frame_is_closed_and_incomplete():
    reader = FrameReader()
    reader.receive_data(_frame(b"abc")[:5])
    assert reader.next_event() is FRAME_ANNOUNCED
    assert reader.accept_frame() is None
    assert reader.next_event() is NEED_DATA
    reader.receive_data(b"")
    assert reader.next_event() is CLOSED and reader.incomplete
    clean = FrameReader()
    clean.receive_data(b"")
    assert clean.next_event() is CLOSED and not clean.incomplete


# -- client side -------------------------------------------------------------------------------
def _versions_response() -> ApiVersionsResponse:
    return ApiVersionsResponse(error_code=0, api_keys=[ApiVersion(api_key=0, min_version=3, max_version=9)],
                               throttle_time_ms=0)


def _metadata_response() -> MetadataResponse:
    return MetadataResponse(throttle_time_ms=0, brokers=[MetadataResponseBroker(node_id=1, host="h", port=9092)],
                            cluster_id="c", controller_id=1, topics=[])


def test_client_matches_responses_to_requests_and_decodes_them_with_the_requests_version():
    client = ClientFraming("test-client", first_correlation_id=7)
    versions = ApiVersionsRequest(client_software_name="t", client_software_version="1")
    sent = [
        client.send_request(ApiKey.API_VERSIONS, 3, versions),
        client.send_request(ApiKey.METADATA, 12, MetadataRequest(topics=None, allow_auto_topic_creation=False)),
        client.send_request(ApiKey.API_VERSIONS, 0, ApiVersionsRequest()),
    ]
    assert [cid for cid, _ in sent] == [7, 8, 9] and client.in_flight == 3
    # The request frames are what the server side decodes (the codec round trip).
    header, body = decode_request(memoryview(sent[0][1])[4:])
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (18, 3, 7, "test-client")
    assert body == versions
    answers = [(ApiKey.API_VERSIONS, 3, 7, _versions_response()), (ApiKey.METADATA, 12, 8, _metadata_response()),
               (ApiKey.API_VERSIONS, 0, 9, _versions_response())]
    stream = b"".join(encode_response_bytes(*answer) for answer in answers)
    got = []
    for i in range(len(stream)):  # one byte at a time: framing and decoding are independent
        client.receive_data(stream[i:i + 1])
        while (event := client.next_event()) is not NEED_DATA:
            got.append(event)
    # Each body is what the codec's own round trip of that response gives.
    expected = [(key, version, cid, decode_response(key, version, encode_response_bytes(key, version, cid, body)[4:])[1])
                for key, version, cid, body in answers]
    assert [(r.api_key, r.api_version, r.correlation_id, r.body) for r in got] == expected
    assert got[1].body.brokers[0].host == "h" and got[0].body.api_keys[0].max_version == 9
    assert client.in_flight == 0


def test_client_expects_no_response_to_an_acks_0_produce():
    client = ClientFraming()
    produce = ProduceRequest(acks=0, timeout_ms=1000, topic_data=[
        TopicProduceData(name="t", partition_data=[PartitionProduceData(index=0, records=b"")])])
    client.send_request(ApiKey.PRODUCE, 9, produce)
    assert client.in_flight == 0
    produce.acks = 1
    client.send_request(ApiKey.PRODUCE, 9, produce)
    assert client.in_flight == 1


def test_client_refuses_a_response_out_of_order_or_unasked():
    client = ClientFraming()
    client.send_request(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    client.send_request(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    client.receive_data(encode_response_bytes(ApiKey.API_VERSIONS, 3, 1, _versions_response()))
    with pytest.raises(ProtocolError, match="correlation id 1, expected 0"):
        client.next_event()
    lone = ClientFraming()
    lone.receive_data(encode_response_bytes(ApiKey.API_VERSIONS, 3, 0, _versions_response()))
    with pytest.raises(ProtocolError, match="no request in flight"):
        lone.next_event()


def test_client_correlation_ids_wrap_within_int32():
    client = ClientFraming(first_correlation_id=2**31 - 1)
    body = ApiVersionsRequest(client_software_name="t", client_software_version="1")
    assert client.send_request(ApiKey.API_VERSIONS, 3, body)[0] == 2**31 - 1
    assert client.send_request(ApiKey.API_VERSIONS, 3, body)[0] == 0
