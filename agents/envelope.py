"""The agent event envelope: what every tool of kafkito.agents reads and the tracer writes.

One event is one Kafka record: the key is the session id (so a session lives in one
partition, in order), the value is a JSON object::

    {
      "event_id": "e-7f3a...",          # unique; children point at it
      "session_id": "checkout-42",      # also the record key
      "agent_id": "planner",
      "timestamp": 1700000000123,       # epoch ms (the record timestamp is used when absent)
      "event_type": "tool_call",        # llm_call | tool_call | decision | error | session_end | ...
      "payload": {"tool": "search", "input": ..., "output": ..., "latency_ms": 812,
                  "cost_usd": 0.0031, "tokens": {"input": 900, "output": 120},
                  "error": {"type": "TimeoutError", "message": "..."}},
      "context": {"parent_event_id": "e-12ab...", "reasoning": "...", "model": "gpt-x",
                  "confidence": 0.82}
    }

plus the optional W3C trace context in the ``traceparent`` record header. The tools accept
any JSON object with at least ``event_type`` (every other field is optional), and show a
value that is not such an object raw (``Event.problem`` says why).

``Event`` is the parsed view: the record's coordinates plus accessors that never raise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kafkito.records.batch import Record

__all__ = ["EVENT_TYPES", "Event", "parse_event", "short"]

EVENT_TYPES = ("llm_call", "tool_call", "decision", "error", "session_end")


@dataclass
class Event:
    partition: int
    offset: int
    record_timestamp: int
    key: bytes | None
    raw: bytes | None
    data: dict | None  # the parsed envelope, or None when ``problem`` is set
    problem: str | None = None  # why the value is not an event (shown raw)
    headers: list = field(default_factory=list)

    # ------------------------------------------------------------- envelope accessors
    def _payload(self) -> dict:
        p = (self.data or {}).get("payload")
        return p if isinstance(p, dict) else {}

    def _context(self) -> dict:
        c = (self.data or {}).get("context")
        return c if isinstance(c, dict) else {}

    @property
    def session_id(self) -> str:
        sid = (self.data or {}).get("session_id")
        if isinstance(sid, str):
            return sid
        return self.key.decode("utf-8", "replace") if self.key is not None else ""

    @property
    def event_id(self) -> str | None:
        v = (self.data or {}).get("event_id")
        return str(v) if v is not None else None

    @property
    def event_type(self) -> str:
        if self.data is None:
            return "(raw)"
        return str(self.data.get("event_type"))

    @property
    def timestamp(self) -> int:
        v = (self.data or {}).get("timestamp")
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else self.record_timestamp

    @property
    def agent_id(self) -> str | None:
        v = (self.data or {}).get("agent_id")
        return str(v) if v is not None else None

    @property
    def tool(self) -> str | None:
        v = self._payload().get("tool")
        return str(v) if v is not None else None

    @property
    def input(self) -> Any:
        return self._payload().get("input")

    @property
    def output(self) -> Any:
        return self._payload().get("output")

    def _number(self, name: str) -> float:
        v = self._payload().get(name)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0

    @property
    def latency_ms(self) -> float:
        return self._number("latency_ms")

    @property
    def cost_usd(self) -> float:
        return self._number("cost_usd")

    @property
    def tokens(self) -> int:
        t = self._payload().get("tokens")
        if isinstance(t, dict):
            return int(sum(v for v in t.values() if isinstance(v, (int, float))))
        return int(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else 0

    @property
    def error_type(self) -> str | None:
        """The error's type for an ``error`` event or any event whose payload has ``error``."""
        err = self._payload().get("error")
        if isinstance(err, dict) and err.get("type"):
            return str(err["type"])
        if isinstance(err, str) and err:
            return err
        if self.event_type == "error":
            t = self._payload().get("error_type")
            return str(t) if t else "error"
        return None

    @property
    def parent_event_id(self) -> str | None:
        v = self._context().get("parent_event_id")
        return str(v) if v is not None else None

    @property
    def reasoning(self) -> str | None:
        v = self._context().get("reasoning")
        return str(v) if v is not None else None

    @property
    def model(self) -> str | None:
        v = self._context().get("model")
        return str(v) if v is not None else None

    @property
    def confidence(self) -> float | None:
        v = self._context().get("confidence")
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    @property
    def signature(self) -> tuple[str, str | None]:
        """What diff aligns on: the step's kind, not its time."""
        return self.event_type, self.tool

    def to_json(self) -> dict:
        out = {"partition": self.partition, "offset": self.offset, "timestamp": self.timestamp,
               "session_id": self.session_id, "event_type": self.event_type}
        if self.data is not None:
            out["event"] = self.data
        else:
            out["raw"] = (self.raw or b"").decode("utf-8", "replace")
            out["problem"] = self.problem
        return out


def parse_event(partition: int, record: Record) -> Event:
    """An Event from one record; never raises (a bad value becomes a raw event)."""
    data, problem = None, None
    if record.value is None:
        problem = "null value"
    else:
        try:
            obj = json.loads(record.value)
        except (UnicodeDecodeError, ValueError) as e:
            problem = f"not JSON ({e.__class__.__name__})"
        else:
            if not isinstance(obj, dict):
                problem = "JSON but not an object"
            elif "event_type" not in obj:
                problem = "JSON object without event_type"
            else:
                data = obj
    return Event(partition, record.offset, record.timestamp, record.key, record.value, data,
                 problem, list(record.headers))


def short(value: Any, width: int = 40) -> str:
    """A one-line, bounded rendering of an input or output."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
