"""The broker's cleaner runner (broker/log_cleaner.py): the shared throttle, and shutdown in
the middle of a long clean."""

from __future__ import annotations

import os
import sys
import time

import pytest

from kafkito.broker.log_cleaner import Throttler
from kafkito.records import build_batch
from kafkito.storage import LogConfig, ManualClock, PartitionLog
from kafkito.testing import broker as embedded_broker

MB = 1024 * 1024


class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def test_the_throttle_holds_callers_to_the_rate_on_average():
    t = FakeTime()
    throttle = Throttler(10 * MB, clock=t.clock, sleep=t.sleep)
    for _ in range(100):
        throttle(MB)  # 100 MB as fast as the caller can
        t.now += 0.001
    assert 9.9 <= t.now <= 10.5  # 100 MB at 10 MB/s
    # Unthrottled (Kafka's default, Double.MAX_VALUE): never sleeps.
    free = Throttler(1.7976931348623157e308, clock=t.clock, sleep=t.sleep)
    before = len(t.sleeps)
    free(10**12)
    assert len(t.sleeps) == before


def test_an_idle_time_does_not_buy_a_burst():
    t = FakeTime()
    throttle = Throttler(MB, clock=t.clock, sleep=t.sleep)
    t.now = 100.0  # long idle
    throttle(MB)
    throttle(MB)
    assert t.now >= 100.0 + 1.0


def _dirty_log(directory: str, mb: int) -> None:
    clock = ManualClock(1_700_000_000_000)
    config = LogConfig(cleanup_policy=("compact",), segment_bytes=MB)
    plog = PartitionLog.open(directory, "dirty", 0, config, clock=clock)
    value = os.urandom(1000)
    for i in range(mb * MB // (16 * 1020)):
        plog.append(build_batch([(b"k%d" % (j % 7), value, [], clock.now_ms()) for j in range(16)]),
                    clock.now_ms())
    plog.close()


def test_shutdown_stops_a_clean_in_progress_without_waiting_for_it(tmp_path):
    with embedded_broker(tmp_path, settings={"log.cleaner.enable": "false"}) as b:
        b.create_topic("dirty", configs={"cleanup.policy": "compact", "segment.bytes": str(MB)})
    directory = str(tmp_path / "dirty-0")
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    _dirty_log(directory, 8)
    # 8 MB at 256 KiB/s: a clean that would take a minute.
    settings = {"log.cleaner.io.max.bytes.per.second": str(256 * 1024), "log.cleaner.backoff.ms": "10"}
    with embedded_broker(tmp_path, settings=settings) as b:
        time.sleep(0.5)
        assert b.broker.log_cleaner.cleans == 0
        assert b.broker.log_cleaner._in_progress  # busy
        started = time.monotonic()
    stop_s = time.monotonic() - started
    assert stop_s < 2, stop_s  # the throttle's wait and the clean both stop at once
    assert not [n for n in os.listdir(directory) if n.endswith((".cleaned", ".swap"))]


def _due_compacted_log(b):
    """A compacted topic's log with 30 records of one key over closed 1 KiB segments: due."""
    b.create_topic("c", configs={"cleanup.policy": "compact", "segment.bytes": "1024",
                                 "min.cleanable.dirty.ratio": "0.01"})
    plog = b.broker.state.logs.log("c", 0)
    for _ in range(30):
        now = int(time.time() * 1000)
        plog.append(build_batch([(b"k", b"v" * 100, [], now)]), now)
    plog.flush()
    return plog


def test_a_clean_that_fails_unexpectedly_marks_the_log_and_spares_the_broker(tmp_path, monkeypatch):
    from kafkito.storage.cleaner import Cleaner

    def broken(self, log_, now_ms, plan_=None):
        raise ValueError("a bug")

    monkeypatch.setattr(Cleaner, "clean", broken)
    settings = {"log.cleaner.backoff.ms": "10"}
    with embedded_broker(tmp_path, settings=settings) as b:
        plog = _due_compacted_log(b)
        deadline = time.monotonic() + 10
        while not b.broker.log_cleaner.uncleanable and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b.broker.log_cleaner.uncleanable == {id(plog)}
    assert b.error is None


def _cleaner_threads():
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("kafkito-log-cleaner-")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_cleaner_threads_run_at_a_lower_priority_and_serving_does_not(tmp_path):
    base = os.getpriority(os.PRIO_PROCESS, 0)
    settings = {"log.cleaner.threads": "2", "log.cleaner.thread.nice": "7"}
    with embedded_broker(tmp_path, settings=settings) as b:
        deadline = time.monotonic() + 5
        while len(_cleaner_threads()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        threads = _cleaner_threads()
        assert len(threads) == 2
        deadline = time.monotonic() + 5  # each thread lowers itself as it starts
        while time.monotonic() < deadline and any(
                os.getpriority(os.PRIO_PROCESS, t.native_id) != min(19, base + 7) for t in threads):
            time.sleep(0.01)
        assert [os.getpriority(os.PRIO_PROCESS, t.native_id) for t in threads] == [min(19, base + 7)] * 2
        # The broker's own thread (the event loop) and the rest of the process keep theirs.
        assert os.getpriority(os.PRIO_PROCESS, b._thread.native_id) == base
        assert os.getpriority(os.PRIO_PROCESS, 0) == base
    assert not _cleaner_threads()  # stopped with the broker


def test_priority_zero_cleans_in_trios_worker_threads(tmp_path):
    settings = {"log.cleaner.thread.nice": "0", "log.cleaner.backoff.ms": "10"}
    with embedded_broker(tmp_path, settings=settings) as b:
        _due_compacted_log(b)
        deadline = time.monotonic() + 10
        while not b.broker.log_cleaner.cleans and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b.broker.log_cleaner.cleans
        assert not _cleaner_threads()
