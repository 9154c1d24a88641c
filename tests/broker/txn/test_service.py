"""TransactionService, the trio glue, under trio's MockClock: the marker task writes every
partition's marker, retries a failed one until it lands, drops one the partition refuses
as fenced, and the transaction completes only after all of them; a restart reloads the
state from ``__transaction_state``.

Storage is real (a LogManager in tmp_path); the broker's partition manager is stood in for
by one that appends and fsyncs inline, and can fail a partition's next marker writes.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import trio
import trio.testing

from kafkito.broker.config import load_config, log_config_from
from kafkito.broker.txn.records import TxnState
from kafkito.broker.txn.service import TransactionService
from kafkito.protocol import ErrorCode as E
from kafkito.storage import KafkaStorageError, LogManager
from kafkito.storage.producer_state import InvalidProducerEpochError


class InlinePartitions:
    def __init__(self, logs: LogManager) -> None:
        self.logs = logs
        self.fail_markers: dict[tuple[str, int], list[Exception]] = {}
        self.marker_calls: list[tuple[str, int, bool]] = []

    def ensure_internal_topic(self, name, num_partitions, configs):
        return self.logs.topic(name) or self.logs.create_topic(name, num_partitions, configs)

    def state(self, topic, partition):
        plog = self.logs.log(topic, partition)
        return None if plog is None else SimpleNamespace(log=plog, key=(topic, partition))

    def append_nowait(self, topic, partition, records, *, schedule_flush=True, origin="client"):
        plog = self.logs.log(topic, partition)
        return plog, plog.append(records, 0, origin=origin)

    def append_control(self, st, producer_id, producer_epoch, commit, coordinator_epoch):
        self.marker_calls.append((*st.key, commit))
        failures = self.fail_markers.get(st.key)
        if failures:
            raise failures.pop(0)
        return st.log.append_control(producer_id, producer_epoch, commit, coordinator_epoch, 0)

    async def flush_to(self, st, offset):
        await trio.sleep(0.005)
        (st.log if hasattr(st, "log") else st).flush()


@pytest.fixture
def setup(tmp_path):
    config = load_config(environ={}, overrides=[("log.dirs", str(tmp_path))])
    logs = LogManager(str(tmp_path), log_config_from(config))
    logs.startup()
    logs.create_topic("t", 2, {})
    partitions = InlinePartitions(logs)
    pids = itertools.count(100)
    state = SimpleNamespace(config=config, logs=logs, partitions=partitions, clock=None, groups=None,
                            producer_ids=SimpleNamespace(next_id=lambda: next(pids)))
    yield state
    logs.shutdown()


def run(test):
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))


def _service(state) -> TransactionService:
    return TransactionService(state, now_ms=lambda: int(trio.current_time() * 1000))


def test_markers_retried_until_written_fenced_ones_dropped_then_complete(setup):
    state = setup
    state.partitions.fail_markers = {
        ("t", 0): [KafkaStorageError("disk full"), KafkaStorageError("disk full")],
        ("t", 1): [InvalidProducerEpochError("a newer epoch wrote here")],
    }

    async def main():
        svc = _service(state)
        await svc.load()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(svc.run)
            r = await svc.wait(svc.init_producer_id("tx", 60_000))
            assert await svc.wait(svc.add_partitions("tx", r.producer_id, r.producer_epoch,
                                                     [("t", 0), ("t", 1)])) == E.NONE
            end = svc.end_txn("tx", r.producer_id, r.producer_epoch, True)
            assert await svc.wait(end) == E.NONE
            assert svc.coordinator.txns["tx"].meta.state == TxnState.COMPLETE_COMMIT
            assert state.partitions.marker_calls.count(("t", 0, True)) == 3  # two failures, then written
            assert state.partitions.marker_calls.count(("t", 1, True)) == 1  # refused as fenced: not retried
            assert [b.is_control for b in state.logs.log("t", 0).batches()] == [True]
            nursery.cancel_scope.cancel()
        await svc.shutdown()
        # a restart reads the same state back
        again = _service(state)
        await again.load()
        meta = again.coordinator.txns["tx"].meta
        assert (meta.state, meta.producer_id, meta.producer_epoch) == (TxnState.COMPLETE_COMMIT, r.producer_id, 0)

    run(main)


def test_timed_out_transaction_aborted_by_the_timer_task_alone(setup):
    state = setup

    async def main():
        svc = _service(state)
        await svc.load()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(svc.run)
            r = await svc.wait(svc.init_producer_id("tx", 2000))
            await svc.wait(svc.add_partitions("tx", r.producer_id, r.producer_epoch, [("t", 1)]))
            await trio.sleep(15)  # past the timeout and the 10 s sweep, nobody calling
            meta = svc.coordinator.txns["tx"].meta
            assert (meta.state, meta.producer_epoch) == (TxnState.COMPLETE_ABORT, r.producer_epoch + 1)
            assert state.partitions.marker_calls == [("t", 1, False)]
            nursery.cancel_scope.cancel()

    run(main)
