"""TransactionService: the trio side of the transaction coordinator, and the handlers' door.

Theory of operation
-------------------
The pure ``TransactionCoordinator`` decides; ``coordinator_runtime.CoordinatorShell``
supplies its timer task, its writer task over ``__transaction_state`` and the replay at
load, exactly as for the group coordinator. This module adds what is the transaction
coordinator's own:

* **The topic.** ``load()`` creates ``__transaction_state`` if missing (compacted, as
  Kafka's), keeps the partition count it already has, and replays it; a PrepareCommit or
  PrepareAbort found there has its markers written again, so no restart leaves a
  transaction half-committed.
* **Markers.** A marker task takes each ``MarkerJob`` the coordinator queues and writes
  the transaction's control batch to every partition in it through
  ``PartitionManager.append_control``, all partitions concurrently, and waits for their
  fsync; a marker in ``__consumer_offsets`` also completes the transaction's offsets in
  the group coordinator. Then ``markers_done`` lets the coordinator write Complete*. A
  failed marker write is retried with a backoff until it succeeds (a marker must never be
  skipped); a partition whose topic was deleted needs none, and a marker the partition
  refuses as fenced (a newer epoch wrote there already) is no longer needed either
  (Kafka's TransactionMarkerRequestCompletionHandler drops both).
* **Typed calls** for the handlers, each with the broker's current time; each wakes the
  shell since a call may queue writes or move the next deadline.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable

import trio

from kafkito.protocol import ErrorCode

from ..coordinator_runtime import CoordinatorShell, ShellService, Waiter, ensure_coordinator_topic
from ..errors import storage_error_code
from ..group.service import OFFSETS_TOPIC, OFFSETS_TOPIC_CONFIGS
from .coordinator import DescribedTxn, InitResult, MarkerJob, TransactionCoordinator, TxnConfig

log = logging.getLogger("kafkito.broker.txn")

__all__ = ["TRANSACTION_STATE_TOPIC", "TransactionService"]

TRANSACTION_STATE_TOPIC = "__transaction_state"
# Kafka's transaction.state.log.* defaults are the offsets topic's: compacted, 100 MiB segments.
TRANSACTION_STATE_TOPIC_CONFIGS = OFFSETS_TOPIC_CONFIGS
MARKER_RETRY_BACKOFF_S = 0.1
MARKER_RETRY_BACKOFF_MAX_S = 5.0


class TransactionService(ShellService):
    def __init__(self, state, *, now_ms: Callable[[], int] | None = None) -> None:
        self.state = state
        self.config = TxnConfig.from_broker_config(state.config)
        self.now_ms: Callable[[], int] = now_ms or state.clock.now_ms
        self.loading = True
        self._markers_wakeup = trio.Event()
        self._use(self.config)

    def _use(self, config: TxnConfig) -> None:
        self.config = config
        self.coordinator = TransactionCoordinator(config, next_producer_id=self.state.producer_ids.next_id)
        self.coordinator.on_markers = self._wake_markers
        self.shell = CoordinatorShell(self.coordinator, topic=TRANSACTION_STATE_TOPIC,
                                      partitions=self.state.partitions, logs=self.state.logs, now_ms=self.now_ms)

    # ------------------------------------------------------------ lifecycle
    async def load(self) -> None:
        configs = dict(TRANSACTION_STATE_TOPIC_CONFIGS,
                       **{"segment.bytes": str(self.state.config.transaction_state_log_segment_bytes)})
        n_partitions = ensure_coordinator_topic(
            self.state.partitions, TRANSACTION_STATE_TOPIC, self.config.transaction_state_log_num_partitions,
            configs, "transaction.state.log.num.partitions")
        if n_partitions != self.config.transaction_state_log_num_partitions:
            self._use(dataclasses.replace(self.config, transaction_state_log_num_partitions=n_partitions))
        n = await self.shell.load(n_partitions)
        self.loading = False
        pending = sum(1 for t in self.coordinator.txns.values() if t.meta.state.name.startswith("PREPARE"))
        log.info("transaction coordinator loaded %d records: %d transactional ids, %d to complete",
                 n, len(self.coordinator.txns), pending)

    async def run(self) -> None:
        """The timer, writer and marker tasks; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.shell.run)
            nursery.start_soon(self._marker_loop, nursery)

    # ------------------------------------------------------------ calls
    def init_producer_id(self, transactional_id: str, timeout_ms: int, producer_id: int = -1,
                         producer_epoch: int = -1) -> Waiter[InitResult]:
        return self.coordinator.init_producer_id(transactional_id, timeout_ms, producer_id=producer_id,
                                                 producer_epoch=producer_epoch, now_ms=self._now())

    def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: Iterable[tuple[str, int]]) -> Waiter[ErrorCode]:
        return self.coordinator.add_partitions(transactional_id, producer_id, producer_epoch, partitions,
                                               now_ms=self._now())

    def verify_partition(self, transactional_id: str, producer_id: int, producer_epoch: int,
                         topic: str, partition: int) -> ErrorCode:
        return self.coordinator.verify_partition(transactional_id, producer_id, producer_epoch, topic, partition)

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                commit: bool) -> Waiter[ErrorCode]:
        return self.coordinator.end_txn(transactional_id, producer_id, producer_epoch, commit, now_ms=self._now())

    def describe(self, transactional_ids: Iterable[str]) -> list[DescribedTxn]:
        return self.coordinator.describe(transactional_ids, now_ms=self._now())

    def list_transactions(self, **filters) -> tuple[list[tuple[str, int, str]], list[str]]:
        return self.coordinator.list_transactions(now_ms=self._now(), **filters)

    # ------------------------------------------------------------ markers
    def _wake_markers(self) -> None:
        self._markers_wakeup.set()

    async def _marker_loop(self, nursery: trio.Nursery) -> None:
        while True:
            self._markers_wakeup = trio.Event()
            jobs = self.coordinator.take_markers()
            if not jobs:
                await self._markers_wakeup.wait()
                continue
            for job in jobs:
                nursery.start_soon(self._write_markers, job)

    async def _write_markers(self, job: MarkerJob) -> None:
        partitions, groups = self.state.partitions, self.state.groups
        remaining = set(job.partitions)
        backoff = MARKER_RETRY_BACKOFF_S
        while True:
            failed: set[tuple[str, int]] = set()

            async def one(topic: str, partition: int) -> None:
                st = partitions.state(topic, partition)
                if st is None:
                    return  # the topic is gone: nothing left to mark
                try:
                    offset = partitions.append_control(st, job.producer_id, job.producer_epoch, job.commit,
                                                       job.coordinator_epoch)
                    await partitions.flush_to(st, offset + 1)
                except KeyError:
                    return
                except Exception as exc:
                    error = storage_error_code(exc)
                    if error in (ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH):
                        log.info("marker for producer %d epoch %d refused by %s-%d (%s): not needed",
                                 job.producer_id, job.producer_epoch, topic, partition, exc)
                        return
                    log.warning("writing a %s marker to %s-%d failed (%s): retrying",
                                "COMMIT" if job.commit else "ABORT", topic, partition, exc)
                    failed.add((topic, partition))
                    return
                if topic == OFFSETS_TOPIC and groups is not None:
                    groups.complete_txn(partition, job.producer_id, job.commit)

            async with trio.open_nursery() as nursery:
                for topic, partition in remaining:
                    nursery.start_soon(one, topic, partition)
            if not failed:
                break
            remaining = failed
            await trio.sleep(backoff)
            backoff = min(backoff * 2, MARKER_RETRY_BACKOFF_MAX_S)
        self.coordinator.markers_done(job, now_ms=self._now())
