"""The pieces every internal-topic coordinator shares: the outbox's write-then-apply
contract, the keyed deadline timer, and waiters."""

from __future__ import annotations

import pytest

from kafkito.broker.coordinator_runtime import DeadlineTimer, Outbox, Waiter
from kafkito.protocol import ErrorCode

E = ErrorCode


class Codec:
    @staticmethod
    def encode(fact):
        key, value = fact
        return key.encode(), None if value is None else value.encode()

    @staticmethod
    def is_durable(fact):
        return fact[1] is None


def test_outbox_splits_by_partition_applies_each_then_answers_once_with_the_first_error():
    events = []
    outbox = Outbox(Codec(), lambda routing_key: len(routing_key) % 2,
                    on_queued=lambda facts: events.append(("queued", list(facts))),
                    on_written=lambda facts, error, offset: events.append(("written", list(facts), error)))
    answers = []
    outbox.write([("a", ("k1", "v1")), ("bb", ("k2", None)), ("c", ("k3", "v3"))], answers.append)
    assert len(outbox) == 2
    first, second = outbox.take()
    assert not outbox and (first.partition, first.facts) == (1, [("k1", "v1"), ("k3", "v3")])
    assert (second.partition, second.facts) == (0, [("k2", None)])
    assert first.records() == [(b"k1", b"v1"), (b"k3", b"v3")] and not first.durable and second.durable
    outbox.done(second, E.KAFKA_STORAGE_ERROR)
    assert answers == []  # one partition is not written yet
    outbox.done(first)
    assert answers == [E.KAFKA_STORAGE_ERROR]
    assert events == [("queued", [("k1", "v1"), ("k3", "v3")]), ("queued", [("k2", None)]),
                      ("written", [("k2", None)], E.KAFKA_STORAGE_ERROR),
                      ("written", [("k1", "v1"), ("k3", "v3")], E.NONE)]


def test_outbox_with_nothing_to_write_answers_at_once():
    outbox = Outbox(Codec(), lambda routing_key: 0)
    answers = []
    outbox.write([], answers.append)
    assert answers == [E.NONE] and not outbox.take()


def test_deadline_timer_replaces_cancels_and_fires_in_order():
    timer = DeadlineTimer()
    fired = []
    timer.schedule("a", 30, lambda: fired.append("a"))
    timer.schedule("b", 10, lambda: fired.append("b"))
    timer.schedule("a", 20, lambda: fired.append("a2"))  # replaces a's deadline
    timer.schedule("c", 15, lambda: fired.append("c"))
    timer.cancel("c")
    assert timer.next_deadline_ms() == 10 and len(timer) == 2
    while (action := timer.pop_due(25)) is not None:
        action()
    assert fired == ["b", "a2"] and timer.next_deadline_ms() is None


def test_deadline_timer_heap_stays_small_under_constant_rescheduling():
    timer = DeadlineTimer()
    for i in range(10_000):
        timer.schedule(("heartbeat", i % 3), i, lambda: None)
    assert len(timer) == 3 and len(timer._heap) <= 64 + 4 * 3


def test_waiter_is_answered_exactly_once_and_notifies():
    w: Waiter[int] = Waiter()
    heard = []
    w.notify = lambda: heard.append(w.result)
    w.complete(7)
    assert w.done and heard == [7]
    with pytest.raises(AssertionError):
        w.complete(8)
