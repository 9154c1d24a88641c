"""Encoding and decoding a batch's records section in bulk: C when built, Python otherwise.

``encode_records(records, base_timestamp)`` writes ``(key, value, headers, timestamp_ms)``
tuples as the records section of a v2 batch (offset deltas 0, 1, 2, ...);
``decode_records(...)`` reads a section into instances of a named-tuple class in one
call. They are the client's per-record loops (building produce batches, reading fetched
ones), so they have a C implementation (``_reccodec.c``, built by ``pip install -e .``);
``batch.encode_record`` and ``batch.iter_records`` are the reference they are tested
against and the fallback without a compiler.
"""

from __future__ import annotations

from .batch import encode_record, iter_records
from .errors import CorruptRecordError

__all__ = ["ACCELERATED", "decode_records", "decode_records_py", "encode_records", "encode_records_py"]

try:
    from . import _reccodec
except ImportError:  # pragma: no cover - built without a compiler
    _reccodec = None

ACCELERATED = _reccodec is not None


def encode_records_py(records, base_timestamp: int) -> bytes:
    out = bytearray()
    for i, (key, value, headers, ts) in enumerate(records):
        encode_record(out, i, ts - base_timestamp, key, value, headers)
    return bytes(out)


def decode_records_py(section, count, base_offset, base_timestamp, log_append_time, min_offset, cls, topic,
                      partition, timestamp_type, leader_epoch) -> list:
    lat = log_append_time if log_append_time >= 0 else None
    return [cls(topic, partition, r.offset, r.timestamp, r.key, r.value, r.headers, timestamp_type, leader_epoch)
            for r in iter_records(section, count, base_offset, base_timestamp, lat) if r.offset >= min_offset]


if ACCELERATED:
    encode_records = _reccodec.encode_records

    def decode_records(section, count, base_offset, base_timestamp, log_append_time, min_offset, cls, topic,
                       partition, timestamp_type, leader_epoch) -> list:
        try:
            return _reccodec.decode_records(section, count, base_offset, base_timestamp, log_append_time,
                                            min_offset, cls, topic, partition, timestamp_type, leader_epoch)
        except ValueError as exc:
            raise CorruptRecordError(str(exc)) from None
else:  # pragma: no cover
    encode_records = encode_records_py
    decode_records = decode_records_py
