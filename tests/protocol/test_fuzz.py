"""Fuzzing the decoders: random and mutated frames raise ProtocolError or decode, nothing
else; huge length fields are refused without allocating what they claim."""

from __future__ import annotations

import json
import os
import struct
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkito.protocol import SPECS, ProtocolError, decode_request, decode_response, encode_request
from kafkito.protocol.codec import encode_body

from .strategies import message

DATA = os.path.join(os.path.dirname(__file__), "data")
GOLDEN = [
    bytes.fromhex(fr["hex"])
    for name in sorted(os.listdir(DATA))
    if name.startswith("golden_")
    for fr in json.load(open(os.path.join(DATA, name)))["frames"]
]
VERSIONS = [(spec, v) for spec in SPECS.values() for v in range(spec.min_version, spec.max_version + 1)]


def _only_protocol_errors(fn, *args) -> None:
    start = time.perf_counter()
    try:
        fn(*args)
    except ProtocolError:
        pass
    assert time.perf_counter() - start < 1.0, "decoder took too long on a small frame"


@st.composite
def mutated(draw, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "length"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[pos] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "length":
            # Overwrite 4 bytes with a huge or negative int32: a hostile length field.
            data[pos : pos + 4] = struct.pack(">i", draw(st.sampled_from([2**31 - 1, -2, -(2**31), 65536])))
    return bytes(data)


@given(st.binary(max_size=300))
def test_random_bytes_as_request(frame):
    _only_protocol_errors(decode_request, frame)


@given(st.data())
def test_mutated_golden_requests(data):
    base = data.draw(st.sampled_from(GOLDEN))
    _only_protocol_errors(decode_request, data.draw(mutated(base)))


@settings(max_examples=max(100, settings.default.max_examples * 3))
@given(st.data())
def test_mutated_generated_requests(data):
    spec, v = data.draw(st.sampled_from(VERSIONS))
    body = data.draw(message(spec.request, v, spec.is_flexible(v)))
    frame = encode_request(spec.api_key, v, 1, "fuzz", body)[4:]
    _only_protocol_errors(decode_request, data.draw(mutated(frame)))


@settings(max_examples=max(100, settings.default.max_examples * 3))
@given(st.data())
def test_mutated_generated_responses(data):
    spec, v = data.draw(st.sampled_from(VERSIONS))
    flex = spec.is_flexible(v)
    b = bytearray(struct.pack(">i", 1))
    if flex and spec.api_key != 18:
        b.append(0)
    encode_body(spec.response, v, flex, data.draw(message(spec.response, v, flex)), b, [])
    _only_protocol_errors(decode_response, spec.api_key, v, data.draw(mutated(bytes(b))))


@given(st.sampled_from(VERSIONS), st.binary(max_size=200))
def test_random_response_bodies(spec_version, body):
    spec, v = spec_version
    _only_protocol_errors(decode_response, spec.api_key, v, struct.pack(">i", 1) + body)


HUGE = [
    # Produce v3: transactional_id null, acks, timeout, then a topic array claiming 2^31-1.
    struct.pack(">hhih", 0, 3, 1, -1) + struct.pack(">hhii", -1, 1, 1000, 2**31 - 1),
    # Produce v3 with one topic/partition whose records claim 2 GB.
    struct.pack(">hhih", 0, 3, 1, -1) + struct.pack(">hhiih", -1, 1, 1000, 1, 1) + b"t"
    + struct.pack(">iii", 1, 0, 2**31 - 1) + b"abc",
    # Produce v9 (compact): records length as a 5-byte uvarint near 2^32.
    struct.pack(">hhih", 0, 9, 1, -1) + b"\x00" + b"\x00" + struct.pack(">hi", 1, 1000)
    + b"\x02\x02t\x02" + struct.pack(">i", 0) + b"\xfe\xff\xff\xff\x0f" + b"abc",
    # Metadata v1: topic array of 2^31-1 names.
    struct.pack(">hhih", 3, 1, 1, -1) + struct.pack(">i", 2**31 - 1) + b"\x00\x01a",
    # A string claiming 32767 bytes with 1 present.
    struct.pack(">hhih", 3, 1, 1, 32767) + b"x",
]


@pytest.mark.parametrize("frame", HUGE)
def test_huge_length_fields_do_not_allocate(frame):
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError):
            decode_request(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
