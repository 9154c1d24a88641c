"""``GET /v1/topics/{topic}/keys/{key}/records``: one key's records, through the key index.

Query parameters: ``last=N`` (the newest N, 1..``KEY_RECORDS_LAST_MAX``), ``from=TIME`` and
``to=TIME`` (inclusive; epoch milliseconds or ISO-8601, naive times in UTC), ``partition=P``
(search only P). The key is the path segment, percent-decoded to bytes, so any key can be
asked for. Without ``partition`` every partition of the topic is searched through its
index (a look-up per partition costs a dict probe or a binary search); the usual key lives
in the one partition the Java partitioner picks, and is answered in log order. A key found
in several partitions (a custom partitioner, partitions added later) is answered partition
by partition, ``last`` applying to each.

Answer: ``{"topic", "key", "records": [record_to_json ...], "batches_read"}`` (records in
log order, as records/jsonview.py defines them), up to each partition's high watermark.
Errors: 400 bad parameters, 404 unknown topic or partition, 409 ``KEY_INDEX_NOT_ENABLED``
for a topic without ``key.index.enable`` (a client then scans, as kafkito's CLI does).
Without ``last`` at most ``KEY_RECORDS_MAX`` records are returned; beyond that the answer
is 413 ``TOO_MANY_RECORDS`` (ask with ``last`` or a time range).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import trio

from kafkito.records.jsonview import encode_bytes, parse_time_ms, record_to_json
from kafkito.storage.key_index import read_key_records

from .routes import HttpError, HttpRequest, HttpResponse, Router

__all__ = ["register"]

KEY_RECORDS_LAST_MAX = 100_000
KEY_RECORDS_MAX = 100_000
# Index reads run in worker threads, at most this many at once (the trio thread stays free
# for the Kafka listener).
KEY_READ_THREADS = 2


def _int_param(request: HttpRequest, name: str, low: int, high: int) -> int | None:
    raw = request.one(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400, "INVALID_REQUEST", f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise HttpError(400, "INVALID_REQUEST", f"{name} must be between {low} and {high}, got {value}")
    return value


def _time_param(request: HttpRequest, name: str) -> int | None:
    raw = request.one(name)
    if raw is None:
        return None
    try:
        return parse_time_ms(raw)
    except ValueError:
        raise HttpError(400, "INVALID_REQUEST", f"{name} must be epoch milliseconds or an "
                        f"ISO-8601 time, got {raw!r}") from None


def register(router: Router, state) -> None:
    limiter = trio.CapacityLimiter(KEY_READ_THREADS)

    async def key_records(request: HttpRequest) -> HttpResponse:
        topic = unquote_to_bytes(request.params["topic"]).decode("utf-8", "replace")
        key = unquote_to_bytes(request.params["key"])
        unknown = set(request.query) - {"last", "from", "to", "partition"}
        if unknown:
            raise HttpError(400, "INVALID_REQUEST", f"unknown query parameter(s): {', '.join(sorted(unknown))}")
        last = _int_param(request, "last", 1, KEY_RECORDS_LAST_MAX)
        from_ms = _time_param(request, "from")
        to_ms = _time_param(request, "to")
        if from_ms is not None and to_ms is not None and from_ms > to_ms:
            raise HttpError(400, "INVALID_REQUEST", f"from ({from_ms}) is after to ({to_ms})")
        meta = state.logs.topic(topic)
        if meta is None:
            raise HttpError(404, "UNKNOWN_TOPIC_OR_PARTITION", f"no topic {topic!r}")
        partition = _int_param(request, "partition", 0, 2**31 - 1)
        if partition is not None and partition >= meta.num_partitions:
            raise HttpError(404, "UNKNOWN_TOPIC_OR_PARTITION",
                            f"topic {topic!r} has {meta.num_partitions} partitions, no partition {partition}")
        config = state.logs.topic_config(topic)
        if config is None or not config.key_index_enable:
            raise HttpError(409, "KEY_INDEX_NOT_ENABLED",
                            f"topic {topic!r} has no key index (key.index.enable=false): scan "
                            "the key's partition instead, or enable it")
        partitions = [partition] if partition is not None else range(meta.num_partitions)

        def read() -> tuple[list, int]:
            out, batches = [], 0
            for p in partitions:
                plog = state.logs.log(topic, p)
                if plog is None:
                    continue
                got = read_key_records(plog, key, last=last, from_ms=from_ms, to_ms=to_ms)
                batches += got.batches_read
                out.extend(record_to_json(p, r) for r in got.records)
                if last is None and len(out) > KEY_RECORDS_MAX:
                    raise HttpError(413, "TOO_MANY_RECORDS",
                                    f"more than {KEY_RECORDS_MAX} records for this key: ask "
                                    "with last=N or a from/to range")
            return out, batches

        records, batches = await trio.to_thread.run_sync(read, limiter=limiter)
        return HttpResponse.json(200, {"topic": topic, "key": encode_bytes(key),
                                       "records": records, "batches_read": batches})

    router.add("GET", "/v1/topics/{topic}/keys/{key}/records", key_records)
