"""The record walk of produce validation: every record of a records section, no objects.

Theory of operation. Kafka's LogValidator reads every record of a produce batch: the
declared count must match the records, each record's fields must add up to its length
varint, and each timestamp (and, on compacted topics, each key) is checked. kafkito stores
batches as sent, so the walk only *looks*: ``scan(section, count)`` follows the length
varints, checks each record's structure (attributes byte, timestamp delta, offset delta,
key, value, headers), that offset deltas count 0, 1, 2, ... (Kafka rewrites a compressed
batch whose inner offsets disagree; a pass-through broker must refuse it instead), and
that exactly ``count`` records fill the section. It returns ``(min_timestamp_delta,
max_timestamp_delta, keyless_records)``: enough for the validator to decide timestamps and
keys for the whole batch without a second pass in the common case.

``record_facts`` yields ``(timestamp_delta, key_is_null)`` per record: the slow path that
names the offending records in KIP-467 ``record_errors``, taken only when a batch fails.

``scan`` is the C accelerator ``_recscan.scan`` when it is built (``pip install -e .``
compiles it; about 10 ns a record instead of ~500 ns) and ``scan_py`` otherwise. Both raise
``RecordScanError(message, record_index)``; tests compare the two on mutated batches.

The walk reads the record format and knows nothing of logs, so it lives in
``kafkito.records``; storage's validator.py calls it and decides what its results mean.
"""

from __future__ import annotations

from typing import Iterator

__all__ = ["RecordScanError", "ACCELERATED", "key_hash", "record_facts", "scan", "scan_py"]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_U64 = 2**64 - 1


class RecordScanError(ValueError):
    """The records do not parse; ``args == (message, record_index)``."""

    @property
    def message(self) -> str:
        return self.args[0]

    @property
    def record_index(self) -> int:
        return self.args[1]


_STRUCTURE = "Found invalid record structure"


def _varint(buf, pos: int, end: int, max_bytes: int) -> tuple[int, int]:
    v = 0
    shift = 0
    for _ in range(max_bytes):
        if pos >= end:
            raise IndexError
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            v &= _U64  # as the C walk: bits past 64 fall off
            return (v >> 1) ^ -(v & 1), pos
        shift += 7
    raise IndexError


def _int32(buf, pos: int, end: int) -> tuple[int, int]:
    v, pos = _varint(buf, pos, end, 5)
    if not INT32_MIN <= v <= INT32_MAX:
        raise IndexError
    return v, pos


def _skip(buf, pos: int, end: int, nullable: bool) -> tuple[bool, int]:
    n, pos = _int32(buf, pos, end)
    if n < 0:
        if nullable and n == -1:
            return True, pos
        raise IndexError
    if n > end - pos:
        raise IndexError
    return False, pos + n


def record_facts(section, count: int) -> Iterator[tuple[int, bool]]:
    """``(timestamp_delta, key_is_null)`` of each record, validating as ``scan`` does."""
    for ts_delta, key in _walk(section, count):
        yield ts_delta, key is None


FNV64_OFFSET = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3


def key_hash(key: bytes) -> int:
    """FNV-1a 64 of a record key: what ``scan(..., keys=True)`` reports (the C walk computes
    the same); the per-key index (storage/key_index.py) is keyed by it."""
    h = FNV64_OFFSET
    for b in key:
        h = ((h ^ b) * FNV64_PRIME) & _U64
    return h


def _walk(section, count: int) -> Iterator[tuple[int, bytes | memoryview | None]]:
    buf = memoryview(section).cast("B") if not isinstance(section, bytes) else section
    end_all = len(buf)
    pos = 0
    for i in range(count):
        if pos >= end_all:
            raise RecordScanError("Incorrect declared batch size, premature EOF reached", i)
        try:
            length, pos = _int32(buf, pos, end_all)
            if length < 0:
                raise IndexError
        except IndexError:
            raise RecordScanError(_STRUCTURE, i) from None
        if length > end_all - pos:
            raise RecordScanError("Invalid record size: the record overruns the batch", i)
        end = pos + length
        try:
            if pos >= end:
                raise IndexError
            pos += 1  # record attributes: unused by format v2
            ts_delta, pos = _varint(buf, pos, end, 10)
            offset_delta, pos = _int32(buf, pos, end)
        except IndexError:
            raise RecordScanError(_STRUCTURE, i) from None
        if offset_delta != i:
            raise RecordScanError("Record offset delta does not match its position in the batch", i)
        try:
            key_at = pos
            key_null, pos = _skip(buf, pos, end, True)
            key = None
            if not key_null:
                _, key_start = _int32(buf, key_at, end)
                key = buf[key_start:pos]
            _, pos = _skip(buf, pos, end, True)
        except IndexError:
            raise RecordScanError(_STRUCTURE, i) from None
        try:
            n_headers, pos = _int32(buf, pos, end)
            if n_headers < 0 or n_headers > end - pos:
                raise IndexError
        except IndexError:
            raise RecordScanError("Found invalid number of record headers", i) from None
        try:
            for _ in range(n_headers):
                _, pos = _skip(buf, pos, end, False)
                _, pos = _skip(buf, pos, end, True)
        except IndexError:
            raise RecordScanError(_STRUCTURE, i) from None
        if pos != end:
            raise RecordScanError("Invalid record size: the fields disagree with the record length", i)
        yield ts_delta, key
    if pos != end_all:
        raise RecordScanError("Incorrect declared batch size, records still remaining in file", count)


def scan_py(section, count: int, keys: bool = False):
    """The reference implementation of ``scan``: ``(min_ts_delta, max_ts_delta, keyless)``,
    and with ``keys`` a fourth item, the keys' hashes (``key_hash``) in record order, null
    keys and a repeat of the previous record's key left out."""
    ts_min = ts_max = None
    keyless = 0
    hashes: list[int] = []
    for ts_delta, key in _walk(section, count):
        if ts_min is None or ts_delta < ts_min:
            ts_min = ts_delta
        if ts_max is None or ts_delta > ts_max:
            ts_max = ts_delta
        if key is None:
            keyless += 1
        elif keys:
            h = key_hash(key)
            if not hashes or hashes[-1] != h:
                hashes.append(h)
    if ts_min is None:
        ts_min = ts_max = 0
    return (ts_min, ts_max, keyless, hashes) if keys else (ts_min, ts_max, keyless)


try:
    from ._recscan import scan as _scan_c
except ImportError:  # not built: the pure-Python walk (correct, ~50x slower)
    _scan_c = None

ACCELERATED = _scan_c is not None


def _scan_accelerated(section, count: int, keys: bool = False):
    try:
        return _scan_c(section, count, keys)
    except ValueError as e:
        raise RecordScanError(*e.args) from None


scan = _scan_accelerated if ACCELERATED else scan_py
