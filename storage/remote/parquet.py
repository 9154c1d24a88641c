"""The Parquet cold tier: one offloaded segment as one Parquet file, for DuckDB/Spark/Athena.

Theory of operation.

With ``remote.storage.parquet.enable`` the uploader also writes ``<base offset>.parquet``
beside each segment it offloads (same key stem, same lifetime: retention, DeleteRecords and
DeleteTopics remove it with the segment). One row per record, in offset order:

=============  ====================================  ==========================================
column         type                                  from
=============  ====================================  ==========================================
partition      int32                                 the partition
offset         int64                                 the record's offset
timestamp      timestamp[ms, UTC]                    the record's timestamp (LogAppendTime
                                                     topics: the batch's max timestamp)
key            binary (null for a null key)          the record key, as produced
value          binary (null for a tombstone)         the record value, as produced
headers        list<struct<key: string,              the record headers
               value: binary>>
=============  ====================================  ==========================================

With ``remote.storage.parquet.json.columns=true`` each value that is a JSON object also
gives its top-level fields as columns after these (a field whose name is taken gets the
prefix ``value.``). A field's column has the type its values share (bool, int64, double,
string); a field whose values mix types, or hold objects or arrays, is a column of their
JSON text. A value that is not a JSON object leaves these columns null.

Control batches (transaction markers) hold no user records and give no rows. Reading the
records decompresses each batch once; the segment's own bytes are uploaded unchanged.
pyarrow is imported only when a topic asks for Parquet.
"""

from __future__ import annotations

import json
from typing import Iterable

from kafkito.records.batch import LOG_APPEND_TIME, RecordBatch
from kafkito.records.codecs import DECOMPRESSED_BYTES_MAX

BASE_COLUMNS = ("partition", "offset", "timestamp", "key", "value", "headers")


def _json_columns(values: list[bytes | None]) -> dict[str, list]:
    parsed: list[dict | None] = []
    names: dict[str, None] = {}
    for v in values:
        obj = None
        if v is not None:
            try:
                obj = json.loads(v)
            except (ValueError, UnicodeDecodeError):
                obj = None
        if not isinstance(obj, dict):
            obj = None
        parsed.append(obj)
        if obj:
            names.update(dict.fromkeys(obj))
    columns: dict[str, list] = {}
    for name in names:
        col = [None if o is None else o.get(name) for o in parsed]
        kinds = {type(x) for x in col if x is not None}
        if kinds == {int, float}:
            col = [None if x is None else float(x) for x in col]
        elif len(kinds) > 1 or kinds & {dict, list}:
            col = [None if x is None else json.dumps(x, separators=(",", ":")) for x in col]
        column = name if name not in BASE_COLUMNS else f"value.{name}"
        columns[column] = col
    return columns


def segment_to_parquet(batches: Iterable[RecordBatch], partition: int, *,
                       json_columns: bool = False,
                       decompressed_max: int = DECOMPRESSED_BYTES_MAX) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    offsets, timestamps, keys, values, headers = [], [], [], [], []
    for batch in batches:
        if batch.is_control:
            continue
        lat = batch.timestamp_type == LOG_APPEND_TIME
        max_ts = batch.max_timestamp if lat else None
        for rec in batch.records(decompressed_max):
            offsets.append(rec.offset)
            timestamps.append(max_ts if lat else rec.timestamp)
            keys.append(rec.key)
            values.append(rec.value)
            headers.append([{"key": k, "value": v} for k, v in rec.headers])
    header_type = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
    arrays = {
        "partition": pa.array([partition] * len(offsets), pa.int32()),
        "offset": pa.array(offsets, pa.int64()),
        "timestamp": pa.array(timestamps, pa.timestamp("ms", tz="UTC")),
        "key": pa.array(keys, pa.binary()),
        "value": pa.array(values, pa.binary()),
        "headers": pa.array(headers, header_type),
    }
    if json_columns:
        for name, col in _json_columns(values).items():
            arrays[name] = pa.array(col)
    table = pa.table(arrays)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()
