"""ConnectionQuotas: max.connections, max.connections.per.ip and the creation rate, without a network."""

from __future__ import annotations

from kafkito.broker.connection_quotas import ConnectionQuotas

UNLIMITED = 2**31 - 1


def test_max_connections_counts_every_address():
    q = ConnectionQuotas(2, UNLIMITED, UNLIMITED)
    assert q.admit("10.0.0.1") is None
    assert q.admit("10.0.0.2") is None
    assert "max.connections (2)" in q.admit("10.0.0.3")
    q.release("10.0.0.1")
    assert q.admit("10.0.0.3") is None
    assert q.total == 2


def test_max_connections_per_ip_counts_one_address():
    q = ConnectionQuotas(UNLIMITED, 2, UNLIMITED)
    assert q.admit("a") is None and q.admit("a") is None
    refusal = q.admit("a")
    assert "max.connections.per.ip (2)" in refusal and "from a" in refusal
    assert q.admit("b") is None  # another address is not affected
    q.release("a")
    assert q.admit("a") is None
    q.release("b")
    assert "b" not in q.by_ip  # no entry left behind per address ever seen


def test_a_refused_connection_is_not_counted():
    q = ConnectionQuotas(1, UNLIMITED, UNLIMITED)
    q.admit("a")
    for _ in range(5):
        assert q.admit("a") is not None
    assert q.total == 1 and q.by_ip == {"a": 1}


def test_creation_rate_takes_a_burst_then_spaces_accepts():
    q = ConnectionQuotas(UNLIMITED, UNLIMITED, 10)
    assert [q.accept_delay_s(0.0) for _ in range(10)] == [0.0] * 10  # one second's worth at once
    delay = q.accept_delay_s(0.0)
    assert 0.09 < delay <= 0.1
    assert q.accept_delay_s(0.1) == 0.0  # a token came back after 1/rate seconds
    assert q.accept_delay_s(0.1) > 0


def test_creation_rate_over_a_long_run_stays_at_the_rate():
    q = ConnectionQuotas(UNLIMITED, UNLIMITED, 50)
    now, accepted = 0.0, 0
    while now < 10.0:
        delay = q.accept_delay_s(now)
        if delay:
            now += delay
        else:
            accepted += 1
    assert 50 * 10 <= accepted <= 50 * 11 + 1  # the rate, plus the first second's burst
