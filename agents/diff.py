"""Diff: align two sessions step by step and name where they part.

Theory of operation. Each event's *signature* is ``(event_type, tool)``; time and ids are
ignored, because two runs of the same agent take different times. The signature sequences
are aligned by ``difflib.SequenceMatcher`` (longest matching blocks, as ``diff`` does),
giving rows of ``(a, b)`` where a missing side is None. The *first divergence* is the first
row that is not a match, or, when every step matches, the first matched pair whose
outcome differs (one side errors, or the outputs differ). It is reported with both
sides' reasoning: the event's own, else that of the nearest earlier event that has one
(usually the decision that led there). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

from .envelope import Event
from .timeline import event_line

__all__ = ["Divergence", "DiffResult", "diff_sessions", "render_text", "to_json"]


@dataclass
class Divergence:
    step: int  # index into rows
    kind: str  # "replace", "insert" (only in B), "delete" (only in A), "outcome"
    a: Event | None
    b: Event | None
    a_reasoning: str | None
    b_reasoning: str | None


@dataclass
class DiffResult:
    rows: list[tuple[Event | None, Event | None, str]]
    divergence: Divergence | None


def _outcome(e: Event) -> tuple:
    return (e.error_type, repr(e.output))


def _reasoning_before(events: list[Event], upto: int) -> str | None:
    for e in reversed(events[: upto + 1]):
        if e.reasoning:
            return e.reasoning
    return None


def diff_sessions(a: list[Event], b: list[Event]) -> DiffResult:
    sa, sb = [e.signature for e in a], [e.signature for e in b]
    rows: list[tuple[Event | None, Event | None, str]] = []
    first = None
    positions = []  # (row index, index in a or None, index in b or None)
    for tag, i1, i2, j1, j2 in SequenceMatcher(a=sa, b=sb, autojunk=False).get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                positions.append((len(rows), i1 + k, j1 + k))
                rows.append((a[i1 + k], b[j1 + k], "="))
            continue
        n = max(i2 - i1, j2 - j1)
        for k in range(n):
            ia = i1 + k if i1 + k < i2 else None
            jb = j1 + k if j1 + k < j2 else None
            mark = "~" if ia is not None and jb is not None else ("<" if ia is not None else ">")
            if first is None:
                first = (len(rows), {"~": "replace", "<": "delete", ">": "insert"}[mark], ia, jb)
            positions.append((len(rows), ia, jb))
            rows.append((a[ia] if ia is not None else None, b[jb] if jb is not None else None, mark))
    if first is None:
        for row, ia, jb in positions:
            if _outcome(a[ia]) != _outcome(b[jb]):
                first = (row, "outcome", ia, jb)
                break
    divergence = None
    if first is not None:
        row, kind, ia, jb = first
        # the reasoning that led there: this step's, else the nearest earlier one's
        ra_idx = ia if ia is not None else _last_index_before(positions, row, 1)
        rb_idx = jb if jb is not None else _last_index_before(positions, row, 2)
        divergence = Divergence(
            row, kind, a[ia] if ia is not None else None, b[jb] if jb is not None else None,
            _reasoning_before(a, ra_idx) if ra_idx is not None else None,
            _reasoning_before(b, rb_idx) if rb_idx is not None else None)
    return DiffResult(rows, divergence)


def _last_index_before(positions, row: int, side: int) -> int | None:
    for p in reversed(positions[:row]):
        if p[side] is not None:
            return p[side]
    return None


def render_text(name_a: str, name_b: str, result: DiffResult, width: int = 34) -> str:
    col = width * 2
    lines = [f"{'step':>4}  {name_a[:col]:<{col}} | {name_b[:col]}"]
    for i, (ea, eb, mark) in enumerate(result.rows):
        left = event_line(ea, width // 2)[:col] if ea is not None else ""
        right = event_line(eb, width // 2)[:col] if eb is not None else ""
        lines.append(f"{i:>4}{mark} {left:<{col}} | {right}")
    d = result.divergence
    if d is None:
        lines.append("no divergence: the sessions take the same steps with the same outcomes")
    else:
        what = {"replace": "the sessions take different steps",
                "insert": f"only {name_b} takes this step",
                "delete": f"only {name_a} takes this step",
                "outcome": "the same step has a different outcome"}[d.kind]
        lines.append(f"first divergence at step {d.step}: {what}")
        lines.append(f"  {name_a}: {event_line(d.a, width) if d.a else '(nothing)'}")
        lines.append(f"    reasoning: {d.a_reasoning or '(none recorded)'}")
        lines.append(f"  {name_b}: {event_line(d.b, width) if d.b else '(nothing)'}")
        lines.append(f"    reasoning: {d.b_reasoning or '(none recorded)'}")
    return "\n".join(lines) + "\n"


def to_json(name_a: str, name_b: str, result: DiffResult) -> dict:
    d = result.divergence
    return {
        "a": name_a, "b": name_b,
        "rows": [{"mark": m, "a": ea.to_json() if ea else None, "b": eb.to_json() if eb else None}
                 for ea, eb, m in result.rows],
        "divergence": None if d is None else {
            "step": d.step, "kind": d.kind,
            "a": d.a.to_json() if d.a else None, "b": d.b.to_json() if d.b else None,
            "a_reasoning": d.a_reasoning, "b_reasoning": d.b_reasoning},
    }
