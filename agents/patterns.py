"""Patterns across sessions: rankings, retry loops, error types, and the watch thresholds.

Theory of operation. ``SessionStats.observe`` folds one event into its session's running
figures (events, cost, latency, tokens, tool calls per tool, errors by type); ``Patterns``
keeps one per session and answers: sessions ranked by events, cost and latency; retry
loops (a tool called more than ``retry_threshold`` times in one session); error types with
how many sessions hit each. ``Watch`` applies thresholds to the same running figures and
returns an alert the first time a session crosses each one (once per crossing: a session
that keeps spending is not re-alerted). Pure: events in, figures and alerts out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .envelope import Event

__all__ = ["Alert", "Patterns", "SessionStats", "Watch", "DEFAULT_RETRY_THRESHOLD"]

DEFAULT_RETRY_THRESHOLD = 3  # "retry loop": the same tool called more than this in a session


@dataclass
class SessionStats:
    session: str
    events: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    tokens: int = 0
    tool_calls: int = 0
    tools: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_ms: int | None = None
    last_ms: int | None = None
    ended: bool = False

    def observe(self, e: Event) -> None:
        self.events += 1
        self.cost_usd += e.cost_usd
        self.latency_ms += e.latency_ms
        self.tokens += e.tokens
        if e.event_type == "tool_call":
            self.tool_calls += 1
            tool = e.tool or "(unnamed)"
            self.tools[tool] = self.tools.get(tool, 0) + 1
        if e.error_type is not None:
            self.errors[e.error_type] = self.errors.get(e.error_type, 0) + 1
        self.ended = self.ended or e.event_type == "session_end"
        ts = e.timestamp
        self.first_ms = ts if self.first_ms is None else min(self.first_ms, ts)
        self.last_ms = ts if self.last_ms is None else max(self.last_ms, ts)

    def to_json(self) -> dict:
        return {"session": self.session, "events": self.events, "cost_usd": round(self.cost_usd, 6),
                "latency_ms": round(self.latency_ms, 3), "tokens": self.tokens,
                "tool_calls": self.tool_calls, "tools": dict(sorted(self.tools.items())),
                "errors": dict(sorted(self.errors.items())), "ended": self.ended}


class Patterns:
    def __init__(self, retry_threshold: int = DEFAULT_RETRY_THRESHOLD, top: int = 10):
        self.retry_threshold = retry_threshold
        self.top = top
        self.sessions: dict[str, SessionStats] = {}
        self.not_events = 0

    def observe(self, e: Event) -> SessionStats:
        sid = e.session_id
        stats = self.sessions.get(sid)
        if stats is None:
            stats = self.sessions[sid] = SessionStats(sid)
        if e.data is None:
            self.not_events += 1
        stats.observe(e)
        return stats

    def ranked(self, by: str) -> list[SessionStats]:
        """Sessions by ``events``, ``cost_usd`` or ``latency_ms``, largest first (ties by id)."""
        return sorted(self.sessions.values(), key=lambda s: (-getattr(s, by), s.session))[: self.top]

    def retry_loops(self) -> list[tuple[str, str, int]]:
        """(session, tool, calls) for every tool called more than ``retry_threshold`` times."""
        out = [(s.session, tool, n) for s in self.sessions.values() for tool, n in s.tools.items()
               if n > self.retry_threshold]
        return sorted(out, key=lambda r: (-r[2], r[0], r[1]))

    def error_types(self) -> list[tuple[str, int, int]]:
        """(error type, sessions that hit it, occurrences), most sessions first."""
        sessions: dict[str, int] = {}
        total: dict[str, int] = {}
        for s in self.sessions.values():
            for t, n in s.errors.items():
                sessions[t] = sessions.get(t, 0) + 1
                total[t] = total.get(t, 0) + n
        return sorted(((t, sessions[t], total[t]) for t in sessions), key=lambda r: (-r[1], -r[2], r[0]))

    def to_json(self) -> dict:
        return {
            "sessions": len(self.sessions),
            "events": sum(s.events for s in self.sessions.values()),
            "not_events": self.not_events,
            "top_by_events": [s.to_json() for s in self.ranked("events")],
            "top_by_cost": [s.to_json() for s in self.ranked("cost_usd")],
            "top_by_latency": [s.to_json() for s in self.ranked("latency_ms")],
            "retry_loops": [{"session": s, "tool": t, "calls": n} for s, t, n in self.retry_loops()],
            "retry_threshold": self.retry_threshold,
            "error_types": [{"type": t, "sessions": s, "occurrences": n} for t, s, n in self.error_types()],
        }

    def render_text(self) -> str:
        lines = [f"{len(self.sessions)} sessions, "
                 f"{sum(s.events for s in self.sessions.values())} events"
                 + (f" ({self.not_events} not agent events)" if self.not_events else "")]
        for title, by, fmt in (("by events", "events", "{:.0f} events"),
                               ("by cost", "cost_usd", "${:.4f}"),
                               ("by latency", "latency_ms", "{:.0f} ms")):
            lines.append(f"top sessions {title}:")
            for s in self.ranked(by):
                lines.append(f"  {s.session:<40} {fmt.format(getattr(s, by))}")
        loops = self.retry_loops()
        lines.append(f"retry loops (a tool called more than {self.retry_threshold} times): {len(loops)}")
        for s, t, n in loops:
            lines.append(f"  {s:<40} {t} x{n}")
        errors = self.error_types()
        lines.append(f"error types: {len(errors)}")
        for t, ns, n in errors:
            lines.append(f"  {t:<40} {ns} sessions, {n} times")
        return "\n".join(lines) + "\n"


@dataclass
class Alert:
    session: str
    threshold: str  # "max_cost_usd" or "max_tool_calls"
    limit: float
    value: float
    offset: int
    partition: int
    timestamp: int

    def to_json(self) -> dict:
        return {"session": self.session, "threshold": self.threshold, "limit": self.limit,
                "value": round(self.value, 6), "partition": self.partition,
                "offset": self.offset, "timestamp": self.timestamp}

    def line(self) -> str:
        what = "cost $%.4f > $%g" % (self.value, self.limit) if self.threshold == "max_cost_usd" \
            else "%d tool calls > %d" % (self.value, self.limit)
        return f"ALERT session {self.session}: {what} (at {self.partition}:{self.offset})"


class Watch:
    """Thresholds over running session figures; one alert per session per threshold."""

    def __init__(self, max_cost_usd: float | None = None, max_tool_calls: int | None = None,
                 sessions_max: int = 100_000):
        self.max_cost_usd = max_cost_usd
        self.max_tool_calls = max_tool_calls
        self.sessions_max = sessions_max  # oldest sessions forgotten past this (memory bound)
        self.stats: dict[str, SessionStats] = {}
        self.fired: set[tuple[str, str]] = set()

    def observe(self, e: Event) -> list[Alert]:
        sid = e.session_id
        s = self.stats.get(sid)
        if s is None:
            if len(self.stats) >= self.sessions_max:
                oldest = next(iter(self.stats))
                del self.stats[oldest]
                self.fired = {f for f in self.fired if f[0] != oldest}
            s = self.stats[sid] = SessionStats(sid)
        s.observe(e)
        alerts = []
        for name, limit, value in (("max_cost_usd", self.max_cost_usd, s.cost_usd),
                                   ("max_tool_calls", self.max_tool_calls, s.tool_calls)):
            if limit is not None and value > limit and (sid, name) not in self.fired:
                self.fired.add((sid, name))
                alerts.append(Alert(sid, name, limit, value, e.offset, e.partition, e.timestamp))
        return alerts
