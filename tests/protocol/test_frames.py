"""Headers, framing, the ApiVersions header exception, RecordsRef chunks, and errors that
carry the header fields read so far."""

from __future__ import annotations

import struct
import uuid

import pytest

from kafkito.protocol import (
    SPECS,
    ApiKey,
    ProtocolError,
    RecordsRef,
    decode_frame_size,
    decode_request,
    decode_request_header,
    decode_response,
    encode_request,
    encode_response,
    encode_response_bytes,
)
from kafkito.protocol.messages import api_versions as av
from kafkito.protocol.messages import fetch as fe
from kafkito.protocol.messages import metadata as md
from kafkito.protocol.messages import produce as pr


def _unframe(frame: bytes) -> memoryview:
    (size,) = struct.unpack_from(">i", frame, 0)
    assert size == len(frame) - 4
    return memoryview(frame)[4:]


def test_request_header_v1_and_v2():
    body = md.MetadataRequest(topics=[md.MetadataRequestTopic(name="t")])
    v1 = encode_request(ApiKey.METADATA, 5, 42, "cli", body)
    v2 = encode_request(ApiKey.METADATA, 9, 42, "cli", body)
    assert _unframe(v1)[:13].tobytes() == b"\x00\x03\x00\x05\x00\x00\x00\x2a\x00\x03cli"
    # v2 keeps the classic client_id and adds an empty tag section.
    assert _unframe(v2)[:14].tobytes() == b"\x00\x03\x00\x09\x00\x00\x00\x2a\x00\x03cli\x00"
    for frame, v in ((v1, 5), (v2, 9)):
        header, req = decode_request(_unframe(frame))
        assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (
            3, v, 42, "cli")
        assert req.topics[0].name == "t"


def test_null_client_id():
    frame = encode_request(ApiKey.API_VERSIONS, 0, 1, None, av.ApiVersionsRequest())
    header, _ = decode_request(_unframe(frame))
    assert header.client_id is None


def test_api_versions_response_always_uses_header_v0():
    body = av.ApiVersionsResponse(api_keys=[av.ApiVersion(api_key=0, min_version=3, max_version=9)])
    frame = encode_response_bytes(ApiKey.API_VERSIONS, 3, 7, body)
    # size, correlation id, then the body at once: error_code 0 (no header tag byte).
    assert frame[4:8] == b"\x00\x00\x00\x07" and frame[8:10] == b"\x00\x00"
    assert decode_response(ApiKey.API_VERSIONS, 3, _unframe(frame)) == (7, body)
    # Other flexible responses carry header v1: one tag-section byte after the id.
    meta = encode_response_bytes(ApiKey.METADATA, 9, 7, md.MetadataResponse())
    assert meta[4:9] == b"\x00\x00\x00\x07\x00"
    old = encode_response_bytes(ApiKey.METADATA, 8, 7, md.MetadataResponse())
    assert old[4:12] == b"\x00\x00\x00\x07\x00\x00\x00\x00"  # v0 header, then throttle


def test_api_versions_response_omits_unset_tagged_fields():
    body = av.ApiVersionsResponse(api_keys=[])
    frame = encode_response_bytes(ApiKey.API_VERSIONS, 3, 1, body)
    # error_code, empty compact array, throttle_time_ms, and an EMPTY tag section.
    assert frame[8:] == b"\x00\x00" + b"\x01" + b"\x00\x00\x00\x00" + b"\x00"


def test_unsupported_api_versions_request_still_yields_header():
    # A client sends ApiVersions v99 (unknown, flexible-style header): we still read
    # the v1 part of the header so the broker can answer UNSUPPORTED_VERSION.
    raw = struct.pack(">hhih", 18, 99, 5, 3) + b"cli" + b"\x00" + b"\x04java\x045.0\x00"
    header, offset = decode_request_header(raw)
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (
        18, 99, 5, "cli")
    assert offset == 13
    with pytest.raises(ProtocolError) as info:
        decode_request(raw)
    e = info.value
    assert (e.api_key, e.api_version, e.correlation_id, e.client_id) == (18, 99, 5, "cli")


def test_unknown_api_key():
    raw = struct.pack(">hhih", 999, 0, 5, -1)
    header, _ = decode_request_header(raw)
    assert header.api_key == 999 and header.client_id is None
    with pytest.raises(ProtocolError, match="unknown api key") as info:
        decode_request(raw)
    assert info.value.correlation_id == 5


def test_truncated_header_reports_what_was_read():
    with pytest.raises(ProtocolError) as info:
        decode_request_header(b"\x00\x03\x00\x05\x00")
    assert (info.value.api_key, info.value.api_version, info.value.correlation_id) == (3, 5, None)
    with pytest.raises(ProtocolError) as info:
        decode_request_header(struct.pack(">hhih", 3, 5, 9, 10) + b"ab")
    assert info.value.correlation_id == 9


def test_body_errors_carry_header_fields():
    frame = encode_request(ApiKey.PRODUCE, 9, 77, "p", pr.ProduceRequest(acks=1))
    with pytest.raises(ProtocolError) as info:
        decode_request(_unframe(frame)[:-2])
    e = info.value
    assert (e.api_key, e.api_version, e.correlation_id, e.client_id) == (0, 9, 77, "p")


def test_bytes_after_a_request_body_are_ignored_as_kafka_does():
    # Kafka's request parser never checks for leftovers; responses we read stay exact.
    frame = encode_request(ApiKey.PRODUCE, 9, 77, "p", pr.ProduceRequest(acks=1))
    _, req = decode_request(bytes(_unframe(frame)) + b"\x00\x01\x02")
    assert req == pr.ProduceRequest(acks=1)
    response = encode_response_bytes(ApiKey.METADATA, 9, 1, md.MetadataResponse())
    with pytest.raises(ProtocolError, match="unexpected bytes"):
        decode_response(ApiKey.METADATA, 9, bytes(_unframe(response)) + b"\x00")


def test_produce_records_decode_zero_copy():
    records = b"R" * 100
    body = pr.ProduceRequest(acks=-1, timeout_ms=30000, topic_data=[pr.TopicProduceData(
        name="t", partition_data=[pr.PartitionProduceData(index=2, records=records)])])
    frame = bytearray(encode_request(ApiKey.PRODUCE, 10, 1, "c", body))
    _, req = decode_request(memoryview(frame)[4:])
    got = req.topic_data[0].partition_data[0].records
    assert isinstance(got, memoryview) and got.obj is frame and got == records


class FileRange(RecordsRef):
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.nbytes = len(data)


def _join(chunks) -> bytes:
    return b"".join(c.data if isinstance(c, FileRange) else bytes(c) for c in chunks)


@pytest.mark.parametrize("version", [4, 11, 12, 16])
def test_records_ref_passthrough(version):
    refs = [FileRange(b"A" * 10), FileRange(b"B" * 20)]
    topic = fe.FetchableTopicResponse(topic="t", topic_id=uuid.uuid4(), partitions=[
        fe.PartitionData(partition_index=i, high_watermark=5, records=r) for i, r in enumerate(refs)])
    chunks = encode_response(ApiKey.FETCH, version, 3, fe.FetchResponse(responses=[topic]))
    assert [c for c in chunks if isinstance(c, RecordsRef)] == refs
    inline = fe.FetchResponse(responses=[fe.FetchableTopicResponse(
        topic="t", topic_id=topic.topic_id, partitions=[
            fe.PartitionData(partition_index=i, high_watermark=5, records=r.data)
            for i, r in enumerate(refs)])])
    assert _join(chunks) == encode_response_bytes(ApiKey.FETCH, version, 3, inline)
    cid, decoded = decode_response(ApiKey.FETCH, version, _unframe(_join(chunks)))
    assert cid == 3 and bytes(decoded.responses[0].partitions[1].records) == b"B" * 20
    with pytest.raises(ValueError):
        encode_response_bytes(ApiKey.FETCH, version, 3, fe.FetchResponse(responses=[topic]))


def test_frame_size_limits():
    assert decode_frame_size(b"\x00\x00\x01\x00", 1024) == 256
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_frame_size(b"\x7f\xff\xff\xff", 100 * 1024 * 1024)
    with pytest.raises(ProtocolError, match="negative"):
        decode_frame_size(b"\xff\xff\xff\xff", 1024)


def test_specs_cover_the_contract():
    for key in ApiKey:
        if key == ApiKey.WRITE_TXN_MARKERS:
            continue
        spec = SPECS[key]
        assert spec.api_key == key and spec.request.__name__ == spec.name + "Request"
        assert spec.response.__name__ == spec.name + "Response"


def test_encoding_none_in_non_nullable_field_is_a_clear_error():
    with pytest.raises(ValueError, match="MetadataResponse"):
        encode_response_bytes(ApiKey.METADATA, 1, 1, md.MetadataResponse(topics=None))


def test_unknown_tags_are_kept_and_merged_in_tag_order():
    from kafkito.protocol import primitives as P
    from kafkito.protocol.codec import decode_body, encode_body

    part = fe.PartitionData(
        partition_index=1,
        current_leader=fe.LeaderIdAndEpoch(leader_id=4, leader_epoch=2),  # known tag 1
        unknown_tagged_fields=[(0x7, b"\x01\x02"), (0x40, b"")],  # tags we do not know
    )
    b = bytearray()
    encode_body(fe.PartitionData, 12, True, part, b, [])
    # The tag section is last: skip the fixed part by decoding, then read it raw.
    decoded = decode_body(fe.PartitionData, 12, True, memoryview(bytes(b)))
    assert decoded.unknown_tagged_fields == [(0x7, b"\x01\x02"), (0x40, b"")]
    assert decoded.current_leader == part.current_leader
    tail = bytes(b)[-(1 + 2 + 8 + 1 + 1 + 2 + 1 + 2):]  # count, tag1, tag7, tag64
    tags, _ = P.read_tag_section(memoryview(tail), 0)
    assert [t for t, _ in tags] == [1, 7, 0x40]
    # A tagged field equal to its default is not written at all.
    plain = bytearray()
    encode_body(fe.PartitionData, 12, True, fe.PartitionData(partition_index=1), plain, [])
    assert plain[-1] == 0
