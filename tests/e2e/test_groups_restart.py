"""A group resumes from its committed offsets after the broker restarts, cleanly or by
``kill -9``: committed offsets (and the group itself) are reloaded from
``__consumer_offsets``."""

from __future__ import annotations

import signal

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from e2e.test_groups_rebalance import PARTITIONS, Member, produce, wait_until
from e2e.serve import ServeProcess

from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e

FAST_GROUPS = {"group.min.session.timeout.ms": "500"}


def test_clean_restart_resumes_at_committed_offsets(tmp_path):
    """Committed with aiokafka, resumed with kafka-python across a clean restart."""
    with embedded_broker(tmp_path, settings=FAST_GROUPS) as b:
        b.create_topic("orders", PARTITIONS)
        produce(b.bootstrap_servers, "orders", "before", 3)
        a = Member("aiokafka", b.bootstrap_servers, "billing", "orders")
        try:
            wait_until(lambda: len(a.records) >= 3 * PARTITIONS, 30, "first member consumed")
            assert a.commit() == {p: 3 for p in range(PARTITIONS)}
            a.close()
        finally:
            a.stop_quietly()
        after = produce(b.bootstrap_servers, "orders", "after", 2)
    with embedded_broker(tmp_path, settings=FAST_GROUPS) as b:
        r = Member("kafka-python", b.bootstrap_servers, "billing", "orders")
        try:
            wait_until(lambda: len(r.records) >= len(after), 30, "resumed member consumed")
            assert sorted(v for _, _, v in r.records) == sorted(after)
            assert {(p, o) for p, o, _ in r.records} == {(p, o) for p in range(PARTITIONS) for o in (3, 4)}
        finally:
            r.stop_quietly()


def test_kill_minus_nine_loses_no_committed_offset(tmp_path, monkeypatch):
    """The broker and the member die together right after a synchronous commit; the group
    comes back with that member (until its session expires) and the commit."""
    monkeypatch.setenv("KAFKITO_GROUP_MIN_SESSION_TIMEOUT_MS", "500")
    data = tmp_path / "data"
    serve = ServeProcess(data)
    member = None
    try:
        admin = AdminClient({"bootstrap.servers": serve.bootstrap})
        admin.create_topics([NewTopic("events", PARTITIONS, 1)])["events"].result(10)
        produce(serve.bootstrap, "events", "one", 5)
        member = Member("confluent", serve.bootstrap, "audit", "events")
        wait_until(lambda: len(member.records) >= 5 * PARTITIONS, 30, "member consumed")
        assert member.commit() == {p: 5 for p in range(PARTITIONS)}
        unacknowledged = produce(serve.bootstrap, "events", "two", 2)
    finally:
        serve.stop(signal.SIGKILL)
        if member is not None:
            member.kill()
    serve = ServeProcess(data)
    resumed = None
    try:
        # The group itself was reloaded: its last generation, with the (dead) member.
        admin = AdminClient({"bootstrap.servers": serve.bootstrap})
        described = admin.describe_consumer_groups(["audit"])["audit"].result(10)
        assert str(described.state).endswith("STABLE") and len(described.members) == 1
        resumed = Member("confluent", serve.bootstrap, "audit", "events")
        # The dead member is back in the reloaded group until its 2 s session expires.
        wait_until(lambda: resumed.assigned == list(range(PARTITIONS)), 30, "took over every partition")
        wait_until(lambda: len(resumed.records) >= len(unacknowledged), 30, "resumed member consumed")
        assert sorted(v for _, _, v in resumed.records) == sorted(unacknowledged)
        assert min(o for _, o, _ in resumed.records) == 5
    finally:
        if resumed is not None:
            resumed.stop_quietly()
        assert serve.stop() == 0
