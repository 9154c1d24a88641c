"""Frames: size prefix, request/response headers, and whole messages.

A Kafka frame is an int32 size followed by that many bytes. Requests carry header v1
(api_key int16, api_version int16, correlation_id int32, client_id nullable string with an
int16 length) or, for flexible API versions, v2 = v1 plus a tagged-field section. The
client_id keeps the classic encoding even in v2, which is what lets a broker read the
header of an ApiVersions request newer than it knows. Responses carry header v0
(correlation_id) or, for flexible versions, v1 (plus tagged fields), except ApiVersions
responses, which are always v0 so that a client can parse our answer whatever version it
asked for.

The functions here take frames WITHOUT the size prefix (the connection code reads it,
checks it against its limit with ``decode_frame_size``, then reads the frame), and
produce frames WITH it.
"""

from __future__ import annotations

import struct

import msgspec

from . import primitives as P
from .api_keys import ApiKey
from .codec import decode_body, encode_body
from .errors import ProtocolError
from .messages import SPECS

_HEADER = struct.Struct(">hhi")
_INT32 = struct.Struct(">i")
_API_VERSIONS = int(ApiKey.API_VERSIONS)


class RequestHeader(msgspec.Struct, gc=False):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None = None


def decode_frame_size(prefix, size_max: int) -> int:
    """The size in a 4-byte prefix, refused when negative or above ``size_max``."""
    if len(prefix) != 4:
        raise ProtocolError("truncated frame size")
    (size,) = _INT32.unpack_from(prefix, 0)
    if size < 0:
        raise ProtocolError(f"negative frame size {size}")
    if size > size_max:
        raise ProtocolError(f"frame of {size} bytes exceeds the limit of {size_max}")
    return size


def _view(frame) -> memoryview:
    return frame if isinstance(frame, memoryview) else memoryview(frame)


def _spec(api_key: int, api_version: int):
    """The spec when (key, version) is declared, else None."""
    spec = SPECS.get(api_key)
    if spec is None or not spec.has_version(api_version):
        return None
    return spec


def decode_request_header(frame) -> tuple[RequestHeader, int]:
    """Read the request header; returns it and the offset where the body starts.

    Header v2 (with tagged fields) is used when the (api_key, api_version) is declared and
    flexible. For an unknown key or an undeclared version the header is read as v1, so the
    caller still learns the correlation id and client id to answer or log with.
    """
    buf = _view(frame)
    if len(buf) < 8:
        ctx = {}
        if len(buf) >= 2:
            ctx["api_key"] = struct.unpack_from(">h", buf, 0)[0]
        if len(buf) >= 4:
            ctx["api_version"] = struct.unpack_from(">h", buf, 2)[0]
        raise ProtocolError("truncated request header", **ctx)
    api_key, api_version, correlation_id = _HEADER.unpack_from(buf, 0)
    ctx = {"api_key": api_key, "api_version": api_version, "correlation_id": correlation_id}
    try:
        client_id, pos = P.read_nullable_string(buf, 8)
        ctx["client_id"] = client_id
        spec = _spec(api_key, api_version)
        if spec is not None and spec.is_flexible(api_version):
            # Header tagged fields: none are defined for requests; read and drop them.
            _, pos = P.read_tag_section(buf, pos)
    except ProtocolError as e:
        raise ProtocolError(f"bad request header: {e.reason}", **ctx) from None
    return RequestHeader(api_key, api_version, correlation_id, client_id), pos


def decode_request(frame):
    """Header and body of a request frame (without the size prefix)."""
    buf = _view(frame)
    header, pos = decode_request_header(buf)
    ctx = {
        "api_key": header.api_key,
        "api_version": header.api_version,
        "correlation_id": header.correlation_id,
        "client_id": header.client_id,
    }
    spec = SPECS.get(header.api_key)
    if spec is None:
        raise ProtocolError(f"unknown api key {header.api_key}", **ctx)
    if not spec.has_version(header.api_version):
        raise ProtocolError(
            f"{spec.name} v{header.api_version} is outside the declared range "
            f"v{spec.min_version}-{spec.max_version}",
            **ctx,
        )
    v = header.api_version
    try:
        body = decode_body(spec.request, v, spec.is_flexible(v), buf, pos, exact=False)
    except ProtocolError as e:
        raise ProtocolError(e.reason, **ctx) from None
    return header, body


def _known_spec(api_key: int, api_version: int):
    spec = _spec(api_key, api_version)
    if spec is None:
        raise ValueError(f"api key {api_key} v{api_version} is not declared")
    return spec


def _encode_response_frame(api_key: int, api_version: int, correlation_id: int, body):
    spec = _known_spec(api_key, api_version)
    flex = spec.is_flexible(api_version)
    header_v1 = flex and api_key != _API_VERSIONS
    b = bytearray(9 if header_v1 else 8)  # size, correlation id, [empty tag section]
    _INT32.pack_into(b, 4, correlation_id)
    holes: list = []
    encode_body(spec.response, api_version, flex, body, b, holes)
    size = len(b) - 4
    for _, ref in holes:
        size += ref.nbytes
    _INT32.pack_into(b, 0, size)
    return b, holes


def encode_response(api_key: int, api_version: int, correlation_id: int, body) -> list:
    """The whole response frame as chunks, the first starting with the size.

    A RecordsRef value becomes its own chunk (the object itself) between byte chunks.
    """
    b, holes = _encode_response_frame(api_key, api_version, correlation_id, body)
    if not holes:
        return [b]
    chunks: list = []
    mv = memoryview(b)
    prev = 0
    for off, ref in holes:
        if off > prev:
            chunks.append(mv[prev:off])
        chunks.append(ref)
        prev = off
    if prev < len(b):
        chunks.append(mv[prev:])
    return chunks


def encode_response_bytes(api_key: int, api_version: int, correlation_id: int, body) -> bytes:
    b, holes = _encode_response_frame(api_key, api_version, correlation_id, body)
    if holes:
        raise ValueError("a RecordsRef needs encode_response, not encode_response_bytes")
    return bytes(b)


def encode_request(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None, body
) -> bytes:
    """A whole request frame, size prefix included (client side)."""
    spec = _known_spec(api_key, api_version)
    flex = spec.is_flexible(api_version)
    b = bytearray(4)
    b += _HEADER.pack(api_key, api_version, correlation_id)
    P.write_nullable_string(b, client_id)
    if flex:
        b.append(0)
    holes: list = []
    encode_body(spec.request, api_version, flex, body, b, holes)
    if holes:
        raise ValueError("RecordsRef is not supported in requests")
    _INT32.pack_into(b, 0, len(b) - 4)
    return bytes(b)


def decode_response(api_key: int, api_version: int, frame):
    """(correlation_id, body) of a response frame without the size prefix (client side)."""
    buf = _view(frame)
    spec = _spec(api_key, api_version)
    if spec is None:
        raise ProtocolError(
            f"api key {api_key} v{api_version} is not declared",
            api_key=api_key,
            api_version=api_version,
        )
    ctx = {"api_key": api_key, "api_version": api_version}
    if len(buf) < 4:
        raise ProtocolError("truncated response header", **ctx)
    (correlation_id,) = _INT32.unpack_from(buf, 0)
    ctx["correlation_id"] = correlation_id
    flex = spec.is_flexible(api_version)
    try:
        pos = 4
        if flex and api_key != _API_VERSIONS:
            _, pos = P.read_tag_section(buf, pos)
        body = decode_body(spec.response, api_version, flex, buf, pos)
    except ProtocolError as e:
        raise ProtocolError(e.reason, **ctx) from None
    except (struct.error, IndexError):
        raise ProtocolError("truncated response header", **ctx) from None
    return correlation_id, body


def decode_request_body(api_key: int, api_version: int, buf):
    """Just a request body (tests and tools)."""
    spec = _known_spec(api_key, api_version)
    return decode_body(spec.request, api_version, spec.is_flexible(api_version), _view(buf))


def decode_response_body(api_key: int, api_version: int, buf):
    spec = _known_spec(api_key, api_version)
    return decode_body(spec.response, api_version, spec.is_flexible(api_version), _view(buf))


def encode_request_body(api_key: int, api_version: int, body) -> bytes:
    spec = _known_spec(api_key, api_version)
    b = bytearray()
    holes: list = []
    encode_body(spec.request, api_version, spec.is_flexible(api_version), body, b, holes)
    if holes:
        raise ValueError("RecordsRef is not supported here")
    return bytes(b)


def encode_response_body(api_key: int, api_version: int, body) -> bytes:
    spec = _known_spec(api_key, api_version)
    b = bytearray()
    holes: list = []
    encode_body(spec.response, api_version, spec.is_flexible(api_version), body, b, holes)
    if holes:
        raise ValueError("RecordsRef is not supported here")
    return bytes(b)
