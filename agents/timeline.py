"""Replay: one session's events as a tree by ``parent_event_id``, with per-session totals.

Theory of operation. Events arrive in log order. Each event whose parent is an earlier
(or later) event of the same session becomes that event's child; an event without a
parent, or whose parent is not in the session (filtered out by time, or lost), is a root.
Children keep log order. ``render_text`` prints one line per event, indented by depth;
``to_json`` gives the same tree as data. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from .envelope import Event, short

__all__ = ["Node", "Totals", "build_tree", "render_text", "to_json", "totals"]


@dataclass
class Node:
    event: Event
    children: list["Node"] = field(default_factory=list)


@dataclass
class Totals:
    events: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    tokens: int = 0
    latency_ms: float = 0.0
    errors: int = 0
    not_events: int = 0
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def duration_ms(self) -> int:
        return 0 if self.first_ms is None else self.last_ms - self.first_ms

    def to_json(self) -> dict:
        return {"events": self.events, "by_type": dict(sorted(self.by_type.items())),
                "cost_usd": round(self.cost_usd, 6), "tokens": self.tokens,
                "latency_ms": round(self.latency_ms, 3), "errors": self.errors,
                "not_events": self.not_events, "duration_ms": self.duration_ms}


def build_tree(events: list[Event]) -> list[Node]:
    nodes = [Node(e) for e in events]
    by_id = {n.event.event_id: n for n in nodes if n.event.event_id is not None}
    roots = []
    for n in nodes:
        parent = by_id.get(n.event.parent_event_id) if n.event.parent_event_id else None
        if parent is None or parent is n or _is_descendant(parent, n, by_id):
            roots.append(n)
        else:
            parent.children.append(n)
    return roots


def _is_descendant(candidate: Node, of: Node, by_id: dict) -> bool:
    """Would linking ``of`` under ``candidate`` close a cycle (bad parent ids)?"""
    seen = set()
    cur = candidate
    while cur is not None and id(cur) not in seen:
        if cur is of:
            return True
        seen.add(id(cur))
        pid = cur.event.parent_event_id
        cur = by_id.get(pid) if pid else None
    return False


def totals(events: list[Event]) -> Totals:
    t = Totals()
    for e in events:
        t.events += 1
        t.by_type[e.event_type] = t.by_type.get(e.event_type, 0) + 1
        t.cost_usd += e.cost_usd
        t.tokens += e.tokens
        t.latency_ms += e.latency_ms
        t.errors += e.error_type is not None
        t.not_events += e.data is None
        ts = e.timestamp
        t.first_ms = ts if t.first_ms is None else min(t.first_ms, ts)
        t.last_ms = ts if t.last_ms is None else max(t.last_ms, ts)
    return t


def format_time(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def event_line(e: Event, width: int = 40) -> str:
    """One event's fields, as replay and diff print them."""
    if e.data is None:
        return f"(raw: {e.problem}) {short((e.raw or b'').decode('utf-8', 'replace'), width)}"
    parts = [e.event_type]
    if e.tool:
        parts.append(e.tool)
    if e.input is not None:
        parts.append(f"in={short(e.input, width)}")
    if e.output is not None:
        parts.append(f"out={short(e.output, width)}")
    if e.error_type:
        parts.append(f"error={e.error_type}")
    if e.latency_ms:
        parts.append(f"{e.latency_ms:g}ms")
    if e.cost_usd:
        parts.append(f"${e.cost_usd:.4f}")
    if e.model:
        parts.append(f"model={e.model}")
    if e.confidence is not None:
        parts.append(f"conf={e.confidence:g}")
    if e.reasoning:
        parts.append(f'why="{short(e.reasoning, width)}"')
    return "  ".join(parts)


def render_text(session: str, events: list[Event], width: int = 40) -> str:
    lines = [f"session {session}: {len(events)} events"]

    def walk(nodes: list[Node], depth: int) -> None:
        for n in nodes:
            e = n.event
            lines.append(f"{format_time(e.timestamp)}  {e.partition}:{e.offset:<8} "
                         f"{'  ' * depth}{event_line(e, width)}")
            walk(n.children, depth + 1)

    walk(build_tree(events), 0)
    t = totals(events)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(t.by_type.items()))
    lines.append(f"totals: {t.events} events ({kinds}), cost ${t.cost_usd:.4f}, "
                 f"{t.tokens} tokens, latency {t.latency_ms:g} ms, {t.errors} errors, "
                 f"duration {t.duration_ms} ms")
    return "\n".join(lines) + "\n"


def to_json(session: str, events: list[Event]) -> dict:
    def node(n: Node) -> dict:
        d = n.event.to_json()
        d["children"] = [node(c) for c in n.children]
        return d

    return {"session": session, "events": [node(n) for n in build_tree(events)],
            "totals": totals(events).to_json()}
