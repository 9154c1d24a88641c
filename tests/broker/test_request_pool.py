"""RequestMemoryPool: the broker-wide pool and the per-connection share, without a network."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkito.broker.config import ConfigError, load_config
from kafkito.broker.request_pool import RequestMemoryPool


def test_reservations_stop_at_the_pool_and_resume_when_bytes_come_back():
    pool = RequestMemoryPool(capacity_bytes=100, per_connection_bytes=60)
    assert pool.try_reserve(0, 60)
    assert pool.try_reserve(0, 40)
    assert not pool.try_reserve(0, 1)  # full: the caller waits, nothing fails
    assert pool.refusals == 1
    pool.release(40)
    assert pool.try_reserve(0, 30)
    assert pool.reserved_bytes == 90 and pool.peak_reserved_bytes == 100


def test_one_connection_cannot_take_more_than_its_share():
    pool = RequestMemoryPool(capacity_bytes=1000, per_connection_bytes=100)
    assert pool.try_reserve(0, 80)
    assert not pool.try_reserve(80, 30)  # this connection already holds 80
    assert not pool.is_exhausted_for(30)  # the share refused, not the pool
    assert pool.try_reserve(0, 30)  # another connection still gets room


def test_a_connection_holding_nothing_may_take_one_frame_above_its_share():
    pool = RequestMemoryPool(capacity_bytes=1000, per_connection_bytes=100)
    assert pool.try_reserve(0, 400)
    assert not pool.try_reserve(400, 1)


def test_unbounded_pool_is_kafkas_minus_one():
    pool = RequestMemoryPool(capacity_bytes=-1, per_connection_bytes=100)
    assert pool.try_reserve(0, 10**12)
    assert not pool.is_exhausted_for(10**12)


def test_releasing_more_than_reserved_is_a_bug():
    pool = RequestMemoryPool(capacity_bytes=100, per_connection_bytes=50)
    pool.try_reserve(0, 10)
    with pytest.raises(AssertionError):
        pool.release(11)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 300), st.booleans()), max_size=200))
def test_the_pool_is_never_exceeded_and_each_share_holds(steps):
    """Random reservations and releases by four connections: every invariant, every step."""
    capacity, share = 1000, 300
    pool = RequestMemoryPool(capacity, share)
    held = [[] for _ in range(4)]
    for conn, nbytes, release in steps:
        if release and held[conn]:
            pool.release(held[conn].pop(0))
        elif pool.try_reserve(sum(held[conn]), nbytes):
            held[conn].append(nbytes)
        assert pool.reserved_bytes == sum(map(sum, held)) <= capacity
        for frames in held:
            assert sum(frames) <= share or len(frames) == 1
    assert pool.peak_reserved_bytes <= capacity


@pytest.mark.parametrize("settings, message", [
    ({"queued.max.request.bytes": "104857600"}, "must exceed what one connection may hold"),
    ({"queued.max.request.bytes": "1000", "socket.request.max.bytes": "500",
      "queued.max.request.bytes.per.connection": "1000"}, "no connection can take the whole pool"),
    ({"queued.max.request.bytes": "0"}, "below the minimum|must be positive"),
    ({"queued.max.request.bytes": "-2"}, "below the minimum"),
])
def test_a_pool_one_connection_could_fill_is_refused_at_startup(settings, message):
    with pytest.raises(ConfigError, match=message):
        load_config(environ={}, overrides=settings.items())


def test_pool_settings_load():
    c = load_config(environ={}, overrides=[("queued.max.request.bytes", "-1")])
    assert c.queued_max_request_bytes == -1
    c = load_config(environ={})
    assert c.queued_max_request_bytes > max(c.queued_max_request_bytes_per_connection, c.socket_request_max_bytes)
