"""Primitive encodings: known byte vectors, limits, and the errors for bad input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkito.protocol import ProtocolError
from kafkito.protocol import primitives as P


@pytest.mark.parametrize(
    "value,wire",
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
     (2**32 - 1, b"\xff\xff\xff\xff\x0f")],
)
def test_uvarint_vectors(value, wire):
    b = bytearray()
    P.write_uvarint(b, value)
    assert bytes(b) == wire
    assert P.read_uvarint(memoryview(wire), 0) == (value, len(wire))


@pytest.mark.parametrize("value,wire", [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-2, b"\x03"),
                                        (2**31 - 1, b"\xfe\xff\xff\xff\x0f"),
                                        (-(2**31), b"\xff\xff\xff\xff\x0f")])
def test_zigzag_varint_vectors(value, wire):
    b = bytearray()
    P.write_varint(b, value)
    assert bytes(b) == wire
    assert P.read_varint(wire, 0) == (value, len(wire))


@given(st.integers(-(2**63), 2**63 - 1))
def test_varlong_round_trip(value):
    b = bytearray()
    P.write_varlong(b, value)
    assert P.read_varlong(bytes(b), 0) == (value, len(b))


@given(st.integers(-(2**31), 2**31 - 1))
def test_varint_round_trip(value):
    b = bytearray()
    P.write_varint(b, value)
    assert P.read_varint(bytes(b), 0) == (value, len(b))
    assert len(b) == P.uvarint_size(((value << 1) ^ (value >> 31)) & 0xFFFFFFFF)


def test_overlong_varint_is_refused():
    with pytest.raises(ProtocolError, match="longer"):
        P.read_uvarint(b"\x80\x80\x80\x80\x80\x01", 0)
    with pytest.raises(ProtocolError, match="range"):
        P.read_uvarint(b"\xff\xff\xff\xff\x1f", 0)  # 35 bits in a 32-bit varint
    with pytest.raises(ProtocolError, match="truncated"):
        P.read_uvarint(b"\x80\x80", 0)


def test_strings_classic_and_compact():
    b = bytearray()
    P.write_string(b, "héllo")
    assert bytes(b) == b"\x00\x06h\xc3\xa9llo"
    assert P.read_string(bytes(b), 0) == ("héllo", 8)
    b = bytearray()
    P.write_compact_nullable_string(b, None)
    P.write_compact_string(b, "ab")
    assert bytes(b) == b"\x00\x03ab"
    assert P.read_compact_nullable_string(bytes(b), 0) == (None, 1)
    assert P.read_compact_string(bytes(b), 1) == ("ab", 4)
    assert P.read_nullable_string(b"\xff\xff", 0) == (None, 2)


def test_string_errors():
    with pytest.raises(ProtocolError, match="UTF-8"):
        P.read_string(b"\x00\x02\xc3\x28", 0)
    with pytest.raises(ProtocolError, match="non-nullable"):
        P.read_string(b"\xff\xff", 0)
    with pytest.raises(ProtocolError, match="negative"):
        P.read_nullable_string(b"\xff\xfe", 0)
    with pytest.raises(ProtocolError, match="truncated"):
        P.read_string(b"\x00\x05ab", 0)
    with pytest.raises(ProtocolError, match="non-nullable"):
        P.read_compact_string(b"\x00", 0)


def test_huge_lengths_fail_before_allocating():
    # 2 GB claimed, 3 bytes present: refused by the bounds check, nothing allocated.
    claim = struct.pack(">i", 2**31 - 1) + b"abc"
    for read in (P.read_bytes, P.read_nullable_bytes, P.read_records):
        with pytest.raises(ProtocolError, match="truncated"):
            read(memoryview(claim), 0)
    with pytest.raises(ProtocolError, match="does not fit"):
        P.read_array_length(memoryview(claim), 0, False, 1)
    compact = bytearray()
    P.write_uvarint(compact, 2**32 - 1)
    with pytest.raises(ProtocolError, match="does not fit"):
        P.read_array_length(memoryview(bytes(compact)), 0, True, 1)
    with pytest.raises(ProtocolError, match="negative array"):
        P.read_array_length(struct.pack(">i", -2), 0, False, 1)


def test_records_are_zero_copy_slices():
    frame = memoryview(b"\x00\x00\x00\x03xyz")
    value, pos = P.read_records(frame, 0)
    assert isinstance(value, memoryview) and value.obj is frame.obj
    assert bytes(value) == b"xyz" and pos == 7
    assert P.read_compact_records(b"\x00", 0) == (None, 1)


def test_tag_section():
    b = bytearray()
    P.write_uvarint(b, 2)
    for tag, data in ((0, b"\x01"), (5, b"ab")):
        P.write_uvarint(b, tag)
        P.write_uvarint(b, len(data))
        b += data
    tags, pos = P.read_tag_section(memoryview(bytes(b)), 0)
    assert [(t, bytes(d)) for t, d in tags] == [(0, b"\x01"), (5, b"ab")] and pos == len(b)
    with pytest.raises(ProtocolError):
        P.read_tag_section(memoryview(b"\x01\x00\x09ab"), 0)


def test_uuid():
    import uuid

    u = uuid.uuid4()
    b = bytearray()
    P.write_uuid(b, u)
    assert P.read_uuid(memoryview(bytes(b)), 0) == (u, 16)
    with pytest.raises(ProtocolError):
        P.read_uuid(memoryview(b"\x00" * 15), 0)
