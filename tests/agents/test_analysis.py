"""The pure analysis modules of kafkito.agents: timeline, diff, patterns, watch."""

from __future__ import annotations

import json

from kafkito.agents import diff, patterns, timeline
from kafkito.agents.envelope import parse_event
from kafkito.records.batch import Record

T0 = 1_700_000_000_000


def ev(offset, event_type, session="s1", eid=None, parent=None, tool=None, cost=0.0,
       latency=0, reasoning=None, output=None, error=None, raw=None):
    if raw is not None:
        return parse_event(0, Record(offset, T0 + offset, session.encode(), raw, []))
    payload = {"latency_ms": latency, "cost_usd": cost}
    if tool:
        payload["tool"] = tool
    if output is not None:
        payload["output"] = output
    if error:
        payload["error"] = {"type": error, "message": "boom"}
    body = {"event_id": eid or f"e{offset}", "session_id": session, "event_type": event_type,
            "timestamp": T0 + offset, "payload": payload,
            "context": {"parent_event_id": parent, "reasoning": reasoning}}
    return parse_event(0, Record(offset, T0 + offset, session.encode(), json.dumps(body).encode(), []))


def test_timeline_nests_by_parent_and_totals():
    events = [ev(0, "decision", reasoning="plan"), ev(1, "llm_call", parent="e0", cost=0.5, latency=100),
              ev(2, "tool_call", parent="e1", tool="search", latency=20),
              ev(3, "tool_call", parent="e0", tool="fetch", error="Timeout"),
              ev(4, "session_end"), ev(5, "", raw=b"\xffnot json")]
    text = timeline.render_text("s1", events)
    lines = text.splitlines()
    assert lines[0] == "session s1: 6 events"
    assert lines[1].endswith("0:0        decision  why=\"plan\"")
    assert "0:1          llm_call  100ms  $0.5000" in lines[2]
    assert "0:2            tool_call  search  20ms" in lines[3]
    assert "0:3          tool_call  fetch  error=Timeout" in lines[4]
    assert "(raw: not JSON" in lines[6]
    assert lines[-1].startswith("totals: 6 events (") and "cost $0.5000" in lines[-1] and "1 errors" in lines[-1]
    j = timeline.to_json("s1", events)
    assert [e["offset"] for e in j["events"]] == [0, 4, 5]
    assert [c["offset"] for c in j["events"][0]["children"]] == [1, 3]
    assert j["events"][0]["children"][0]["children"][0]["offset"] == 2
    assert j["totals"]["cost_usd"] == 0.5 and j["totals"]["not_events"] == 1


def test_a_parent_cycle_does_not_hang_or_lose_events():
    events = [ev(0, "decision", eid="a", parent="b"), ev(1, "decision", eid="b", parent="a")]
    j = timeline.to_json("s1", events)
    assert sum(1 + len(e["children"]) for e in j["events"]) == 2


def test_diff_names_the_first_divergence_with_reasoning():
    a = [ev(0, "decision", reasoning="search first"), ev(1, "tool_call", tool="search"),
         ev(2, "decision", reasoning="results look good, fetch"), ev(3, "tool_call", tool="fetch"),
         ev(4, "session_end")]
    b = [ev(0, "decision", reasoning="search first"), ev(1, "tool_call", tool="search"),
         ev(2, "decision", reasoning="results are empty, ask the user"),
         ev(3, "tool_call", tool="ask_user"), ev(4, "session_end")]
    r = diff.diff_sessions(a, b)
    assert r.divergence.step == 3 and r.divergence.kind == "replace"
    assert r.divergence.a.tool == "fetch" and r.divergence.b.tool == "ask_user"
    assert r.divergence.a_reasoning == "results look good, fetch"
    assert r.divergence.b_reasoning == "results are empty, ask the user"
    text = diff.render_text("A", "B", r)
    assert "first divergence at step 3: the sessions take different steps" in text
    assert diff.to_json("A", "B", r)["divergence"]["step"] == 3


def test_diff_of_same_steps_reports_a_different_outcome_or_none():
    a = [ev(0, "tool_call", tool="x", output="ok")]
    assert diff.diff_sessions(a, [ev(0, "tool_call", tool="x", output="ok")]).divergence is None
    r = diff.diff_sessions(a, [ev(0, "tool_call", tool="x", error="Boom")])
    assert r.divergence.kind == "outcome" and r.divergence.step == 0
    r = diff.diff_sessions(a, a + [ev(1, "tool_call", tool="y")])
    assert r.divergence.kind == "insert" and r.divergence.step == 1


def test_patterns_rank_find_retry_loops_and_error_types():
    p = patterns.Patterns(retry_threshold=3)
    for i in range(5):
        p.observe(ev(i, "tool_call", session="loop", tool="search"))
    p.observe(ev(10, "llm_call", session="rich", cost=9.0))
    p.observe(ev(11, "error", session="rich", error="RateLimit"))
    p.observe(ev(12, "error", session="loop", error="RateLimit"))
    p.observe(ev(13, "tool_call", session="slow", tool="x", latency=5000, error="Timeout"))
    assert [s.session for s in p.ranked("cost_usd")][:1] == ["rich"]
    assert [s.session for s in p.ranked("events")][:1] == ["loop"]
    assert [s.session for s in p.ranked("latency_ms")][:1] == ["slow"]
    assert p.retry_loops() == [("loop", "search", 5)]
    assert p.error_types() == [("RateLimit", 2, 2), ("Timeout", 1, 1)]
    assert "loop                                     search x5" in p.render_text()
    assert patterns.Patterns(retry_threshold=5).retry_loops() == []


def test_watch_fires_once_per_crossing():
    w = patterns.Watch(max_cost_usd=1.0, max_tool_calls=2)
    fired = []
    for i in range(6):
        fired += w.observe(ev(i, "tool_call", session="s", tool="t", cost=0.4))
    assert [(a.threshold, a.offset) for a in fired] == [("max_cost_usd", 2), ("max_tool_calls", 2)]
    assert w.observe(ev(9, "tool_call", session="other", tool="t", cost=0.1)) == []
