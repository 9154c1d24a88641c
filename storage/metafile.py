"""Small metadata files (topic metadata, cluster id, log start offset): versioned,
checksummed, written atomically.

Layout: one ASCII header line ``kafkito-meta <version> <kind> <crc32c hex>\\n`` followed by a
JSON body; the CRC-32C covers the body. Writes go to ``<path>.tmp``, are fsynced, renamed
over ``path``, and the directory is fsynced, so a crash leaves either the old or the new file,
never a torn one. A file that fails its checks raises ``CorruptMetadataError``: metadata is
not derived data, so we refuse to guess.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec
from crc32c import crc32c

from .errors import CorruptMetadataError
from .fileio import DEFAULT_IO, FileIO

FORMAT_VERSION = 1
_PREFIX = b"kafkito-meta"
TMP_SUFFIX = ".tmp"


def encode(kind: str, body: Any) -> bytes:
    payload = msgspec.json.encode(body, order="sorted")
    header = b"%s %d %s %08x\n" % (_PREFIX, FORMAT_VERSION, kind.encode(), crc32c(payload))
    return header + payload


def decode(data: bytes, kind: str, path: str = "<bytes>") -> Any:
    newline = data.find(b"\n")
    if newline < 0:
        raise CorruptMetadataError(f"{path}: no header line")
    parts = data[:newline].split(b" ")
    if len(parts) != 4 or parts[0] != _PREFIX:
        raise CorruptMetadataError(f"{path}: not a kafkito metadata file")
    try:
        version = int(parts[1])
        crc = int(parts[3], 16)
    except ValueError:
        raise CorruptMetadataError(f"{path}: malformed header") from None
    if version != FORMAT_VERSION:
        raise CorruptMetadataError(f"{path}: unsupported metadata version {version}")
    if parts[2].decode(errors="replace") != kind:
        raise CorruptMetadataError(f"{path}: holds {parts[2]!r}, expected {kind!r}")
    payload = data[newline + 1 :]
    if crc32c(payload) != crc:
        raise CorruptMetadataError(f"{path}: checksum mismatch (torn or corrupted file)")
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError as e:
        raise CorruptMetadataError(f"{path}: {e}") from None


def write_atomic(path: str, data: bytes, io: FileIO = DEFAULT_IO) -> None:
    """Raises OSError when any step fails, fsyncs included: the caller must not treat the
    file as written. A half-written temp file is removed (on a full disk it holds space)."""
    tmp = path + TMP_SUFFIX
    fd = io.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        try:
            io.pwritev(fd, [data], 0)
            io.fsync(fd)
        finally:
            io.close(fd)
        io.rename(tmp, path)
    except OSError:
        try:
            io.unlink(tmp)
        except OSError:
            pass
        raise
    io.fsync_dir(os.path.dirname(path) or ".")


def write(path: str, kind: str, body: Any, io: FileIO = DEFAULT_IO) -> None:
    write_atomic(path, encode(kind, body), io)


def read(path: str, kind: str) -> Any:
    with open(path, "rb") as f:
        return decode(f.read(), kind, path)
