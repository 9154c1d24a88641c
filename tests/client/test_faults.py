"""The client through faults: a Produce answer lost on the way (the idempotent retry
appends nothing twice), and a broker restart between commit and resume."""

from __future__ import annotations

import socket

import anyio
import pytest

from kafkito.client import Consumer, Producer, TopicPartition
from kafkito.testing import broker as embedded_broker

from faultproxy import DroppingProxy

BACKENDS = pytest.mark.parametrize("backend", ["asyncio", "trio"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@BACKENDS
def test_a_dropped_produce_response_is_retried_without_a_duplicate(tmp_path, backend):
    proxy_port = _free_port()
    # The broker tells clients to connect through the proxy, so every connection passes it.
    with embedded_broker(tmp_path, settings={"advertised.listeners": f"127.0.0.1:{proxy_port}"}) as b:
        proxy = DroppingProxy(b.broker.address, proxy_port)
        try:
            bootstrap = f"127.0.0.1:{proxy_port}"
            anyio.run(_dropped, bootstrap, proxy, backend=backend)
        finally:
            proxy.close()


async def _dropped(bootstrap, proxy):
    async with Producer(bootstrap, linger_ms=0, request_timeout_ms=5000) as p:
        first = await p.send("lost", value=b"before", partition=0)
        proxy.drop_next_produce_response = True
        md = await p.send("lost", value=b"retried", partition=0)
        after = await p.send("lost", value=b"after", partition=0)
    assert proxy.dropped == 1, "the fault did not happen"
    assert (first.offset, md.offset, after.offset) == (0, 1, 2)
    async with Consumer(bootstrap) as c:
        tp = TopicPartition("lost", 0)
        c.assign([tp])
        c.seek(tp, 0)
        got = []
        with anyio.move_on_after(10):
            while len(got) < 3:
                got += await c.poll(timeout=0.5)
        got += await c.poll(timeout=0.5)
    assert [r.value for r in got] == [b"before", b"retried", b"after"]


@BACKENDS
def test_commit_then_resume_across_a_broker_restart(tmp_path, backend):
    port = _free_port()
    with embedded_broker(tmp_path, port=port) as b:
        got = anyio.run(_commit_part, b.bootstrap_servers, backend=backend)
    with embedded_broker(tmp_path, port=port) as b:
        rest = anyio.run(_resume, b.bootstrap_servers, backend=backend)
    assert [r.offset for r in got] == list(range(12))
    assert [r.offset for r in rest] == list(range(12, 20))


GROUP = "restart-g"
TP = TopicPartition("rs", 0)


async def _commit_part(bootstrap):
    group = GROUP
    async with Producer(bootstrap) as p:
        for i in range(20):
            await p.produce("rs", value=b"%d" % i, partition=0)
        await p.flush()
    async with Consumer(bootstrap, group_id=group, auto_offset_reset="earliest",
                        enable_auto_commit=False, max_poll_records=12) as c:
        c.subscribe(["rs"])
        got = []
        with anyio.fail_after(15):
            while len(got) < 12:
                got += await c.poll(timeout=0.5, max_records=12 - len(got))
        await c.commit(metadata="resume-here")
    return got


async def _resume(bootstrap):
    group, tp = GROUP, TP
    async with Consumer(bootstrap, group_id=group, auto_offset_reset="earliest",
                        enable_auto_commit=False) as c:
        committed = await c.committed([tp])
        assert committed[tp].offset == 12 and committed[tp].metadata == "resume-here"
        c.subscribe(["rs"])
        rest = []
        with anyio.fail_after(15):
            while len(rest) < 8:
                rest += await c.poll(timeout=0.5)
    return rest


@BACKENDS
def test_a_producer_survives_a_broker_restart_mid_stream(tmp_path, backend):
    """The same producer keeps working across a restart (reconnect, metadata refresh)."""
    port = _free_port()
    bootstrap = f"127.0.0.1:{port}"
    brokers = [embedded_broker(tmp_path, port=port)]
    brokers[0].__enter__()

    async def main():
        async with Producer(bootstrap, request_timeout_ms=5000, retry_backoff_ms=50) as p:
            await p.send("mid", value=b"a", partition=0)
            await anyio.to_thread.run_sync(brokers[0].__exit__, None, None, None)
            brokers[0] = embedded_broker(tmp_path, port=port)
            await anyio.to_thread.run_sync(brokers[0].__enter__)
            return await p.send("mid", value=b"b", partition=0)

    try:
        md = anyio.run(main, backend=backend)
    finally:
        brokers[0].__exit__(None, None, None)
    assert md.offset == 1


@BACKENDS
def test_bootstrap_skips_an_unreachable_address(kbroker_factory_free_port, backend):
    """Several bootstrap addresses: a dead one first does not stop the client."""
    dead, live = kbroker_factory_free_port

    async def main():
        async with Producer(f"127.0.0.1:{dead},{live}", request_timeout_ms=5000) as p:
            return await p.send("boot", value=b"x", partition=0)

    assert anyio.run(main, backend=backend).offset >= 0


@pytest.fixture
def kbroker_factory_free_port(tmp_path):
    with embedded_broker(tmp_path) as b:
        yield _free_port(), b.bootstrap_servers


@BACKENDS
def test_a_group_member_rides_through_a_broker_restart(tmp_path, backend):
    """A subscribed consumer keeps consuming across a broker restart: reconnect, find the
    coordinator again, rejoin, resume from its committed offset; nothing lost or repeated."""
    port = _free_port()
    bootstrap = f"127.0.0.1:{port}"
    settings = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "500"}
    brokers = [embedded_broker(tmp_path, port=port, settings=settings)]
    brokers[0].__enter__()

    async def main():
        async with Producer(bootstrap, request_timeout_ms=5000) as p:
            for i in range(10):
                await p.produce("ride", value=b"%d" % i, partition=0)
            await p.flush()
        seen = []
        async with Consumer(bootstrap, group_id="ride-g", auto_offset_reset="earliest", enable_auto_commit=False,
                            session_timeout_ms=2000, heartbeat_interval_ms=200, request_timeout_ms=5000) as c:
            c.subscribe(["ride"])
            with anyio.fail_after(20):
                while len(seen) < 10:
                    seen += [r.value for r in await c.poll(timeout=0.5)]
            await c.commit()
            await anyio.to_thread.run_sync(brokers[0].__exit__, None, None, None)
            brokers[0] = embedded_broker(tmp_path, port=port, settings=settings)
            await anyio.to_thread.run_sync(brokers[0].__enter__)
            async with Producer(bootstrap) as p:
                for i in range(10, 20):
                    await p.produce("ride", value=b"%d" % i, partition=0)
                await p.flush()
            with anyio.fail_after(30):
                while len(seen) < 20:
                    seen += [r.value for r in await c.poll(timeout=0.5)]
        return seen

    try:
        seen = anyio.run(main, backend=backend)
    finally:
        brokers[0].__exit__(None, None, None)
    assert seen == [b"%d" % i for i in range(20)]
