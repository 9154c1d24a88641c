"""The broker's log cleaner: threads of its own that run storage's cleaner beside serving.

Theory of operation. Storage's ``Cleaner`` (storage/cleaner.py) plans and rewrites one log
at a time and swaps the result in under the log's own lock; this module only supplies
threads, time and a throttle. ``log.cleaner.threads`` OS threads each loop: pick the
dirtiest due log that no other thread is cleaning (``choose`` over every compacted log's
``plan``), clean it, tell the event loop (the partition's waiters are woken so parked
fetches re-read its bounds), and come back; with nothing due, wait
``log.cleaner.backoff.ms``. The event loop never reads a segment.

*Beside serving.* A clean is background work: it should take the CPU serving leaves idle,
not share it equally with the event loop. Two things make it so:

- the clean's record loops run in C with the GIL released (storage/offset_map.py), so the
  cleaner thread holds the interpreter only for per-batch bookkeeping;
- each cleaner thread lowers its own CPU priority by ``log.cleaner.thread.nice`` (Linux
  schedules threads one by one; elsewhere the setting does nothing), so when produce and
  fetch keep every core busy the kernel runs them first and the clean gets a small share.
  That is why the threads are the cleaner's own: a lowered priority cannot be raised back
  without privileges, and must not leak into trio's worker threads, which run fsyncs.

Against the log, the cleaner needs no lock of its own: it reads closed segments (which
appends never touch) through pinned descriptors, writes only ``.cleaned`` files, and the
swap happens under ``PartitionLog._lock``, after checking that retention, DeleteRecords or
topic deletion did not take any of the segments meanwhile (then the clean is dropped and
redone later). Fetches that sliced an old segment keep reading it: its files are renamed
``.deleted`` and closed after ``file.delete.delay.ms``. Reads never wait for a clean.

``log.cleaner.io.max.bytes.per.second`` is one ``Throttler`` shared by the threads (bytes
read plus written, as Kafka's); the per-thread key map gets
``log.cleaner.dedupe.buffer.size / log.cleaner.threads`` (24 bytes a key, filled to
``log.cleaner.io.buffer.load.factor``). Shutdown sets ``stopping``: a clean in progress
stops at the next batch (``CleanerAborted``, its ``.cleaned`` file removed), so the broker
never waits for a whole clean.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from typing import Callable

import trio

from kafkito.storage import LogManager, PartitionLog, StorageError
from kafkito.storage.cleaner import (
    DEDUPE_ENTRY_BYTES,
    Cleaner,
    CleanerAborted,
    CleanResult,
    choose,
    plan,
)

log = logging.getLogger("kafkito.broker.log_cleaner")

RESULTS_KEPT = 64  # recent CleanResults, for tests and the coming metrics


class Throttler:
    """At most ``bytes_per_second`` on average over the callers together: each call adds
    its bytes and sleeps (in the calling worker thread) as long as the rate is ahead."""

    def __init__(self, bytes_per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, window_s: float = 0.3):
        self.bytes_per_second = bytes_per_second
        self._clock, self._sleep, self._window_s = clock, sleep, window_s
        self._lock = threading.Lock()
        self._start = clock()
        self._bytes = 0.0
        self.slept_s = 0.0

    def __call__(self, nbytes: int) -> None:
        if self.bytes_per_second >= 1e300:
            return
        with self._lock:
            self._bytes += nbytes
            now = self._clock()
            elapsed = now - self._start
            ahead_s = self._bytes / self.bytes_per_second - elapsed
            if ahead_s <= 0:
                if elapsed > self._window_s:  # forget the past: no burst after an idle time
                    self._start, self._bytes = now, 0.0
                return
            self._start, self._bytes = now + ahead_s, 0.0
            self.slept_s += ahead_s
        self._sleep(ahead_s)


def lower_thread_priority(increment: int) -> int | None:
    """Add ``increment`` to the calling thread's nice value (Linux, where setpriority on a
    thread id affects that thread only); returns the new value, or None where it does not
    apply or the kernel refused."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return None
    tid = threading.get_native_id()
    try:
        nice = min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment)
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as e:
        log.warning("cannot lower the cleaner thread's priority: %s", e)
        return None
    return nice


class LogCleanerService:
    def __init__(self, logs: LogManager, config, now_ms: Callable[[], int],
                 on_cleaned: Callable[[str, int], None] = lambda topic, partition: None):
        self.logs = logs
        self.threads = config.log_cleaner_threads
        self.enabled = config.log_cleaner_enable and self.threads > 0
        self.backoff_s = config.log_cleaner_backoff_ms / 1000
        self.nice_increment = config.log_cleaner_thread_nice
        buffer = config.log_cleaner_dedupe_buffer_size // max(1, self.threads)
        self.map_capacity = int(buffer * config.log_cleaner_io_buffer_load_factor) // DEDUPE_ENTRY_BYTES
        self.now_ms = now_ms
        self.on_cleaned = on_cleaned
        self.stopping = threading.Event()
        # A throttled thread waits on ``stopping``: shutdown wakes it at once.
        self.throttle = Throttler(config.log_cleaner_io_max_bytes_per_second,
                                  sleep=self.stopping.wait)
        self._in_progress: set[int] = set()  # id() of logs a thread is cleaning
        self.uncleanable: set[int] = set()  # id() of logs a clean failed on unexpectedly
        self._lock = threading.Lock()
        self.results: deque[CleanResult] = deque(maxlen=RESULTS_KEPT)
        self.cleans = 0

    async def run(self) -> None:
        """Start the cleaner threads; return once they have all ended (after
        ``request_stop``, or when this task is cancelled: that stops them too)."""
        if not self.enabled:
            return
        token = trio.lowlevel.current_trio_token()
        ended = trio.Event()
        running = [self.threads]

        def one_ended() -> None:  # in the trio thread
            running[0] -= 1
            if not running[0]:
                ended.set()

        def thread_main(index: int) -> None:
            try:
                self._thread(index, token)
            finally:
                try:
                    token.run_sync_soon(one_ended)
                except trio.RunFinishedError:
                    pass

        for i in range(self.threads):
            threading.Thread(target=thread_main, args=(i,), name=f"kafkito-log-cleaner-{i}",
                             daemon=True).start()
        try:
            await ended.wait()
        finally:
            self.stopping.set()
            with trio.CancelScope(shield=True):
                await ended.wait()

    def request_stop(self) -> None:
        """Stop at the next batch (thread-safe); ``run`` returns once the threads ended."""
        self.stopping.set()

    def _thread(self, index: int, token) -> None:
        lower_thread_priority(self.nice_increment)
        cleaner = Cleaner(self.map_capacity, throttle=self.throttle,
                          should_stop=self.stopping.is_set,
                          decompressed_bytes_max=self.logs.decompressed_bytes_max)
        while not self.stopping.is_set():
            result = self.clean_once(cleaner)
            if result is not None:
                try:
                    trio.from_thread.run_sync(self.on_cleaned, result.topic, result.partition,
                                              trio_token=token)
                except trio.RunFinishedError:
                    return
            if result is None or result.swaps_abandoned:
                self.stopping.wait(self.backoff_s)

    # -- in a worker thread ----------------------------------------------------------
    def clean_once(self, cleaner: Cleaner) -> CleanResult | None:
        """Clean the dirtiest due log no other thread holds; None when none is due."""
        now = self.now_ms()
        picked: PartitionLog | None = None
        with self._lock:
            skip = self._in_progress | self.uncleanable
            candidates = [lg for lg in self.logs.logs() if lg.config.compact and id(lg) not in skip]
        plans = []
        for lg in candidates:
            try:
                plans.append(plan(lg, now))
            except (StorageError, OSError) as e:
                log.warning("%s: cannot plan a clean: %s", lg.name, e)
        for p in choose(plans):
            with self._lock:
                if id(p.log) not in self._in_progress:
                    self._in_progress.add(id(p.log))
                    picked, chosen = p.log, p
                    break
        if picked is None:
            return None
        started = time.perf_counter()
        try:
            result = cleaner.clean(picked, now, chosen)
        except CleanerAborted:
            return None
        except (StorageError, OSError) as e:
            # A log closed or deleted under us, or a disk error: this log waits for the next
            # round; the others go on.
            log.warning("%s: clean failed: %s", picked.name, e)
            return None
        except Exception:
            # A bug, or data the cleaner cannot parse: as Kafka's uncleanable partitions,
            # this log is left alone until the next start; serving and other logs go on.
            log.exception("%s: clean failed; not cleaning this log again until restart", picked.name)
            with self._lock:
                self.uncleanable.add(id(picked))
            return None
        finally:
            with self._lock:
                self._in_progress.discard(id(picked))
        if result is not None:
            log.info("%s in %.0f ms", result.describe(), (time.perf_counter() - started) * 1000)
            self.results.append(result)
            self.cleans += 1
        return result


__all__ = ["LogCleanerService", "Throttler"]
