"""Compression codecs of record batch v2, with a cap on decompressed size.

The records section of a batch (everything after the 61-byte header) is compressed as one
stream; the codec id sits in attribute bits 0-2: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
Storage only decompresses where a feature must look inside a batch (compacted topics'
key check, timestamp lookups, tests); the produce path passes compressed bytes through.

Every decompressor stops at ``max_bytes`` and raises ``RecordTooLargeError`` instead of
inflating a hostile batch into memory.

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


# Compressed bytes fed to the decoder per step when a frame does not declare its size. zstd
# can expand a few bytes into a 128 KiB block, so small steps keep the output between two
# cap checks bounded (~32 MiB worst case).
_ZSTD_FEED_BYTES = 1024
_ZSTD_FRAME_HEADER_MAX_BYTES = 18


def _zstd_frame(mv: memoryview, budget: int, max_bytes: int) -> tuple[bytes, memoryview]:
    """Decompress the frame at the start of ``mv``; return it and the bytes after it."""
    declared = zstandard.frame_content_size(mv[:_ZSTD_FRAME_HEADER_MAX_BYTES])
    d = _ZSTD_DECOMPRESSOR.decompressobj()
    if declared >= 0:
        # One call: zstd refuses a frame that decodes past its declared size, so the output
        # is bounded by the check below (what librdkafka sends: the fast path).
        if declared > budget:
            raise _too_large(max_bytes)
        out = d.decompress(mv)
        if not d.eof:
            raise CorruptRecordError("zstd: truncated frame")
        return out, mv[len(mv) - len(d.unused_data):]
    parts = []
    size = pos = 0
    while not d.eof:
        if pos >= len(mv):
            raise CorruptRecordError("zstd: truncated frame")
        chunk = mv[pos : pos + _ZSTD_FEED_BYTES]
        part = d.decompress(chunk)
        size += len(part)
        if size > budget:
            raise _too_large(max_bytes)
        parts.append(part)
        pos += len(chunk)
    return b"".join(parts), mv[pos - len(d.unused_data):]


def _zstd_decompress(data: bytes, max_bytes: int) -> bytes:
    mv = memoryview(data)
    frames = []
    size = 0
    try:
        while len(mv):  # one iteration per frame (frames may be concatenated)
            out, mv = _zstd_frame(mv, max_bytes - size, max_bytes)
            size += len(out)
            frames.append(out)
    except zstandard.ZstdError as e:
        raise CorruptRecordError(f"zstd: {e}") from None
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
