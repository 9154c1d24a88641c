"""Compression codecs of record batch v2, with a cap on decompressed size.

The records section of a batch (everything after the 61-byte header) is compressed as one
stream; the codec id sits in attribute bits 0-2: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
Produce validation decompresses every compressed batch to walk its records, as Kafka's
LogValidator does, then stores the compressed bytes as sent; timestamp lookups and tests
decompress too.

Every decompressor stops at ``max_bytes`` and raises ``RecordTooLargeError`` instead of
inflating a hostile batch into memory.

The client compresses and decompresses with the same functions, so they sit beside the
batch format in ``kafkito.records`` rather than in storage.

Framing facts the clients depend on:
- snappy: the Java client (and kafka-python) wrap raw snappy blocks in xerial's framing
  (magic ``\\x82SNAPPY\\x00``, two int32 versions, then int32-length-prefixed raw blocks);
  librdkafka may send raw snappy. We read both and write the xerial framing.
- lz4: the LZ4 *frame* format. Kafka's Java decoder decompresses each block on its own, so
  we write frames with independent blocks (cramjam's frame encoder links blocks, so the frame
  writer here is our own; blocks are compressed by cramjam's C block codec).
"""

from __future__ import annotations

import struct
import zlib

import cramjam
import zstandard

from .errors import CorruptRecordError, RecordTooLargeError, UnsupportedCompressionTypeError

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
CODEC_IDS = {"none": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}
CODEC_NAMES = {v: k for k, v in CODEC_IDS.items()}

# Default cap on one batch's decompressed records section. Kafka bounds produce requests by
# max.message.bytes on the compressed size only; 64 MiB is generous for real batches and
# small enough that a decompression bomb cannot take the process down.
DECOMPRESSED_BYTES_MAX = 64 * 1024 * 1024


def _too_large(max_bytes: int) -> RecordTooLargeError:
    return RecordTooLargeError(f"decompressed records exceed the cap of {max_bytes} bytes")


# ---------------------------------------------------------------------------------- gzip


def _gzip_compress(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def _gzip_decompress(data: bytes, max_bytes: int) -> bytes:
    out = bytearray()
    rest = bytes(data)
    while rest:
        d = zlib.decompressobj(31)
        try:
            out += d.decompress(rest, max_bytes + 1 - len(out))
        except zlib.error as e:
            raise CorruptRecordError(f"gzip: {e}") from None
        if len(out) > max_bytes:
            raise _too_large(max_bytes)
        if not d.eof:
            if d.unconsumed_tail:  # stopped by max_length with input left
                raise _too_large(max_bytes)
            raise CorruptRecordError("gzip: truncated stream")
        rest = d.unused_data  # concatenated gzip members are legal
    return bytes(out)


# -------------------------------------------------------------------------------- snappy

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK_BYTES = 32 * 1024


def _snappy_compress(data: bytes) -> bytes:
    parts = [_XERIAL_HEADER]
    mv = memoryview(data)
    # At least one block, so that even an empty payload is longer than the bare header (some
    # readers, kafka-python's among them, only recognise the framing when a block follows).
    for start in range(0, max(len(mv), 1), _XERIAL_BLOCK_BYTES):
        block = bytes(cramjam.snappy.compress_raw(mv[start : start + _XERIAL_BLOCK_BYTES]))
        parts.append(struct.pack(">i", len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_raw(block: bytes | memoryview, budget: int, max_bytes: int) -> bytes:
    try:
        n = cramjam.snappy.decompress_raw_len(block)
    except Exception as e:  # cramjam raises its own DecompressionError type
        raise CorruptRecordError(f"snappy: {e}") from None
    if n > budget:
        raise _too_large(max_bytes)
    try:
        return bytes(cramjam.snappy.decompress_raw(block))
    except Exception as e:
        raise CorruptRecordError(f"snappy: {e}") from None


def _snappy_decompress(data: bytes, max_bytes: int) -> bytes:
    mv = memoryview(data)
    if bytes(mv[:8]) != _XERIAL_MAGIC:
        return _snappy_raw(mv, max_bytes, max_bytes)
    pos = 16
    out = bytearray()
    while pos < len(mv):
        if pos + 4 > len(mv):
            raise CorruptRecordError("snappy: truncated xerial block length")
        (n,) = struct.unpack_from(">i", mv, pos)
        pos += 4
        if n < 0 or pos + n > len(mv):
            raise CorruptRecordError("snappy: xerial block overruns the batch")
        out += _snappy_raw(mv[pos : pos + n], max_bytes - len(out), max_bytes)
        pos += n
    return bytes(out)


# ----------------------------------------------------------------------------------- lz4

_LZ4_MAGIC = 0x184D2204
_LZ4_BLOCK_SIZES = {4: 64 * 1024, 5: 256 * 1024, 6: 1024 * 1024, 7: 4 * 1024 * 1024}
_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """XXH32, only used on the few bytes of an LZ4 frame descriptor (its HC byte)."""
    n = len(data)
    pos = 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed & _M32, (seed - _P1) & _M32]
        while pos <= n - 16:
            for i in range(4):
                (lane,) = struct.unpack_from("<I", data, pos)
                v[i] = (_rotl32((v[i] + lane * _P2) & _M32, 13) * _P1) & _M32
                pos += 4
        h = (_rotl32(v[0], 1) + _rotl32(v[1], 7) + _rotl32(v[2], 12) + _rotl32(v[3], 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while pos + 4 <= n:
        (lane,) = struct.unpack_from("<I", data, pos)
        h = (_rotl32((h + lane * _P3) & _M32, 17) * _P4) & _M32
        pos += 4
    while pos < n:
        h = (_rotl32((h + data[pos] * _P5) & _M32, 11) * _P1) & _M32
        pos += 1
    h ^= h >> 15
    h = (h * _P2) & _M32
    h ^= h >> 13
    h = (h * _P3) & _M32
    h ^= h >> 16
    return h


_LZ4_BLOCK_BYTES = 64 * 1024
# FLG: version 01, independent blocks, no block checksum, no content size, no content checksum.
# BD: 64 KiB maximum block size.
_LZ4_DESCRIPTOR = bytes([0b0110_0000, 4 << 4])
_LZ4_HEADER = (
    struct.pack("<I", _LZ4_MAGIC) + _LZ4_DESCRIPTOR + bytes([(xxh32(_LZ4_DESCRIPTOR) >> 8) & 0xFF])
)


def _lz4_compress(data: bytes) -> bytes:
    parts = [_LZ4_HEADER]
    mv = memoryview(data)
    for start in range(0, len(mv), _LZ4_BLOCK_BYTES):
        raw = mv[start : start + _LZ4_BLOCK_BYTES]
        block = bytes(cramjam.lz4.compress_block(raw, store_size=False))
        if len(block) >= len(raw):  # incompressible: store it, flagged by the high bit
            parts.append(struct.pack("<I", len(raw) | 0x8000_0000))
            parts.append(bytes(raw))
        else:
            parts.append(struct.pack("<I", len(block)))
            parts.append(block)
    parts.append(b"\x00\x00\x00\x00")  # end mark
    return b"".join(parts)


def _lz4_decompress(data: bytes, max_bytes: int) -> bytes:
    mv = memoryview(data)
    if len(mv) < 7 or struct.unpack_from("<I", mv, 0)[0] != _LZ4_MAGIC:
        raise CorruptRecordError("lz4: not an LZ4 frame")
    flg, bd = mv[4], mv[5]
    if flg >> 6 != 1:
        raise CorruptRecordError("lz4: unsupported frame version")
    independent = bool(flg & 0x20)
    block_checksum = bool(flg & 0x10)
    pos = 6
    if flg & 0x08:  # content size
        if len(mv) < pos + 8:
            raise CorruptRecordError("lz4: truncated frame descriptor")
        (content_size,) = struct.unpack_from("<Q", mv, pos)
        if content_size > max_bytes:
            raise _too_large(max_bytes)
        pos += 8
    if flg & 0x01:  # dictionary id
        pos += 4
    pos += 1  # HC: old Kafka clients wrote it wrong, and Kafka ignores it for v2 too
    block_max = _LZ4_BLOCK_SIZES.get((bd >> 4) & 0x7)
    if block_max is None:
        raise CorruptRecordError("lz4: invalid block maximum size")
    if not independent:
        # Linked blocks need the whole-frame decoder. The output is still bounded: a frame is at
        # most max.message.bytes long and LZ4 cannot expand more than ~255x.
        try:
            out = bytes(cramjam.lz4.decompress(mv))
        except Exception as e:
            raise CorruptRecordError(f"lz4: {e}") from None
        if len(out) > max_bytes:
            raise _too_large(max_bytes)
        return out
    out = bytearray()
    while True:
        if pos + 4 > len(mv):
            raise CorruptRecordError("lz4: truncated block header")
        (n,) = struct.unpack_from("<I", mv, pos)
        pos += 4
        if n == 0:
            break
        stored = bool(n & 0x8000_0000)
        n &= 0x7FFF_FFFF
        if n > block_max or pos + n > len(mv):
            raise CorruptRecordError("lz4: block overruns the frame")
        block = mv[pos : pos + n]
        pos += n + (4 if block_checksum else 0)
        if stored:
            out += block
        else:
            scratch = bytearray(block_max)
            try:
                written = cramjam.lz4.decompress_block_into(block, scratch)
            except Exception as e:
                raise CorruptRecordError(f"lz4: {e}") from None
            out += memoryview(scratch)[:written]
        if len(out) > max_bytes:
            raise _too_large(max_bytes)
    return bytes(out)


# ---------------------------------------------------------------------------------- zstd

_ZSTD_COMPRESSOR = zstandard.ZstdCompressor(level=3)
_ZSTD_DECOMPRESSOR = zstandard.ZstdDecompressor()


def _zstd_compress(data: bytes) -> bytes:
    return _ZSTD_COMPRESSOR.compress(data)


# Zstandard frame layout (RFC 8878), read here only to bound a frame before decoding it: a
# magic, a header, then blocks with a 3-byte header each (bit 0: last block; bits 1-2: type
# raw/RLE/compressed; bits 3-23: size), then an optional 4-byte checksum. A raw or RLE block
# decodes to exactly its size, a compressed one to at most 128 KiB, so summing the block
# headers bounds the frame's output before any byte is decoded: a frame within the cap is
# decoded in one call (Java and librdkafka frames do not declare their content size), and a
# bomb is refused unread. Skippable frames are skipped, as zstd does.
_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE_MASK, _ZSTD_SKIPPABLE_MAGIC = 0xFFFFFFF0, 0x184D2A50
_ZSTD_BLOCK_MAX_BYTES = 128 * 1024
_RAW, _RLE, _COMPRESSED = 0, 1, 2


def _zstd_frame_bounds(mv: memoryview) -> tuple[int, int, int]:
    """(frame length, fewest, most bytes it decodes to) of the frame at the start of ``mv``."""
    checksum = mv[4] & 0x04
    pos = zstandard.frame_header_size(mv[:18])
    exact = compressed = 0
    while True:
        if pos + 3 > len(mv):
            raise CorruptRecordError("zstd: truncated frame")
        word = mv[pos] | mv[pos + 1] << 8 | mv[pos + 2] << 16
        kind, size = (word >> 1) & 3, word >> 3
        if kind == _COMPRESSED:
            compressed += 1
        elif kind in (_RAW, _RLE):
            exact += size
            size = size if kind == _RAW else 1
        else:
            raise CorruptRecordError("zstd: reserved block type")
        pos += 3 + size
        if word & 1:
            break
    pos += 4 if checksum else 0
    if pos > len(mv):
        raise CorruptRecordError("zstd: truncated frame")
    return pos, exact, exact + compressed * _ZSTD_BLOCK_MAX_BYTES


def _zstd_read(frame: memoryview, max_bytes: int) -> bytes:
    """Decode one whole frame, stopping after ``max_bytes`` of output."""
    parts = []
    size = 0
    with _ZSTD_DECOMPRESSOR.stream_reader(frame) as reader:
        while size < max_bytes:
            part = reader.read(max_bytes - size)
            if not part:
                break
            parts.append(part)
            size += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _zstd_decompress(data: bytes, max_bytes: int) -> bytes:
    mv = memoryview(data)
    frames = []
    size = 0
    while len(mv):  # one iteration per frame (frames may be concatenated)
        if len(mv) < 8:
            raise CorruptRecordError("zstd: truncated frame")
        (magic,) = struct.unpack_from("<I", mv, 0)
        if magic & _ZSTD_SKIPPABLE_MASK == _ZSTD_SKIPPABLE_MAGIC:
            mv = mv[8 + struct.unpack_from("<I", mv, 4)[0]:]
            continue
        if magic != _ZSTD_MAGIC:
            raise CorruptRecordError("zstd: not a zstd frame")
        try:
            length, fewest, most = _zstd_frame_bounds(mv)
            declared = zstandard.frame_content_size(mv[:18])
        except zstandard.ZstdError as e:
            raise CorruptRecordError(f"zstd: {e}") from None
        allowed = max_bytes - size
        if fewest > allowed or declared > allowed:
            raise _too_large(max_bytes)  # refused unread
        # Decoding stops one byte past what the cap leaves; the bound usually sits far below.
        limit = min(most, allowed)
        try:
            out = _zstd_read(mv[:length], limit + 1)
        except zstandard.ZstdError as e:
            raise CorruptRecordError(f"zstd: {e}") from None
        if len(out) > limit:
            if limit == allowed:
                raise _too_large(max_bytes)
            raise CorruptRecordError("zstd: a block decodes past the block size limit")
        size += len(out)
        frames.append(out)
        mv = mv[length:]
    return frames[0] if len(frames) == 1 else b"".join(frames)


# ------------------------------------------------------------------------------- dispatch

_COMPRESS = {GZIP: _gzip_compress, SNAPPY: _snappy_compress, LZ4: _lz4_compress, ZSTD: _zstd_compress}
_DECOMPRESS = {
    GZIP: _gzip_decompress,
    SNAPPY: _snappy_decompress,
    LZ4: _lz4_decompress,
    ZSTD: _zstd_decompress,
}


def compress(codec: int, data: bytes) -> bytes:
    if codec == NONE:
        return bytes(data)
    try:
        return _COMPRESS[codec](data)
    except KeyError:
        raise UnsupportedCompressionTypeError(f"unknown compression codec id {codec}") from None


def decompress(codec: int, data: bytes | memoryview, max_bytes: int = DECOMPRESSED_BYTES_MAX) -> bytes:
    if codec == NONE:
        if len(data) > max_bytes:
            raise _too_large(max_bytes)
        return bytes(data)
    fn = _DECOMPRESS.get(codec)
    if fn is None:
        raise UnsupportedCompressionTypeError(f"unknown compression codec id {codec}")
    return fn(data, max_bytes)
