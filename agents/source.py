"""Reading agent events: one session through the broker's key index, else by scanning.

Theory of operation. A session's events share a key (the session id), so with the Java
client's partitioner they all sit in one partition, ``murmur2(key) % partitions``.

- ``read_session`` first asks the broker's HTTP listener (``GET /v1/topics/{topic}/keys/
  {key}/records``, kafkito with ``key.index.enable``): the answer names only that
  session's records, read through the index. ``http="auto"`` tries the bootstrap host on
  kafkito's default HTTP port (9080); nothing listening there, an answer that is not
  kafkito's, or ``409 KEY_INDEX_NOT_ENABLED`` falls back to the scan (``via`` says which was
  used). ``http="off"`` always scans; an explicit URL that cannot be reached is an error.
- The scan works against any Kafka-compatible broker: it reads the one partition the key
  hashes to from its log start to its high watermark (bounded: nothing written after the
  scan started is waited for) and keeps the records with the key.
- ``scan_topic`` reads every partition (``kafkito sessions``), ``follow_topic`` tails them
  (``kafkito watch``).

Errors are ``SourceError`` subclasses with the CLI's exit code: ``TopicNotFound`` (3),
``BrokerUnreachable`` (4).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import anyio

from kafkito.records.batch import Record
from kafkito.records.jsonview import record_from_json

from .envelope import Event, parse_event
from .errors import BrokerUnreachable, SourceError, TopicNotFound, leaf_exception

__all__ = ["BrokerUnreachable", "DEFAULT_HTTP_PORT", "SessionRead", "SourceError", "TopicNotFound",
           "follow_topic", "read_session", "scan_topic"]

DEFAULT_HTTP_PORT = 9080  # kafkito's http.listeners default
HTTP_AUTO_TIMEOUT_S = 2.0  # "auto" gives up on the HTTP path this fast
POLL_TIMEOUT_S = 0.5
TOPIC_WAIT_S = 2.0  # how long a topic may take to appear in metadata before it is "missing"


@dataclass
class SessionRead:
    events: list[Event]
    via: str  # "index" or "scan"
    partition: int | None
    note: str | None = None  # why the index was not used, when the user named an HTTP URL


def _client():
    from kafkito.client import Consumer, KafkaError, TopicPartition
    from kafkito.client.partitioner import partition_for_key

    return Consumer, KafkaError, TopicPartition, partition_for_key


def _http_base(bootstrap: str, http: str) -> str | None:
    if http == "off":
        return None
    if http != "auto":
        return http.rstrip("/")
    first = bootstrap.split(",")[0].strip()
    host = first.rpartition(":")[0] or first
    return f"http://{host}:{DEFAULT_HTTP_PORT}"


def _http_get(url: str, timeout_s: float) -> tuple[int, dict | None]:
    """(status, JSON body or None when the body is not JSON). Raises OSError when nothing
    answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    try:
        data = json.loads(body)
    except ValueError:
        return status, None
    return status, data if isinstance(data, dict) else None


async def _read_via_http(base: str, topic: str, session: str, from_ms, to_ms, last,
                         explicit: bool) -> tuple[list[Event] | None, str | None]:
    """(events, None) from the index, or (None, why not) to scan instead."""
    params = [f"{n}={v}" for n, v in (("from", from_ms), ("to", to_ms), ("last", last)) if v is not None]
    url = (f"{base}/v1/topics/{quote(topic, safe='')}/keys/{quote(session, safe='')}/records"
           + ("?" + "&".join(params) if params else ""))
    try:
        status, data = await anyio.to_thread.run_sync(
            _http_get, url, HTTP_AUTO_TIMEOUT_S if not explicit else 30.0)
    except OSError as e:
        if explicit:
            raise BrokerUnreachable(f"cannot reach the HTTP listener {base}: {getattr(e, 'reason', e)}") from None
        return None, None
    if data is None or "error" not in data and "records" not in data:
        return None, f"{base} did not answer as kafkito's HTTP listener (status {status}); scanning"
    if status == 200:
        out = []
        for obj in data["records"]:
            partition, rec = record_from_json(obj)
            out.append(parse_event(partition, rec))
        return out, None
    if status == 404 and data.get("error") == "UNKNOWN_TOPIC_OR_PARTITION":
        raise TopicNotFound(f"topic {topic!r} does not exist")
    # KEY_INDEX_NOT_ENABLED and the like: scan instead
    return None, f"{data.get('error')}: {data.get('message')}; scanning"


async def read_session(bootstrap: str, topic: str, session: str, *, http: str = "auto",
                       from_ms: int | None = None, to_ms: int | None = None,
                       last: int | None = None, timeout_s: float = 30.0) -> SessionRead:
    base = _http_base(bootstrap, http)
    note = None
    if base is not None:
        events, note = await _read_via_http(base, topic, session, from_ms, to_ms, last,
                                            explicit=http != "auto")
        if events is not None:
            return SessionRead(events, "index", events[0].partition if events else None)
        if http == "auto":
            note = None  # the quiet fallback: most brokers have no index
    key = session.encode("utf-8")
    Consumer, KafkaError, TopicPartition, partition_for_key = _client()
    found: list[Event] = []
    async with _consumer(bootstrap, timeout_s) as c:
        n = await _partition_count(c, topic, timeout_s)
        p = partition_for_key(key, n)
        async for rec in _read_range(c, TopicPartition(topic, p), from_ms, timeout_s):
            if rec.key == key and (from_ms is None or rec.timestamp >= from_ms) \
                    and (to_ms is None or rec.timestamp <= to_ms):
                found.append(parse_event(p, rec))
    if last is not None:
        found = found[max(0, len(found) - last):]
    return SessionRead(found, "scan", p, note)


async def scan_topic(bootstrap: str, topic: str, on_event: Callable[[Event], None], *,
                     since_ms: int | None = None, timeout_s: float = 30.0,
                     progress: Callable[[int, int], None] | None = None) -> None:
    """``on_event`` for every event of every partition from ``since_ms`` (or the start) to
    the high watermarks at the start of the scan. ``progress(done, total)`` counts offsets.
    (Callbacks, not an async generator: the client's task group must not span a yield.)"""
    Consumer, KafkaError, TopicPartition, _ = _client()
    async with _consumer(bootstrap, timeout_s) as c:
        n = await _partition_count(c, topic, timeout_s)
        tps = [TopicPartition(topic, p) for p in range(n)]
        bounds = await _bounds(c, tps, since_ms, timeout_s)
        total = sum(max(0, end - start) for start, end in bounds.values())
        before = 0  # offsets of the partitions already read
        if progress:
            progress(0, total)
        for tp in tps:
            start, end = bounds[tp]
            async for rec in _read_range(c, tp, None, timeout_s, bounds=(start, end)):
                if progress:
                    progress(before + rec.offset + 1 - start, total)
                if since_ms is None or rec.timestamp >= since_ms:
                    on_event(parse_event(tp.partition, rec))
            before += max(0, end - start)
        if progress:
            progress(total, total)


async def follow_topic(bootstrap: str, topic: str, on_event: Callable[[Event], Awaitable[None]], *,
                       from_beginning: bool = False, timeout_s: float = 30.0,
                       stop_after_s: float | None = None) -> None:
    """Tail every partition of ``topic`` (from its end, or its start), forever or for
    ``stop_after_s`` seconds, awaiting ``on_event`` for each event."""
    Consumer, KafkaError, TopicPartition, _ = _client()
    async with _consumer(bootstrap, timeout_s) as c:
        n = await _partition_count(c, topic, timeout_s)
        tps = [TopicPartition(topic, p) for p in range(n)]
        c.assign(tps)
        offsets = await (c.beginning_offsets(tps) if from_beginning else c.end_offsets(tps))
        for tp in tps:
            c.seek(tp, offsets[tp])
        deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
        while deadline is None or time.monotonic() < deadline:
            wait = POLL_TIMEOUT_S if deadline is None else max(0.0, min(POLL_TIMEOUT_S, deadline - time.monotonic()))
            try:
                batch = await c.poll(timeout=wait)
            except KafkaError as e:
                raise BrokerUnreachable(f"lost the broker at {bootstrap}: {e}") from None
            for r in batch:
                await on_event(parse_event(r.partition, Record(r.offset, r.timestamp_ms, r.key,
                                                               r.value, list(r.headers))))


# ------------------------------------------------------------------------------ helpers


def _why(e: BaseException) -> str:
    return str(e) or type(e).__name__


class _consumer:
    """The client's Consumer, with its connection errors turned into ``BrokerUnreachable``."""

    def __init__(self, bootstrap: str, timeout_s: float):
        self.bootstrap, self.timeout_s = bootstrap, timeout_s

    async def __aenter__(self):
        Consumer, KafkaError, _, _ = _client()
        ms = int(self.timeout_s * 1000)
        self.c = Consumer(self.bootstrap, group_id=None, auto_offset_reset="earliest",
                          request_timeout_ms=ms, connect_timeout_ms=min(ms, 10_000))
        try:
            try:
                await self.c.start()  # bounded by connect_timeout_ms
            except BaseExceptionGroup as group:  # the client's task group may wrap the cause
                raise leaf_exception(group) from None
        except (KafkaError, OSError, TimeoutError) as e:
            try:
                await self.c.close(autocommit=False)
            except Exception:
                pass
            raise BrokerUnreachable(f"cannot reach a broker at {self.bootstrap}: {_why(e)}") from None
        return self.c

    async def __aexit__(self, *exc):
        await self.c.close(autocommit=False)


async def _partition_count(c, topic: str, timeout_s: float) -> int:
    _, KafkaError, _, _ = _client()
    try:
        with anyio.fail_after(timeout_s):
            # A short wait: on Kafka a missing topic answers UNKNOWN_TOPIC_OR_PARTITION, which
            # is retriable only while a new topic propagates.
            parts = await c.cluster.partitions_for(topic, wait_ms=int(min(timeout_s, TOPIC_WAIT_S) * 1000))
    except TimeoutError:
        raise BrokerUnreachable(f"no metadata for {topic!r} within {timeout_s:g} s") from None
    except KafkaError as e:
        if getattr(e, "name", "") == "UNKNOWN_TOPIC_OR_PARTITION":
            raise TopicNotFound(f"topic {topic!r} does not exist") from None
        raise BrokerUnreachable(f"cannot read metadata of {topic!r}: {_why(e)}") from None
    if not parts:
        raise TopicNotFound(f"topic {topic!r} does not exist")
    return len(parts)


async def _bounds(c, tps, since_ms, timeout_s) -> dict:
    _, KafkaError, _, _ = _client()
    try:
        with anyio.fail_after(timeout_s):
            starts = await c.beginning_offsets(tps)
            ends = await c.end_offsets(tps)
            if since_ms is not None:
                at = await c.offsets_for_times({tp: since_ms for tp in tps})
                starts = {tp: (at[tp].offset if at.get(tp) is not None else ends[tp]) for tp in tps}
    except (KafkaError, TimeoutError) as e:
        raise BrokerUnreachable(f"cannot list offsets: {_why(e)}") from None
    return {tp: (starts[tp], ends[tp]) for tp in tps}


async def _read_range(c, tp, from_ms, timeout_s, bounds=None) -> AsyncIterator[Record]:
    """Records of one partition from its start (or ``from_ms``) to the high watermark
    taken now."""
    _, KafkaError, _, _ = _client()
    if bounds is None:
        bounds = (await _bounds(c, [tp], from_ms, timeout_s))[tp]
    start, end = bounds
    if start >= end:
        return
    c.assign([tp])
    c.seek(tp, start)
    idle_deadline = time.monotonic() + timeout_s
    while True:
        try:
            batch = await c.poll(timeout=POLL_TIMEOUT_S)
        except KafkaError as e:
            raise BrokerUnreachable(f"lost the broker while reading {tp.topic}-{tp.partition}: {e}") from None
        if batch:
            idle_deadline = time.monotonic() + timeout_s
        elif await c.position(tp) >= end:  # the rest was a gap (compaction, markers)
            return
        elif time.monotonic() > idle_deadline:
            raise BrokerUnreachable(f"no data from {tp.topic}-{tp.partition} for {timeout_s:g} s "
                                    f"(read up to before offset {end})")
        for r in batch:
            if r.offset >= end:
                return
            yield Record(r.offset, r.timestamp_ms, r.key, r.value, list(r.headers))
            if r.offset + 1 >= end:
                return
        if batch and batch[-1].offset + 1 >= end:
            return
