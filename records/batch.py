"""Record batch v2 (magic 2): a header view, stamping, building and record iteration.

The format is shared: storage validates, stamps and serves batches in it and the client
builds and parses them, so this module, like all of ``kafkito.records``, imports nothing
else of ours.

Theory of operation. A produce request carries a blob of record batches; storage's
validator.py checks them (records included) and the append path stamps only the fixed
61-byte header of each:

    offset  size  field
       0      8   baseOffset              stamped by the log
       8      4   batchLength             bytes after this field (= size - 12)
      12      4   partitionLeaderEpoch    stamped by the log
      16      1   magic                   2 (also byte 16 in magic 0/1 message sets)
      17      4   crc                     CRC-32C of bytes 21..end
      21      2   attributes              codec bits 0-2, timestampType bit 3,
                                          isTransactional bit 4, isControl bit 5
      23      4   lastOffsetDelta
      27      8   baseTimestamp
      35      8   maxTimestamp            stamped for LogAppendTime topics
      43      8   producerId
      51      2   producerEpoch
      53      4   baseSequence
      57      4   recordsCount
      61          records (compressed as one stream when the codec is not none)

Because the CRC starts at ``attributes``, stamping the base offset and the leader epoch keeps
the CRC valid; LogAppendTime changes attributes and maxTimestamp, so it recomputes the CRC
(one pass of the C ``crc32c`` over the batch, still no per-record Python work). Records are
only decoded (varints, headers, decompression with a cap) where a feature must look inside.

Each record: length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
keyLength varint (-1 = null), key, valueLength varint, value, header count varint, then per
header a key (varint length + UTF-8) and a value (varint length, -1 = null). All varints are
zigzag-encoded.
"""

from __future__ import annotations

import struct
from typing import Iterable, Iterator, NamedTuple, Sequence

from crc32c import crc32c

from . import codecs
from .codecs import CODEC_IDS, CODEC_NAMES, DECOMPRESSED_BYTES_MAX
from .errors import CorruptRecordError

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_BYTES = HEADER.size  # 61
assert HEADER_BYTES == 61
# The 12 bytes before partitionLeaderEpoch are not counted by batchLength.
LOG_OVERHEAD = 12
# Smallest legal batchLength: the header minus baseOffset and batchLength.
BATCH_LENGTH_MIN = HEADER_BYTES - LOG_OVERHEAD
MAGIC = 2

BASE_OFFSET_AT = 0
BATCH_LENGTH_AT = 8
LEADER_EPOCH_AT = 12
MAGIC_AT = 16
CRC_AT = 17
ATTRIBUTES_AT = 21
LAST_OFFSET_DELTA_AT = 23
BASE_TIMESTAMP_AT = 27
MAX_TIMESTAMP_AT = 35
PRODUCER_ID_AT = 43
RECORDS_COUNT_AT = 57

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20
DELETE_HORIZON_BIT = 0x40

CREATE_TIME = 0
LOG_APPEND_TIME = 1

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")


# ------------------------------------------------------------------------------ varints


def zigzag_encode(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def write_varint(out: bytearray, n: int) -> None:
    """Append a zigzag varint (Kafka's varint and varlong share the encoding)."""
    v = zigzag_encode(n) & 0xFFFF_FFFF_FFFF_FFFF
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def read_varint(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """Read a zigzag varint at ``pos`` without passing ``end``; returns (value, next_pos)."""
    shift = 0
    v = 0
    while True:
        if pos >= end:
            raise CorruptRecordError("record truncated inside a varint")
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return (v >> 1) ^ -(v & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptRecordError("varint longer than 10 bytes")


# ------------------------------------------------------------------------------- records


class Record(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def _read_bytes(buf, pos: int, end: int) -> tuple[bytes | None, int]:
    n, pos = read_varint(buf, pos, end)
    if n < 0:
        return None, pos
    if pos + n > end:
        raise CorruptRecordError("record field overruns the record")
    return bytes(buf[pos : pos + n]), pos + n


def iter_records(
    buf: bytes | memoryview,
    count: int,
    base_offset: int,
    base_timestamp: int,
    log_append_time_ms: int | None = None,
) -> Iterator[Record]:
    """Decode ``count`` records from an uncompressed records section."""
    end_all = len(buf)
    pos = 0
    for _ in range(count):
        length, pos = read_varint(buf, pos, end_all)
        end = pos + length
        if length < 0 or end > end_all:
            raise CorruptRecordError("record length overruns the batch")
        pos += 1  # record attributes: unused by format v2
        ts_delta, pos = read_varint(buf, pos, end)
        offset_delta, pos = read_varint(buf, pos, end)
        key, pos = _read_bytes(buf, pos, end)
        value, pos = _read_bytes(buf, pos, end)
        n_headers, pos = read_varint(buf, pos, end)
        if n_headers < 0:
            raise CorruptRecordError("negative header count")
        headers = []
        for _ in range(n_headers):
            hkey, pos = _read_bytes(buf, pos, end)
            if hkey is None:
                raise CorruptRecordError("null header key")
            hval, pos = _read_bytes(buf, pos, end)
            # As Java's String(bytes, UTF_8): the broker does not refuse such a key on produce.
            headers.append((hkey.decode("utf-8", "replace"), hval))
        if pos != end:
            raise CorruptRecordError("record length disagrees with its fields")
        ts = log_append_time_ms if log_append_time_ms is not None else base_timestamp + ts_delta
        yield Record(base_offset + offset_delta, ts, key, value, headers)
    if pos != end_all:
        raise CorruptRecordError("bytes left over after the last record")


def encode_record(
    out: bytearray,
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes | None]] | None,
) -> None:
    body = bytearray(b"\x00")  # attributes
    write_varint(body, timestamp_delta)
    write_varint(body, offset_delta)
    for field in (key, value):
        if field is None:
            write_varint(body, -1)
        else:
            write_varint(body, len(field))
            body += field
    headers = list(headers or ())
    write_varint(body, len(headers))
    for hkey, hval in headers:
        raw = hkey.encode("utf-8")
        write_varint(body, len(raw))
        body += raw
        if hval is None:
            write_varint(body, -1)
        else:
            write_varint(body, len(hval))
            body += hval
    write_varint(out, len(body))
    out += body


# -------------------------------------------------------------------------------- batches


class RecordBatch:
    """A read-only view of one batch. ``buf`` starts at the batch; bytes past the batch end
    are ignored. Header fields are parsed eagerly (one ``struct`` call)."""

    __slots__ = (
        "buf",
        "base_offset",
        "batch_length",
        "partition_leader_epoch",
        "magic",
        "crc",
        "attributes",
        "last_offset_delta",
        "base_timestamp",
        "max_timestamp",
        "producer_id",
        "producer_epoch",
        "base_sequence",
        "records_count",
    )

    def __init__(self, buf: bytes | bytearray | memoryview):
        if len(buf) < HEADER_BYTES:
            raise CorruptRecordError(f"batch shorter than its {HEADER_BYTES}-byte header")
        (
            self.base_offset,
            self.batch_length,
            self.partition_leader_epoch,
            self.magic,
            self.crc,
            self.attributes,
            self.last_offset_delta,
            self.base_timestamp,
            self.max_timestamp,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
            self.records_count,
        ) = HEADER.unpack_from(buf, 0)
        size = self.batch_length + LOG_OVERHEAD
        if self.batch_length < BATCH_LENGTH_MIN or size > len(buf):
            raise CorruptRecordError(f"batch length {self.batch_length} is impossible here")
        self.buf = memoryview(buf)[:size]

    @property
    def size_bytes(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    @property
    def compression_id(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def compression(self) -> str:
        return CODEC_NAMES.get(self.compression_id, f"unknown({self.compression_id})")

    @property
    def timestamp_type(self) -> int:
        return LOG_APPEND_TIME if self.attributes & TIMESTAMP_TYPE_BIT else CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & DELETE_HORIZON_BIT)

    def compute_crc(self) -> int:
        return crc32c(self.buf[CRC_AT + 4 :])

    def is_valid(self) -> bool:
        return self.magic == MAGIC and self.compute_crc() == self.crc

    def tobytes(self) -> bytes:
        return self.buf.tobytes()

    def records_section(self, max_decompressed_bytes: int = DECOMPRESSED_BYTES_MAX) -> bytes:
        return codecs.decompress(self.compression_id, self.buf[HEADER_BYTES:], max_decompressed_bytes)

    def records(self, max_decompressed_bytes: int = DECOMPRESSED_BYTES_MAX) -> Iterator[Record]:
        """Decode the records, decompressing (with a cap) when the batch is compressed."""
        section = self.records_section(max_decompressed_bytes)
        lat = self.max_timestamp if self.timestamp_type == LOG_APPEND_TIME else None
        return iter_records(section, self.records_count, self.base_offset, self.base_timestamp, lat)

    def __repr__(self) -> str:
        return (
            f"RecordBatch(base_offset={self.base_offset}, last_offset={self.last_offset}, "
            f"count={self.records_count}, size={self.size_bytes}, {self.compression})"
        )


def iter_batches(blob: bytes | bytearray | memoryview) -> Iterator[RecordBatch]:
    """Split a blob of concatenated batches (no validation beyond lengths)."""
    mv = memoryview(blob)
    pos = 0
    while pos < len(mv):
        batch = RecordBatch(mv[pos:])
        yield batch
        pos += batch.size_bytes


def stamp_header(
    blob: memoryview,
    header,
    base_offset: int,
    leader_epoch: int,
    log_append_time_ms: int | None,
) -> bytearray:
    """A stamped copy of one batch's 61-byte header; the body is written from ``blob`` as is.

    ``header`` is the validator's ``BatchHeader``. Base offset and leader epoch lie outside
    the CRC; LogAppendTime, or a producer's maxTimestamp that disagrees with its records,
    changes bytes inside it, so then the CRC is recomputed (one C pass over the batch)."""
    pos = header.position
    hdr = bytearray(blob[pos : pos + HEADER_BYTES])
    _I64.pack_into(hdr, BASE_OFFSET_AT, base_offset)
    _I32.pack_into(hdr, LEADER_EPOCH_AT, leader_epoch)
    if log_append_time_ms is not None:
        _I16.pack_into(hdr, ATTRIBUTES_AT, header.attributes | TIMESTAMP_TYPE_BIT)
        _I64.pack_into(hdr, MAX_TIMESTAMP_AT, log_append_time_ms)
    elif header.stamp_max_timestamp:
        _I64.pack_into(hdr, MAX_TIMESTAMP_AT, header.max_timestamp)
    else:
        return hdr
    crc = crc32c(blob[pos + HEADER_BYTES : pos + header.size], crc32c(hdr[ATTRIBUTES_AT:]))
    _U32.pack_into(hdr, CRC_AT, crc)
    return hdr


def build_batch(
    records: Sequence[tuple[bytes | None, bytes | None, Iterable[tuple[str, bytes | None]] | None, int]],
    *,
    base_offset: int = 0,
    compression: str | int = "none",
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    is_transactional: bool = False,
    is_control: bool = False,
    timestamp_type: int = CREATE_TIME,
    partition_leader_epoch: int = -1,
) -> bytes:
    """Build one v2 batch from ``(key, value, headers, timestamp_ms)`` tuples."""
    codec = CODEC_IDS[compression] if isinstance(compression, str) else int(compression)
    timestamps = [r[3] for r in records]
    base_ts = timestamps[0] if timestamps else -1
    max_ts = max(timestamps) if timestamps else -1
    from .reccodec import encode_records  # C when built; imported here as it imports this module

    section = encode_records(records, base_ts)
    body = codecs.compress(codec, section) if codec else section
    attributes = codec
    if timestamp_type == LOG_APPEND_TIME:
        attributes |= TIMESTAMP_TYPE_BIT
    if is_transactional:
        attributes |= TRANSACTIONAL_BIT
    if is_control:
        attributes |= CONTROL_BIT
    count = len(records)
    hdr = bytearray(
        HEADER.pack(
            base_offset,
            HEADER_BYTES - LOG_OVERHEAD + len(body),
            partition_leader_epoch,
            MAGIC,
            0,
            attributes,
            count - 1 if count else 0,
            base_ts,
            max_ts,
            producer_id,
            producer_epoch,
            base_sequence,
            count,
        )
    )
    _U32.pack_into(hdr, CRC_AT, crc32c(body, crc32c(hdr[ATTRIBUTES_AT:])))
    return bytes(hdr) + body
