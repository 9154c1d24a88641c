"""A model of the log (a list of batches) against the real PartitionLog.

Hypothesis drives appends (any codec, several batches per blob), reads at random offsets
with random max_bytes and max_offset, flushes, rolls, clock moves with retention.ms /
retention.bytes, DeleteRecords, recovery-point checkpoints, clean close/reopen and
crash/reopen (unclean recovery).
After every step the log must serve exactly the model's batches from the log start offset,
byte for byte, and its offsets must agree with the model."""

import shutil
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from storage_testlib import CODECS, crash, payload, read_all

from kafkito.storage.log import ORIGIN_COORDINATOR

from kafkito.records import RecordBatch, iter_batches
from kafkito.storage import (
    LogConfig,
    ManualClock,
    OffsetOutOfRangeError,
    PartitionLog,
)

BASE = LogConfig(segment_bytes=1200, index_interval_bytes=150, segment_index_bytes=64,
                 retention_ms=-1, retention_bytes=-1, file_delete_delay_ms=0)


class LogMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.dir = tempfile.mkdtemp(prefix="kafkito-stateful-")
        self.clock = ManualClock(1_000_000)
        self.config = BASE
        self.log = self._open(clean=True)
        # Model: (base_offset, last_offset, content bytes after the header, max timestamp).
        self.model: list[tuple[int, int, bytes, int]] = []
        self.start = 0
        self.tag = 0

    def _open(self, clean):
        return PartitionLog.open(self.dir, "t", 0, self.config, clock=self.clock,
                                 clean_shutdown=clean)

    def teardown(self):
        if getattr(self, "log", None) is not None:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def end(self):
        return self.model[-1][1] + 1 if self.model else self.start

    # ------------------------------------------------------------------------- rules
    @rule(batches=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 400), st.sampled_from(CODECS)),
                           min_size=1, max_size=3))
    def append(self, batches):
        blob = b""
        parts = []
        for n, size, codec in batches:
            self.tag += 1
            raw = payload(self.tag, n=n, size=size, compression=codec, ts=self.clock.now_ms())
            blob += raw
            parts.append(RecordBatch(raw))
        # Several batches in one append: the coordinator's origin (a client sends one).
        info = self.log.append(blob, self.clock.now_ms(), origin=ORIGIN_COORDINATOR)
        assert info.base_offset == self.end
        offset = self.end
        for b in parts:
            self.model.append((offset, offset + b.last_offset_delta, b.buf[61:].tobytes(),
                               b.max_timestamp))
            offset += b.records_count
        assert info.last_offset == offset - 1 == self.log.log_end_offset - 1

    @rule(data=st.data(), max_bytes=st.integers(1, 3000))
    def read(self, data, max_bytes):
        offset = data.draw(st.integers(self.start, self.end))
        max_offset = data.draw(st.one_of(st.none(), st.integers(self.start, self.end)))
        s = self.log.read(offset, max_bytes, max_offset)
        got = list(iter_batches(s.tobytes()))
        limit = self.end if max_offset is None else max_offset
        expect = [m for m in self.model if m[1] >= offset and m[1] < limit]
        if not got:
            assert not expect  # empty only when no whole batch below the limit holds `offset`
            return
        assert len(got) <= len(expect)
        assert got[0].base_offset == expect[0][0]  # starts with the batch holding `offset`
        assert sum(b.size_bytes for b in got) <= max_bytes or len(got) == 1
        for b, m in zip(got, expect):
            assert (b.base_offset, b.last_offset, b.buf[61:].tobytes()) == m[:3]
            assert b.is_valid()

    @rule()
    def flush(self):
        assert self.log.flush() == self.end

    @rule()
    def roll(self):
        self.log.roll(self.clock.now_ms())

    @rule(ms=st.integers(0, 5000))
    def tick(self, ms):
        self.clock.advance(ms)

    @rule(retention_ms=st.integers(0, 8000), flush=st.booleans())
    def retention_by_time(self, retention_ms, flush):
        if flush:
            self.log.flush()
        self.config = self.log.config.__class__(**{**_fields(self.log.config),
                                                   "retention_ms": retention_ms,
                                                   "retention_bytes": -1})
        self.log.update_config(self.config)
        now = self.clock.now_ms()
        flushed = self.log.flushed_offset
        self.log.apply_retention(now)
        self._apply_new_start(flushed)
        # What is left is not older than retention.ms, except the first remaining segment's
        # successors that were blocked by a younger (or unflushed) predecessor.
        first = self.log.segments[0]
        if first.next_offset <= flushed and first.max_timestamp >= 0 and not first.is_empty:
            assert now - first.largest_timestamp() <= retention_ms

    @rule(retention_bytes=st.integers(0, 4000))
    def retention_by_size(self, retention_bytes):
        self.log.flush()
        self.config = self.log.config.__class__(**{**_fields(self.log.config),
                                                   "retention_ms": -1,
                                                   "retention_bytes": retention_bytes})
        self.log.update_config(self.config)
        self.log.apply_retention(self.clock.now_ms())
        self._apply_new_start(self.log.flushed_offset)
        segs = self.log.segments
        if not (len(segs) == 1 and segs[0].is_empty):
            assert self.log.size_bytes - segs[0].size < retention_bytes or segs[0] is segs[-1] and segs[0].is_empty

    @rule(data=st.data())
    def delete_records(self, data):
        target = data.draw(st.integers(self.start, self.end))
        assert self.log.delete_records_before(target) == max(target, self.start)
        self.start = max(target, self.start)
        self.model = [m for m in self.model if m[1] >= self.start]
        self._apply_new_start(self.log.flushed_offset)

    @rule()
    def checkpoint_recovery_point(self):
        # The next unclean reopen then walks the segments below it instead of scanning them.
        self.log.checkpoint_recovery_point()

    @rule()
    def reopen_clean(self):
        self.log.close()
        self.log = self._open(clean=True)

    @rule()
    def reopen_after_crash(self):
        crash(self.log)  # page-cache contents survive a process crash: nothing is lost
        self.log = self._open(clean=False)

    # ---------------------------------------------------------------------- helpers
    def _apply_new_start(self, flushed_before):
        new_start = self.log.log_start_offset
        assert new_start >= self.start
        assert new_start <= max(flushed_before, self.start)  # never deletes unflushed data
        # Retention removes whole batches: the new start is a batch boundary or the end.
        if new_start > self.start and new_start != self.end:
            assert any(m[0] == new_start for m in self.model) or any(
                m[0] <= new_start <= m[1] for m in self.model)
        self.start = new_start
        self.model = [m for m in self.model if m[1] >= self.start]

    # ------------------------------------------------------------------- invariants
    @invariant()
    def serves_exactly_the_model(self):
        assert self.log.log_start_offset == self.start
        assert self.log.log_end_offset == self.end
        got = read_all(self.log)
        assert [(b.base_offset, b.last_offset, b.buf[61:].tobytes()) for b in got] == [
            m[:3] for m in self.model]
        if self.start > 0:
            try:
                self.log.read(self.start - 1, 100)
                raise AssertionError("read below the log start offset succeeded")
            except OffsetOutOfRangeError:
                pass


def _fields(config):
    return {f: getattr(config, f) for f in config.__struct_fields__}


LogMachine.TestCase.settings = settings(LogMachine.TestCase.settings, stateful_step_count=40)
TestLogModel = LogMachine.TestCase
