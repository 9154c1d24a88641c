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
from typing import AsyncIterator, Callable
from urllib.parse import quote

import anyio

from kafkito.records.batch import Record
from kafkito.records.jsonview import record_from_json

from .envelope import Event, parse_event
from .errors import BrokerUnreachable, SourceError, TopicNotFound

__all__ = ["BrokerUnreachable", "DEFAULT_HTTP_PORT", "SessionRead", "SourceError", "TopicNotFound",
           "follow_topic", "read_session", "scan_topic"]

DEFAULT_HTTP_PORT = 9080  # kafkito's http.listeners default
HTTP_AUTO_TIMEOUT_S = 2.0  # "auto" gives up on the HTTP path this fast
POLL_TIMEOUT_S = 0.5


@dataclass
class SessionRead:
    events: list[Event]
    via: str  # "index" or "scan"
    partition: int | None


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
                         explicit: bool) -> list[Event] | None:
    params = [f"{n}={v}" for n, v in (("from", from_ms), ("to", to_ms), ("last", last)) if v is not None]
    url = (f"{base}/v1/topics/{quote(topic, safe='')}/keys/{quote(session, safe='')}/records"
           + ("?" + "&".join(params) if params else ""))
    try:
        status, data = await anyio.to_thread.run_sync(
            _http_get, url, HTTP_AUTO_TIMEOUT_S if not explicit else 30.0)
    except OSError as e:
        if explicit:
            raise BrokerUnreachable(f"cannot reach the HTTP listener {base}: {getattr(e, 'reason', e)}") from None
        return None
    if data is None or "error" not in data and "records" not in data:
        if explicit:
            raise SourceError(f"{base} did not answer as kafkito's HTTP listener (status {status})")
        return None
    if status == 200:
        out = []
        for obj in data["records"]:
            partition, rec = record_from_json(obj)
            out.append(parse_event(partition, rec))
        return out
    if status == 404 and data.get("error") == "UNKNOWN_TOPIC_OR_PARTITION":
        raise TopicNotFound(f"topic {topic!r} does not exist")
    return None  # KEY_INDEX_NOT_ENABLED and the like: scan instead


async def read_session(bootstrap: str, topic: str, session: str, *, http: str = "auto",
                       from_ms: int | None = None, to_ms: int | None = None,
                       last: int | None = None, timeout_s: float = 30.0) -> SessionRead:
    base = _http_base(bootstrap, http)
    if base is not None:
        events = await _read_via_http(base, topic, session, from_ms, to_ms, last,
                                      explicit=http != "auto")
        if events is not None:
            return SessionRead(events, "index", events[0].partition if events else None)
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
    return SessionRead(found, "scan", p)


async def scan_topic(bootstrap: str, topic: str, *, since_ms: int | None = None,
                     timeout_s: float = 30.0,
                     progress: Callable[[int, int], None] | None = None) -> AsyncIterator[Event]:
    """Every event of every partition from ``since_ms`` (or the start) to the high
    watermarks at the start of the scan. ``progress(done, total)`` counts offsets."""
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
                    yield parse_event(tp.partition, rec)
            before += max(0, end - start)
        if progress:
            progress(total, total)


async def follow_topic(bootstrap: str, topic: str, *, from_beginning: bool = False,
                       timeout_s: float = 30.0, stop_after_s: float | None = None) -> AsyncIterator[Event]:
    """Tail every partition of ``topic`` (from its end, or its start), forever or for
    ``stop_after_s`` seconds."""
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
                yield parse_event(r.partition, Record(r.offset, r.timestamp_ms, r.key, r.value,
                                                      list(r.headers)))


# ------------------------------------------------------------------------------ helpers


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
            with anyio.fail_after(self.timeout_s):
                await self.c.start()
        except (KafkaError, OSError, TimeoutError) as e:
            try:
                await self.c.close(autocommit=False)
            except Exception:
                pass
            raise BrokerUnreachable(f"cannot reach a broker at {self.bootstrap}: {e or 'timed out'}") from None
        return self.c

    async def __aexit__(self, *exc):
        with anyio.CancelScope(shield=True):
            await self.c.close(autocommit=False)


async def _partition_count(c, topic: str, timeout_s: float) -> int:
    _, KafkaError, _, _ = _client()
    try:
        with anyio.fail_after(timeout_s):
            parts = await c.partitions_for_topic(topic)
    except TimeoutError:
        raise BrokerUnreachable(f"no metadata for {topic!r} within {timeout_s:g} s") from None
    except KafkaError as e:
        if "UNKNOWN_TOPIC" in str(e) or "UNKNOWN_TOPIC" in type(e).__name__.upper():
            raise TopicNotFound(f"topic {topic!r} does not exist") from None
        raise BrokerUnreachable(f"cannot read metadata of {topic!r}: {e}") from None
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
        raise BrokerUnreachable(f"cannot list offsets: {e or 'timed out'}") from None
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
