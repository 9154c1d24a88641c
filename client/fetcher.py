"""From a Fetch response's records bytes to ``ConsumerRecord``s: pure decoding, no I/O.

Theory of operation. A partition's records field is a run of v2 batches; the last one may
be cut short by the fetch's byte limits (Kafka sends whole batches up to the limit and
then a prefix of the next), so ``split_batches`` stops quietly at a batch that does not
fit instead of raising. Each batch is CRC-checked (``check.crcs``), decompressed with the
shared codecs' cap, and its records decoded with ``kafkito.records``.

``decode_partition`` applies the consumer's view of the log:

* records below the fetch offset are dropped (a batch starts where it starts; the
  consumer asked for an offset inside it);
* control batches (transaction markers) are never handed out;
* with ``read_committed`` the response's aborted-transaction list names, per producer, the
  first offset of each aborted transaction: from that offset on, that producer's
  transactional batches are skipped until its ABORT marker (Kafka's ``Fetcher`` rule).

It returns the records and the offset to fetch next (past the last whole batch, so a
batch of only aborted or compacted-away records still moves the position).
"""

from __future__ import annotations

import struct

from kafkito.records.batch import (
    CONTROL_BIT,
    HEADER,
    HEADER_BYTES,
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
    iter_records,
)
from kafkito.records import codecs
from kafkito.records.reccodec import decode_records
from kafkito.records.errors import CorruptRecordError
from crc32c import crc32c

from .types import ConsumerRecord

__all__ = ["decode_partition", "split_batches"]

_CONTROL_KEY = struct.Struct(">hh")
ABORT_MARKER = 0


def split_batches(blob) -> list[tuple[tuple, memoryview]]:
    """(header fields, batch bytes) of every whole batch in ``blob``; a truncated tail is dropped."""
    mv = memoryview(blob) if blob is not None else memoryview(b"")
    out = []
    pos = 0
    end = len(mv)
    while end - pos >= HEADER_BYTES:
        fields = HEADER.unpack_from(mv, pos)
        size = fields[1] + LOG_OVERHEAD
        if fields[3] != 2:
            raise CorruptRecordError(f"record batch magic {fields[3]} is not supported (only v2)")
        if pos + size > end:
            break
        out.append((fields, mv[pos:pos + size]))
        pos += size
    return out


def decode_partition(topic: str, partition: int, records_blob, fetch_offset: int, *,
                     aborted: list | None = None, read_committed: bool = False,
                     check_crcs: bool = True) -> tuple[list[ConsumerRecord], int]:
    """The records at or past ``fetch_offset`` and the next offset to fetch."""
    out: list[ConsumerRecord] = []
    next_offset = fetch_offset
    aborted_queue = sorted(((a.first_offset, a.producer_id) for a in aborted or ()), reverse=True) \
        if read_committed else []
    aborting: set[int] = set()
    for fields, buf in split_batches(records_blob):
        (base_offset, _length, leader_epoch, _magic, crc, attributes, last_delta, base_ts, max_ts,
         producer_id, _epoch, _seq, count) = fields
        last_offset = base_offset + last_delta
        if last_offset < fetch_offset:
            continue
        if check_crcs and crc32c(buf[21:]) != crc:
            raise CorruptRecordError(f"{topic}-{partition}: batch at offset {base_offset} fails its CRC")
        next_offset = last_offset + 1
        if read_committed:
            while aborted_queue and aborted_queue[-1][0] <= last_offset:
                aborting.add(aborted_queue.pop()[1])
        if attributes & CONTROL_BIT:
            if read_committed and producer_id in aborting:
                section = buf[HEADER_BYTES:]
                for rec in iter_records(section, count, base_offset, base_ts):
                    if rec.key is not None and len(rec.key) >= 4 and \
                            _CONTROL_KEY.unpack_from(rec.key)[1] == ABORT_MARKER:
                        aborting.discard(producer_id)
            continue
        if read_committed and attributes & TRANSACTIONAL_BIT and producer_id in aborting:
            continue
        codec = attributes & 0x07
        section = codecs.decompress(codec, buf[HEADER_BYTES:]) if codec else buf[HEADER_BYTES:]
        log_append = attributes & TIMESTAMP_TYPE_BIT
        out += decode_records(section, count, base_offset, base_ts, max_ts if log_append else -1, fetch_offset,
                              ConsumerRecord, topic, partition, 1 if log_append else 0, leader_epoch)
    return out, next_offset
