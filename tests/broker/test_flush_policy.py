"""One flush policy (storage decides when a partition is due) and one mechanism (the
broker's flusher fsyncs in worker threads, group-committed, and wakes fetches)."""

from __future__ import annotations

import time

import trio
import trio.testing
from e2e.raw import RawClient

from kafkito.broker.partitions import PartitionManager
from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkito.records import build_batch
from kafkito.storage import LogConfig, LogManager
from kafkito.storage.fileio import FileIO
from kafkito.testing import broker as embedded_broker

TS = 1_700_000_000_000


class TrioClock:
    """Storage's clock read from trio's MockClock, so the policy and trio's sleeps agree."""

    def __init__(self, mock: trio.testing.MockClock) -> None:
        self.mock = mock

    def now_ms(self) -> int:
        return TS + int(self.mock.current_time() * 1000)


def _batch(value: bytes = b"v") -> bytes:
    return build_batch([(b"k", value, [], TS)])


async def _advance(mock: trio.testing.MockClock, pm: PartitionManager, seconds: float) -> None:
    """Move trio's clock, then let every task run and every fsync in a worker thread end
    (the clock stands still meanwhile: no autojump, which would race the threads)."""
    mock.jump(seconds)
    await trio.testing.wait_all_tasks_blocked()
    while any(st.flushing is not None for st in pm._states.values()):
        await trio.to_thread.run_sync(time.sleep, 0.002)
        await trio.testing.wait_all_tasks_blocked()


def test_a_topics_flush_ms_is_honoured_and_overrides_the_broker_interval(tmp_path):
    mock = trio.testing.MockClock()
    clock = TrioClock(mock)
    flush_started: dict[str, list[int]] = {}

    async def main() -> None:
        logs = LogManager(str(tmp_path), LogConfig(), clock, flush_interval_ms=0)
        logs.startup()
        logs.create_topic("fast", 1, {"flush.ms": "50"})
        logs.create_topic("slow", 1, {"flush.ms": "3600000"})
        logs.create_topic("default", 1)
        for name in ("fast", "slow", "default"):
            plog = logs.log(name, 0)
            original = plog.flush

            def timed(original=original, name=name):
                flush_started.setdefault(name, []).append(clock.now_ms())
                return original()

            plog.flush = timed
        pm = PartitionManager(logs, clock)
        async with trio.open_nursery() as nursery:
            pm.attach(nursery)
            t0 = clock.now_ms()
            for name in ("fast", "slow", "default"):
                pm.append_nowait(name, 0, _batch())  # acks=1: the flusher's business
            await _advance(mock, pm, 0)
            assert logs.log("default", 0).flushed_offset == 1  # log.flush.interval.ms=0
            await _advance(mock, pm, 0.049)
            assert logs.log("fast", 0).flushed_offset == 0  # not due yet
            await _advance(mock, pm, 0.001)
            assert logs.log("fast", 0).flushed_offset == 1  # due at 50 ms: flushed then
            await _advance(mock, pm, 10)
            assert logs.log("fast", 0).flushed_offset == 1
            assert logs.log("default", 0).flushed_offset == 1
            assert logs.log("slow", 0).flushed_offset == 0  # the broker's 0 ms does not apply
            assert [t - t0 for t in flush_started["fast"]] == [50]
            assert [t - t0 for t in flush_started["default"]] == [0]
            assert "slow" not in flush_started
            # flush.messages reached while the flusher sleeps wakes it at once.
            logs.alter_topic_configs("slow", {"flush.ms": "3600000", "flush.messages": "3"})
            pm.append_nowait("slow", 0, _batch())
            await _advance(mock, pm, 1)
            assert logs.log("slow", 0).flushed_offset == 0
            t1 = clock.now_ms()
            pm.append_nowait("slow", 0, _batch())
            await _advance(mock, pm, 0)
            assert logs.log("slow", 0).flushed_offset == 3
            assert [t - t1 for t in flush_started["slow"]] == [0]
            nursery.cancel_scope.cancel()
        logs.shutdown()

    trio.run(main, clock=mock)


def _produce(raw: RawClient, topic: str, acks: int) -> tuple[int, int]:
    request = ProduceRequest(acks=acks, timeout_ms=5000, topic_data=[TopicProduceData(
        name=topic, partition_data=[PartitionProduceData(index=0, records=_batch())])])
    part = raw.call(ApiKey.PRODUCE, 9, request).responses[0].partition_responses[0]
    return part.error_code, part.base_offset


class CountingIO(FileIO):
    """Counts every fsync-family call (the real ones are still made)."""

    def __init__(self) -> None:
        self.syncs = 0

    def fsync(self, fd):
        self.syncs += 1
        return super().fsync(fd)

    def fdatasync(self, fd):
        self.syncs += 1
        return super().fdatasync(fd)

    def fsync_dir(self, path):
        self.syncs += 1
        return super().fsync_dir(path)


def test_one_acks_all_produce_costs_one_fsync(tmp_path):
    io = CountingIO()
    with embedded_broker(tmp_path, io=io) as b:
        b.create_topic("t")
        raw = RawClient(b.host, b.port)
        plog = b.broker.state.logs.log("t", 0)
        rounds, syncs = [], []
        for i in range(20):
            before, before_syncs = plog.flush_count, io.syncs
            assert _produce(raw, "t", -1) == (ErrorCode.NONE, i)
            rounds.append(plog.flush_count - before)
            syncs.append(io.syncs - before_syncs)
            assert plog.flushed_offset == i + 1  # acknowledged means flushed
        assert rounds == [1] * 20  # no second round from a background flusher
        assert syncs == [1] * 20  # one fdatasync of the segment, nothing else
        raw.close()
