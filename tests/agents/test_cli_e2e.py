"""``kafkito replay|diff|sessions|watch`` as a user runs them (the installed entry point in a
subprocess), on sessions written by confluent-kafka and by the tracer SDK, interleaved over
three partitions; once through the key index (HTTP) and once by scanning a topic without it.
"""

from __future__ import annotations

import http.server
import json
import random
import re
import subprocess
import sys
import threading
import time

import pytest

from kafkito.agents import Tracer
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e

T0 = 1_700_000_000_000
IDX, PLAIN, EMPTY, WATCH = "agents-idx", "agents-plain", "agents-empty", "agents-watch"


def envelope(session, i, event_type, tool=None, parent=None, reasoning=None, cost=0.0,
             latency=10, output=None, error=None, model=None, confidence=None):
    payload = {"latency_ms": latency, "cost_usd": cost}
    if tool:
        payload["tool"], payload["input"] = tool, {"q": f"{session}-{i}"}
    if output is not None:
        payload["output"] = output
    if error:
        payload["error"] = {"type": error, "message": "failed"}
    context = {k: v for k, v in (("parent_event_id", parent), ("reasoning", reasoning),
                                 ("model", model), ("confidence", confidence)) if v is not None}
    return {"event_id": f"{session}/{i}", "session_id": session, "agent_id": "a",
            "timestamp": T0 + i * 1000, "event_type": event_type, "payload": payload,
            "context": context}


def planted_sessions() -> dict[str, list]:
    s = {}
    common = lambda sid: [
        envelope(sid, 0, "decision", reasoning="look the order up first", model="m1", confidence=0.9),
        envelope(sid, 1, "llm_call", parent=f"{sid}/0", cost=0.002, latency=800, model="m1", output="plan"),
        envelope(sid, 2, "tool_call", tool="lookup_order", parent=f"{sid}/1", output={"status": "late"}),
    ]
    s["good-1"] = common("good-1") + [
        envelope("good-1", 3, "decision", reasoning="the order is late: refund it", confidence=0.8),
        envelope("good-1", 4, "tool_call", tool="refund", parent="good-1/3", output="ok"),
        envelope("good-1", 5, "session_end")]
    s["bad-1"] = common("bad-1") + [
        envelope("bad-1", 3, "decision", reasoning="the customer sounds angry: escalate", confidence=0.4),
        envelope("bad-1", 4, "tool_call", tool="escalate", parent="bad-1/3", error="PermissionDenied"),
        envelope("bad-1", 5, "session_end")]
    s["loop-1"] = [envelope("loop-1", i, "tool_call", tool="search", error="Timeout" if i < 5 else None)
                   for i in range(6)] + [envelope("loop-1", 6, "session_end")]
    s["rich-1"] = [envelope("rich-1", 0, "llm_call", cost=5.0, latency=30_000), envelope("rich-1", 1, "session_end")]
    s["rich-2"] = [envelope("rich-2", 0, "llm_call", cost=3.0, latency=20_000), envelope("rich-2", 1, "session_end")]
    for n in range(20):
        sid = f"filler-{n}"
        s[sid] = [envelope(sid, 0, "llm_call", cost=0.01), envelope(sid, 1, "tool_call", tool="search"),
                  envelope(sid, 2, "session_end")]
    return s


def interleaved(sessions: dict[str, list], seed: int = 7) -> list[tuple[str, bytes]]:
    """Every session's events in its own order, the sessions shuffled into each other."""
    rng = random.Random(seed)
    queues = {sid: list(evs) for sid, evs in sessions.items()}
    out = []
    while queues:
        sid = rng.choice(sorted(queues))
        out.append((sid, json.dumps(queues[sid].pop(0)).encode()))
        if not queues[sid]:
            del queues[sid]
    return out


def produce_confluent(bootstrap: str, topic: str, items) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1,
                  "enable.idempotence": True, "partitioner": "murmur2_random"})
    for sid, value in items:
        ts = json.loads(value)["timestamp"] if value.startswith(b"{") else T0
        p.produce(topic, key=sid.encode(), value=value, timestamp=ts)
    assert p.flush(30) == 0


def write_sdk_session(bootstrap: str, topic: str) -> None:
    clock = iter(range(T0 + 500_000, T0 + 600_000, 1000))
    with Tracer(bootstrap, topic, "sdk-agent", clock_ms=lambda: next(clock)) as tracer:
        @tracer.tool("search")
        def search(q):
            return [f"result for {q}"]

        with tracer.session("sdk-1") as s:
            s.decision("search, then summarise", confidence=0.7)
            with s.llm_call(model="m2", input="summarise") as call:
                search("shoes")
                call.output, call.cost_usd = "summary", 0.25
            try:
                with s.tool_call("checkout", input={"cart": 3}):
                    raise TimeoutError("payment service")
            except TimeoutError:
                pass


@pytest.fixture(scope="module")
def abroker(tmp_path_factory):
    with embedded_broker(tmp_path_factory.mktemp("agents"),
                         settings={"http.listeners": "127.0.0.1:0"}) as b:
        b.create_topic(IDX, 3, {"key.index.enable": "true"})
        b.create_topic(PLAIN, 3, {})
        b.create_topic(EMPTY, 1, {})
        items = interleaved(planted_sessions())
        items.insert(17, ("raw-1", b"this is not json"))
        half = len(items) // 2
        for topic in (IDX, PLAIN):
            produce_confluent(b.bootstrap_servers, topic, items[:half])
            write_sdk_session(b.bootstrap_servers, topic)  # the SDK's events in between
            produce_confluent(b.bootstrap_servers, topic, items[half:])
        yield b


def kafkito(*args, timeout=60) -> subprocess.CompletedProcess:
    exe = [sys.executable, "-m", "kafkito.broker.cli"]
    return subprocess.run(exe + list(args), capture_output=True, text=True, timeout=timeout)


def common(b, http=None):
    return ["-b", b.bootstrap_servers, "--http", http or b.http_url, "--timeout", "10"]


GOOD_1_TEXT = """\
session good-1: 6 events
2023-11-14T22:13:20.000Z  {p}:{o0}{pad0}decision  10ms  model=m1  conf=0.9  why="look the order up first"
2023-11-14T22:13:21.000Z  {p}:{o1}{pad1}  llm_call  out=plan  800ms  $0.0020  model=m1
2023-11-14T22:13:22.000Z  {p}:{o2}{pad2}    tool_call  lookup_order  in={{"q": "good-1-2"}}  out={{"status": "late"}}  10ms
2023-11-14T22:13:23.000Z  {p}:{o3}{pad3}decision  10ms  conf=0.8  why="the order is late: refund it"
2023-11-14T22:13:24.000Z  {p}:{o4}{pad4}  tool_call  refund  in={{"q": "good-1-4"}}  out=ok  10ms
2023-11-14T22:13:25.000Z  {p}:{o5}{pad5}session_end  10ms
totals: 6 events (decision 2, llm_call 1, session_end 1, tool_call 2), cost $0.0020, 0 tokens, latency 850 ms, 0 errors, duration 5000 ms
"""


def test_replay_prints_exactly_one_session_in_log_order_with_nesting(abroker):
    got = kafkito("replay", IDX, "good-1", "--format", "json", *common(abroker))
    assert got.returncode == 0, got.stderr
    j = json.loads(got.stdout)
    assert j["via"] == "index"
    flat = []

    def walk(nodes):
        for n in nodes:
            flat.append(n)
            walk(n["children"])
    walk(j["events"])
    assert {n["session_id"] for n in flat} == {"good-1"} and len(flat) == 6
    offsets = sorted(n["offset"] for n in flat)
    p = flat[0]["partition"]
    assert [n["event"]["event_id"] for n in sorted(flat, key=lambda n: n["offset"])] == \
        [f"good-1/{i}" for i in range(6)]
    assert [n["event"]["event_id"] for n in j["events"]] == ["good-1/0", "good-1/3", "good-1/5"]
    assert j["events"][0]["children"][0]["children"][0]["event"]["payload"]["tool"] == "lookup_order"
    assert j["totals"]["events"] == 6 and j["totals"]["cost_usd"] == 0.002

    text = kafkito("replay", IDX, "good-1", *common(abroker))
    assert text.returncode == 0, text.stderr
    fields = {"p": p}
    for i, o in enumerate(offsets):
        fields[f"o{i}"] = o
        fields[f"pad{i}"] = " " * (9 - len(str(o)))
    assert text.stdout == GOOD_1_TEXT.format(**fields)


def test_replay_of_an_sdk_session_nests_the_decorated_tool_under_the_llm_call(abroker):
    got = kafkito("replay", IDX, "sdk-1", "--format", "json", *common(abroker))
    assert got.returncode == 0, got.stderr
    roots = json.loads(got.stdout)["events"]
    assert [r["event_type"] for r in roots] == ["decision", "llm_call", "tool_call", "session_end"]
    llm = roots[1]
    assert [c["event"]["payload"]["tool"] for c in llm["children"]] == ["search"]
    assert llm["children"][0]["event"]["payload"]["output"] == ["result for shoes"]
    assert roots[2]["event"]["payload"]["error"] == {"type": "TimeoutError", "message": "payment service"}
    assert json.loads(got.stdout)["totals"]["cost_usd"] == 0.25


def test_index_and_scan_answer_alike_and_a_topic_without_index_falls_back_to_a_scan(abroker):
    for session in ("good-1", "sdk-1", "loop-1"):
        via_index = json.loads(kafkito("replay", IDX, session, "--format", "json", *common(abroker)).stdout)
        off = json.loads(kafkito("replay", IDX, session, "--format", "json", *common(abroker, "off")).stdout)
        assert via_index.pop("via") == "index" and off.pop("via") == "scan"
        assert off == via_index  # the same topic read both ways: identical
        scanned = kafkito("replay", PLAIN, session, "--format", "json", *common(abroker))
        assert scanned.returncode == 0, scanned.stderr
        assert "KEY_INDEX_NOT_ENABLED" in scanned.stderr  # the explicit URL said why
        via_scan = json.loads(scanned.stdout)
        assert via_scan.pop("via") == "scan"
        if session != "sdk-1":  # the SDK wrote fresh event ids and latencies to each topic
            assert [n["event"] for n in via_scan["events"]] == [n["event"] for n in via_index["events"]]
        assert via_scan["totals"]["events"] == via_index["totals"]["events"]


def test_a_broker_that_is_not_kafkito_is_scanned(abroker):
    class NotKafkito(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>nope</html>")

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotKafkito)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        got = kafkito("replay", IDX, "good-1", "--format", "json", *common(abroker, url))
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["via"] == "scan"
        assert "did not answer as kafkito's HTTP listener" in got.stderr
    finally:
        server.shutdown()


def test_diff_names_the_planted_divergence_with_both_reasonings(abroker):
    got = kafkito("diff", IDX, "good-1", "bad-1", *common(abroker))
    assert got.returncode == 1, got.stderr
    assert "first divergence at step 4: the sessions take different steps" in got.stdout
    assert "reasoning: the order is late: refund it" in got.stdout
    assert "reasoning: the customer sounds angry: escalate" in got.stdout
    j = json.loads(kafkito("diff", PLAIN, "good-1", "bad-1", "--format", "json", *common(abroker, "off")).stdout)
    d = j["divergence"]
    assert d["step"] == 4 and d["kind"] == "replace"
    assert d["a"]["event"]["payload"]["tool"] == "refund" and d["b"]["event"]["payload"]["tool"] == "escalate"
    same = kafkito("diff", IDX, "good-1", "good-1", *common(abroker))
    assert same.returncode == 0 and "no divergence" in same.stdout


def test_sessions_finds_the_retry_loop_ranks_expensive_sessions_first_and_counts_errors(abroker):
    got = kafkito("sessions", PLAIN, "--format", "json", "--retry-threshold", "4", "-b",
                  abroker.bootstrap_servers, "--timeout", "10")
    assert got.returncode == 0, got.stderr
    assert got.stderr.count("\r") == 0  # no progress bar when stderr is not a terminal
    j = json.loads(got.stdout)
    assert j["sessions"] == 27  # 25 planted, sdk-1, raw-1
    assert [s["session"] for s in j["top_by_cost"][:2]] == ["rich-1", "rich-2"]
    assert [s["session"] for s in j["top_by_latency"][:2]] == ["rich-1", "rich-2"]
    assert j["top_by_events"][0]["session"] == "loop-1"
    assert j["retry_loops"] == [{"session": "loop-1", "tool": "search", "calls": 6}]
    errors = {e["type"]: (e["sessions"], e["occurrences"]) for e in j["error_types"]}
    assert errors == {"Timeout": (1, 5), "PermissionDenied": (1, 1), "TimeoutError": (1, 1)}
    assert j["not_events"] == 1
    text = kafkito("sessions", PLAIN, "-b", abroker.bootstrap_servers, "--timeout", "10")
    assert "loop-1" in text.stdout and "search x6" in text.stdout
    strict = json.loads(kafkito("sessions", PLAIN, "--format", "json", "--retry-threshold", "6",
                                "-b", abroker.bootstrap_servers).stdout)
    assert strict["retry_loops"] == []


def test_watch_fires_once_per_crossing_and_runs_the_command(abroker, tmp_path):
    abroker.create_topic(WATCH, 2, {})
    out = tmp_path / "alerts.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kafkito.broker.cli", "watch", WATCH, "--max-cost", "1.0",
         "--max-tool-calls", "4", "--exec", f"cat >> {out}; echo >> {out}", "--from-beginning",
         "--duration", "8s", "-b", abroker.bootstrap_servers],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        items = [("w-cost", json.dumps(envelope("w-cost", i, "llm_call", cost=0.4)).encode()) for i in range(6)]
        items += [("w-tools", json.dumps(envelope("w-tools", i, "tool_call", tool="t")).encode()) for i in range(8)]
        items += [("w-calm", json.dumps(envelope("w-calm", i, "tool_call", tool="t", cost=0.1)).encode()) for i in range(3)]
        produce_confluent(abroker.bootstrap_servers, WATCH, items)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    lines = sorted(stdout.splitlines())
    assert len(lines) == 2, stdout  # once per crossing: w-cost keeps spending, w-tools keeps calling
    assert re.fullmatch(r"ALERT session w-cost: cost \$1\.2000 > \$1 \(at \d+:\d+\)", lines[0])
    assert re.fullmatch(r"ALERT session w-tools: 5 tool calls > 4 \(at \d+:\d+\)", lines[1])
    alerts = [json.loads(l) for l in out.read_text().splitlines() if l.strip()]
    assert sorted((a["session"], a["threshold"]) for a in alerts) == [("w-cost", "max_cost_usd"),
                                                                     ("w-tools", "max_tool_calls")]


def test_clear_messages_and_exit_codes(abroker):
    got = kafkito("replay", IDX, "no-such-session", *common(abroker))
    assert got.returncode == 3 and "session 'no-such-session' not found in topic 'agents-idx'" in got.stderr
    got = kafkito("replay", PLAIN, "no-such-session", *common(abroker, "off"))
    assert got.returncode == 3 and "via scan" in got.stderr
    got = kafkito("replay", "no-such-topic", "s", *common(abroker))
    assert got.returncode == 3 and "topic 'no-such-topic' does not exist" in got.stderr
    got = kafkito("replay", "no-such-topic", "s", *common(abroker, "off"))
    assert got.returncode == 3 and "does not exist" in got.stderr, got.stderr
    got = kafkito("sessions", EMPTY, "-b", abroker.bootstrap_servers)
    assert got.returncode == 3 and "holds no events" in got.stderr
    started = time.monotonic()
    got = kafkito("replay", IDX, "s", "-b", "127.0.0.1:1", "--http", "off", "--timeout", "3")
    assert got.returncode == 4 and "cannot reach a broker at 127.0.0.1:1" in got.stderr
    assert time.monotonic() - started < 20
    got = kafkito("replay", IDX, "raw-1", *common(abroker))
    assert got.returncode == 0 and "(raw: not JSON" in got.stdout and "this is not json" in got.stdout
    assert "1 record(s) are not agent events" in got.stderr
    got = kafkito("replay", IDX, "good-1", "--from", "yesterday", *common(abroker))
    assert got.returncode == 2 and "expected epoch milliseconds or an ISO-8601 time" in got.stderr
    for g in (got,):
        assert "Traceback" not in g.stderr


def test_sessions_shows_a_progress_bar_on_a_terminal(abroker):
    import os
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "kafkito.broker.cli", "sessions", PLAIN,
                               "-b", abroker.bootstrap_servers], stdout=subprocess.PIPE,
                              stderr=slave, timeout=60)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert b"\rscanning agents-plain [" in seen and b"100%" in seen
    assert b"27 sessions" in proc.stdout
