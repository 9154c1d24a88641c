"""Readers and writers for Kafka's primitive wire types.

Readers take ``(buf, pos)`` and return ``(value, new_pos)``; ``buf`` is a memoryview (or
bytes) whose whole length is the readable area, so every length read from the wire is
checked against ``len(buf) - pos`` before anything is sliced or allocated. Writers append
to a ``bytearray``. Fixed-width integers are not here: the generated codecs read runs of
them with one precompiled ``struct.Struct``.

Two length conventions exist: classic (int16 for strings, int32 for bytes and arrays,
-1 for null) and compact, used by flexible versions (unsigned varint holding length + 1,
0 for null). Varints are base-128 little-endian groups; the signed ones are zig-zag
encoded. A varint longer than its type allows (5 bytes for 32 bits, 10 for 64) is an
error, as in Kafka, so a hostile frame cannot make us loop or build huge ints.
"""

from __future__ import annotations

import struct
import uuid
from typing import Protocol, runtime_checkable

from .errors import ProtocolError

INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")
UINT32 = struct.Struct(">I")
_EMPTY = b""


def short(what: str) -> ProtocolError:
    return ProtocolError(f"truncated frame while reading {what}")


# -- varints ---------------------------------------------------------------------------


def read_uvarint(buf, pos: int, max_bytes: int = 5) -> tuple[int, int]:
    """Unsigned varint (at most ``max_bytes`` long: 5 for 32 bits, 10 for 64)."""
    try:
        b = buf[pos]
    except IndexError:
        raise short("varint") from None
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    shift = 7
    end = pos + max_bytes
    pos += 1
    while True:
        if pos >= end:
            raise ProtocolError("varint is longer than its type allows")
        try:
            b = buf[pos]
        except IndexError:
            raise short("varint") from None
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    if value >> (32 if max_bytes == 5 else 64):
        raise ProtocolError("varint is out of range for its type")
    return value, pos


def read_uvarlong(buf, pos: int) -> tuple[int, int]:
    return read_uvarint(buf, pos, 10)


def read_varint(buf, pos: int) -> tuple[int, int]:
    """Zig-zag signed 32-bit varint."""
    v, pos = read_uvarint(buf, pos, 5)
    return (v >> 1) ^ -(v & 1), pos


def read_varlong(buf, pos: int) -> tuple[int, int]:
    """Zig-zag signed 64-bit varint."""
    v, pos = read_uvarint(buf, pos, 10)
    return (v >> 1) ^ -(v & 1), pos


def write_uvarint(b: bytearray, value: int) -> None:
    if 0 <= value < 0x80:
        b.append(value)
        return
    if value < 0:
        raise ValueError(f"unsigned varint cannot hold {value}")
    while value >= 0x80:
        b.append((value & 0x7F) | 0x80)
        value >>= 7
    b.append(value)


def write_varint(b: bytearray, value: int) -> None:
    write_uvarint(b, ((value << 1) ^ (value >> 31)) & 0xFFFFFFFF)


def write_varlong(b: bytearray, value: int) -> None:
    write_uvarint(b, ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF)


def uvarint_size(value: int) -> int:
    n = 1
    while value >= 0x80:
        value >>= 7
        n += 1
    return n


# -- lengths -----------------------------------------------------------------------------


def read_compact_length(buf, pos: int) -> tuple[int, int]:
    """Compact length: returns -1 for null, else the length."""
    v, pos = read_uvarint(buf, pos)
    return v - 1, pos


def read_array_length(buf, pos: int, compact: bool, min_elem_size: int) -> tuple[int, int]:
    """Array count (-1 for null), refused when the remaining bytes cannot hold it."""
    if compact:
        n, pos = read_uvarint(buf, pos)
        n -= 1
    else:
        try:
            (n,) = INT32.unpack_from(buf, pos)
        except struct.error:
            raise short("array length") from None
        pos += 4
        if n < -1:
            raise ProtocolError(f"negative array length {n}")
    if n * min_elem_size > len(buf) - pos:
        raise ProtocolError(f"array of {n} elements does not fit in the frame")
    return n, pos


# -- strings -----------------------------------------------------------------------------


def _decode_utf8(buf, pos: int, n: int) -> str:
    if n > len(buf) - pos:
        raise short("string")
    try:
        return str(buf[pos : pos + n], "utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("string is not valid UTF-8") from None


def read_string(buf, pos: int) -> tuple[str, int]:
    try:
        (n,) = INT16.unpack_from(buf, pos)
    except struct.error:
        raise short("string length") from None
    if n < 0:
        raise ProtocolError(f"null or negative length {n} for a non-nullable string")
    pos += 2
    return _decode_utf8(buf, pos, n), pos + n


def read_nullable_string(buf, pos: int) -> tuple[str | None, int]:
    try:
        (n,) = INT16.unpack_from(buf, pos)
    except struct.error:
        raise short("string length") from None
    pos += 2
    if n < 0:
        if n == -1:
            return None, pos
        raise ProtocolError(f"negative string length {n}")
    return _decode_utf8(buf, pos, n), pos + n


def read_compact_string(buf, pos: int) -> tuple[str, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise ProtocolError("null for a non-nullable compact string")
    n -= 1
    return _decode_utf8(buf, pos, n), pos + n


def read_compact_nullable_string(buf, pos: int) -> tuple[str | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    n -= 1
    return _decode_utf8(buf, pos, n), pos + n


def write_string(b: bytearray, s: str) -> None:
    e = s.encode()
    if len(e) > 0x7FFF:
        raise ValueError("string longer than 32767 bytes")
    b += INT16.pack(len(e))
    b += e


def write_nullable_string(b: bytearray, s: str | None) -> None:
    if s is None:
        b += b"\xff\xff"
    else:
        write_string(b, s)


def write_compact_string(b: bytearray, s: str) -> None:
    e = s.encode()
    n = len(e) + 1
    if n < 0x80:
        b.append(n)
    else:
        write_uvarint(b, n)
    b += e


def write_compact_nullable_string(b: bytearray, s: str | None) -> None:
    if s is None:
        b.append(0)
    else:
        write_compact_string(b, s)


# -- bytes -------------------------------------------------------------------------------
# Bytes fields decode to ``bytes`` (small, owned values such as group assignments);
# records fields decode to zero-copy memoryview slices of the frame.


def _slice(buf, pos: int, n: int, what: str):
    if n > len(buf) - pos:
        raise short(what)
    return buf[pos : pos + n]


def read_bytes(buf, pos: int) -> tuple[bytes, int]:
    v, pos = read_nullable_bytes(buf, pos)
    if v is None:
        raise ProtocolError("null for non-nullable bytes")
    return v, pos


def read_nullable_bytes(buf, pos: int) -> tuple[bytes | None, int]:
    try:
        (n,) = INT32.unpack_from(buf, pos)
    except struct.error:
        raise short("bytes length") from None
    pos += 4
    if n < 0:
        if n == -1:
            return None, pos
        raise ProtocolError(f"negative bytes length {n}")
    return bytes(_slice(buf, pos, n, "bytes")), pos + n


def read_compact_bytes(buf, pos: int) -> tuple[bytes, int]:
    v, pos = read_compact_nullable_bytes(buf, pos)
    if v is None:
        raise ProtocolError("null for non-nullable compact bytes")
    return v, pos


def read_compact_nullable_bytes(buf, pos: int) -> tuple[bytes | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    n -= 1
    return bytes(_slice(buf, pos, n, "bytes")), pos + n


def read_records(buf, pos: int) -> tuple[memoryview | None, int]:
    try:
        (n,) = INT32.unpack_from(buf, pos)
    except struct.error:
        raise short("records length") from None
    pos += 4
    if n < 0:
        if n == -1:
            return None, pos
        raise ProtocolError(f"negative records length {n}")
    return _slice(buf, pos, n, "records"), pos + n


def read_compact_records(buf, pos: int) -> tuple[memoryview | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    n -= 1
    return _slice(buf, pos, n, "records"), pos + n


def write_bytes(b: bytearray, v) -> None:
    b += INT32.pack(len(v))
    b += v


def write_nullable_bytes(b: bytearray, v) -> None:
    if v is None:
        b += b"\xff\xff\xff\xff"
    else:
        b += INT32.pack(len(v))
        b += v


def write_compact_bytes(b: bytearray, v) -> None:
    write_uvarint(b, len(v) + 1)
    b += v


def write_compact_nullable_bytes(b: bytearray, v) -> None:
    if v is None:
        b.append(0)
    else:
        write_uvarint(b, len(v) + 1)
        b += v


@runtime_checkable  # for tests; the encoder and the transports never check it at run time
class FileRegion(Protocol):
    """A byte range of an open file: all a transport needs to send it without copying it
    (``os.sendfile``), or to read it (``os.pread``) where it cannot. storage's ``FileSlice``
    is one, structurally: storage does not import protocol, nor protocol storage."""

    @property
    def position(self) -> int: ...  # where the range starts in the file

    @property
    def size(self) -> int: ...  # bytes in the range

    def fileno(self) -> int: ...  # owned by its maker: the transport never closes it


class RecordsRef:
    """A records value the encoder does not copy: a ``FileRegion`` the transport sends.

    The encoder writes the length prefix (``nbytes``) and then emits the object itself as
    its own chunk of the frame (``frames.encode_response``); the connection hands that
    chunk to its transport, which sends ``region`` from the file. The encoder only reads
    ``nbytes``, so a test may subclass this with ``nbytes`` alone.
    """

    __slots__ = ("region", "nbytes")

    def __init__(self, region: FileRegion) -> None:
        self.region = region
        self.nbytes = region.size

    def __repr__(self) -> str:
        return f"RecordsRef({self.region!r})"


def _records_len(v) -> int:
    return v.nbytes if isinstance(v, RecordsRef) else len(v)


def write_records(b: bytearray, v, holes: list) -> None:
    if v is None:
        b += b"\xff\xff\xff\xff"
        return
    if isinstance(v, RecordsRef):
        b += INT32.pack(v.nbytes)
        holes.append((len(b), v))
    else:
        b += INT32.pack(len(v))
        b += v


def write_compact_records(b: bytearray, v, holes: list) -> None:
    if v is None:
        b.append(0)
        return
    if isinstance(v, RecordsRef):
        write_uvarint(b, v.nbytes + 1)
        holes.append((len(b), v))
    else:
        write_uvarint(b, len(v) + 1)
        b += v


# -- uuid --------------------------------------------------------------------------------

ZERO_UUID = uuid.UUID(int=0)


def read_uuid(buf, pos: int) -> tuple[uuid.UUID, int]:
    raw = buf[pos : pos + 16]
    if len(raw) != 16:
        raise short("uuid")
    raw = bytes(raw)
    if raw == b"\x00" * 16:
        return ZERO_UUID, pos + 16
    return uuid.UUID(bytes=raw), pos + 16


def write_uuid(b: bytearray, v: uuid.UUID) -> None:
    b += v.bytes


# -- tagged fields -----------------------------------------------------------------------


def read_tag_section(buf, pos: int) -> tuple[list[tuple[int, memoryview]], int]:
    """The raw (tag, value bytes) pairs of a tagged-field section."""
    count, pos = read_uvarint(buf, pos)
    if count > len(buf) - pos:
        raise ProtocolError(f"tagged-field count {count} does not fit in the frame")
    out = []
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        out.append((tag, _slice(buf, pos, size, "tagged field")))
        pos += size
    return out, pos
