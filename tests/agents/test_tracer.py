"""The tracer SDK: nesting through contextvars in blocking, asyncio and trio code; buffering
while the broker is unreachable, its bounds and its clear errors."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import trio

from kafkito.agents import Tracer, TracerBufferFull, TracerError
from kafkito.storage.key_index import full_scan_key_records
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tbroker(tmp_path_factory):
    with embedded_broker(tmp_path_factory.mktemp("tracer")) as b:
        yield b


def events_of(b, topic: str, session: str) -> list[dict]:
    logs = b.broker.state.logs
    out = []
    for p in range(logs.topic(topic).num_partitions):
        plog = logs.log(topic, p)
        plog.flush()
        out += [json.loads(r.value) for r in full_scan_key_records(plog, session.encode())]
    return out


def check_nesting(events: list[dict], session: str) -> None:
    by_id = {e["event_id"]: e for e in events}
    assert all(e["session_id"] == session for e in events)
    tools = [e for e in events if e["event_type"] == "tool_call"]
    for t in tools:  # every tool call sits under the llm call of its own task
        parent = by_id[t["context"]["parent_event_id"]]
        assert parent["event_type"] == "llm_call"
        assert parent["payload"]["input"] == t["payload"]["input"][0]


def test_blocking_code_records_nested_steps_and_errors(tbroker):
    tbroker.create_topic("tr-sync", 2)
    with Tracer(tbroker.bootstrap_servers, "tr-sync", "agent") as tracer:
        @tracer.tool()
        def lookup(x):
            if x == "bad":
                raise KeyError(x)
            return x.upper()

        with tracer.session("s-sync") as s:
            for x in ("a", "b"):
                with s.llm_call(model="m", input=x):
                    lookup(x)
            with pytest.raises(KeyError):
                lookup("bad")
            s.decision("done", confidence=1.0)
    events = events_of(tbroker, "tr-sync", "s-sync")
    assert [e["event_type"] for e in events] == ["tool_call", "llm_call", "tool_call", "llm_call",
                                                "tool_call", "decision", "session_end"]
    check_nesting(events[:4], "s-sync")
    assert events[4]["payload"]["error"]["type"] == "KeyError"
    assert events[4]["context"] == {}  # not nested: recorded outside any span
    assert events[1]["payload"]["latency_ms"] >= 0


async def _concurrent_session(tracer: Tracer, sleep) -> None:
    @tracer.tool("search")
    async def search(q):
        await sleep(0.01)
        return [q]

    async def step(q):
        async with tracer.session("s-async").llm_call(input=q):
            await search(q)

    async with tracer.session("s-async"):
        await _gather(step("x"), step("y"), step("z"))


async def _gather(*coros):  # trio and asyncio alike
    import anyio

    async with anyio.create_task_group() as tg:
        for c in coros:
            tg.start_soon(lambda c=c: c)


def test_asyncio_tasks_get_their_own_parents(tbroker):
    tbroker.create_topic("tr-asyncio", 3)

    async def main():
        async with Tracer(tbroker.bootstrap_servers, "tr-asyncio", "agent") as tracer:
            await _concurrent_session(tracer, asyncio.sleep)

    asyncio.run(main())
    events = events_of(tbroker, "tr-asyncio", "s-async")
    assert sorted(e["event_type"] for e in events) == ["llm_call"] * 3 + ["session_end"] + ["tool_call"] * 3
    check_nesting(events, "s-async")
    assert events[-1]["event_type"] == "session_end"


def test_trio_tasks_get_their_own_parents(tbroker):
    tbroker.create_topic("tr-trio", 3)

    async def main():
        async with Tracer(tbroker.bootstrap_servers, "tr-trio", "agent") as tracer:
            await _concurrent_session(tracer, trio.sleep)

    trio.run(main)
    events = events_of(tbroker, "tr-trio", "s-async")
    assert len(events) == 7
    check_nesting(events, "s-async")


def test_a_decorated_call_outside_a_session_is_a_clear_error(tbroker):
    with Tracer(tbroker.bootstrap_servers, "tr-sync", "agent") as tracer:
        @tracer.tool()
        def f():
            return 1

        with pytest.raises(TracerError, match="outside a session"):
            f()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_events_wait_in_the_buffer_until_the_broker_comes(tmp_path):
    port = free_port()
    tracer = Tracer(f"127.0.0.1:{port}", "tr-late", "agent", buffer_max_age_s=60)
    try:
        with tracer.session("s-late") as s:
            s.decision("before the broker exists")
        time.sleep(0.5)
        assert tracer.buffered == 2
        with embedded_broker(tmp_path, port=port) as b:
            tracer.flush(30)
            assert tracer.delivered == 2
            assert [e["event_type"] for e in events_of(b, "tr-late", "s-late")] == ["decision", "session_end"]
            tracer.close()
    finally:
        tracer.close(timeout_s=1) if not tracer._closed else None


def test_an_unreachable_broker_fails_after_the_time_limit_and_the_buffer_is_bounded():
    port = free_port()
    tracer = Tracer(f"127.0.0.1:{port}", "t", "agent", buffer_max_events=3, buffer_max_age_s=1.0)
    s = tracer.session("s")
    for i in range(3):
        s.event("tick", n=i)
    with pytest.raises(TracerBufferFull, match="3 events are waiting for the broker"):
        s.event("tick", n=3)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            s.event("tick")
        except TracerBufferFull:
            time.sleep(0.1)
            continue
        except TracerError as e:
            assert f"the broker at 127.0.0.1:{port} was unreachable for more than 1 s" in str(e)
            assert "3 events were not delivered" in str(e)
            break
    else:
        raise AssertionError("the tracer never gave up")
    with pytest.raises(TracerError):
        tracer.flush(1)
    tracer.close(timeout_s=1)
