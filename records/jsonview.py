"""Records as JSON: the one shape kafkito's HTTP listener answers with and its tools read.

Theory of operation. A record becomes ``{"partition", "offset", "timestamp", "key",
"value", "headers"}``; ``headers`` is a list of ``{"key", "value"}`` (a list, because Kafka
allows a header key twice). Bytes are shown as text when they are UTF-8, else as
``{"base64": "..."}``; a null key or value is ``null``. ``encode_bytes``/``decode_bytes``
are exact inverses, so a tool that reads records from the HTTP listener sees the same bytes
a Kafka client would (tests/broker/http compares the two byte for byte).
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

from .batch import Record

__all__ = ["decode_bytes", "encode_bytes", "parse_time_ms", "record_from_json", "record_to_json"]


def encode_bytes(data: bytes | None) -> str | dict | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def decode_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and isinstance(value.get("base64"), str):
        return base64.b64decode(value["base64"], validate=True)
    raise ValueError(f"not a JSON-encoded byte string: {value!r}")


def record_to_json(partition: int, record: Record) -> dict:
    return {
        "partition": partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": encode_bytes(record.key),
        "value": encode_bytes(record.value),
        "headers": [{"key": k, "value": encode_bytes(v)} for k, v in record.headers],
    }


def record_from_json(obj: dict) -> tuple[int, Record]:
    """(partition, Record) back from ``record_to_json``; ValueError/KeyError when malformed."""
    headers = [(h["key"], decode_bytes(h["value"])) for h in obj.get("headers") or []]
    return int(obj["partition"]), Record(int(obj["offset"]), int(obj["timestamp"]),
                                         decode_bytes(obj["key"]), decode_bytes(obj["value"]),
                                         headers)


def parse_time_ms(raw: str) -> int:
    """A time as the HTTP API and the tools accept it: epoch milliseconds, or ISO-8601
    (UTC when it names no zone). ValueError otherwise."""
    text = raw.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)
