"""The transaction coordinator: Kafka's TransactionCoordinator as a pure state machine.

Theory of operation
-------------------
One ``TransactionMetadata`` per transactional id, moved through Kafka's states::

    Empty ──AddPartitions──► Ongoing ──EndTxn──► PrepareCommit ──markers──► CompleteCommit
      ▲                        │    └──EndTxn──► PrepareAbort  ──markers──► CompleteAbort
      └──InitProducerId (epoch+1) from Empty / Complete*;  from Ongoing: fence (below)

* **Write, then apply.** Every transition is a fact (the id's whole new metadata) queued
  on the ``Outbox`` for ``__transaction_state``. While it is in flight the id has a
  *pending* state and every other request on it gets CONCURRENT_TRANSACTIONS; once the
  shell reports it durable the new metadata replaces the old and the request is
  answered. A failed write leaves the old metadata and answers with the mapped error.
  Loading replays the same facts, so the state after a restart is the state before it.
* **Markers.** A durable PrepareCommit/PrepareAbort queues a ``MarkerJob`` (producer id,
  epoch, result, every partition of the transaction); the shell writes the control batch
  to each partition, fsyncs it, and calls ``markers_done``. Only then is CompleteCommit /
  CompleteAbort written and the EndTxn answered, so a client whose commit returned can
  read its records with read_committed at once (Kafka answers after the Prepare; the
  answer here comes one fsync later but never needs a CONCURRENT_TRANSACTIONS retry).
  A Complete record need not be fsynced: lost in a crash, the reload finds the Prepare
  and writes the markers again (a repeated marker changes nothing), and anything durable
  written after it in the same partition makes it durable too.
* **Fencing.** InitProducerId on an id whose transaction is Ongoing (a new incarnation
  of a producer that died mid-transaction), and the timeout sweep
  (``transaction.abort.timed.out.transaction.cleanup.interval.ms``) for a transaction open
  longer than its ``transaction.timeout.ms``, abort it *with the epoch bumped*
  (PrepareEpochFence, then PrepareAbort at epoch+1): the markers carry the new epoch, so
  the partitions fence the old producer, and its EndTxn gets PRODUCER_FENCED. The
  InitProducerId caller gets CONCURRENT_TRANSACTIONS and retries, and its retry bumps the
  epoch again from CompleteAbort (Kafka's behaviour).
* **Restart.** ``finish_load`` resumes a PrepareCommit/PrepareAbort by writing its
  markers; an Ongoing transaction stays open (its producer may still be alive and commit)
  until it times out.
* **Expiry.** An id idle (Empty or Complete*) for ``transactional.id.expiration.ms`` is
  tombstoned (Dead while the tombstone is in flight), checked every
  ``transaction.remove.expired.transaction.cleanup.interval.ms``.

Nothing here reads a clock or does I/O: ``now_ms`` comes with every call, the owner
(``service.TransactionService``) drives ``poll``, the outbox and the marker jobs.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafkito.protocol import ErrorCode

from ..coordinator_runtime import CoordinatorBase, DeadlineTimer, Outbox, Waiter
from ..group.coordinator import partition_for
from .records import RecordFormatError, TransactionMetadata, TxnState, decode_record, encode_record

log = logging.getLogger("kafkito.broker.txn")

__all__ = ["DescribedTxn", "InitResult", "MarkerJob", "TransactionCoordinator", "TxnConfig", "TxnState"]

E = ErrorCode
S = TxnState
EPOCH_MAX = 2**15 - 1  # Short.MaxValue
NO_EPOCH = -1
RETRY_BACKOFF_MS = 100  # before writing a transaction's Complete* again after a failed write


@dataclass(frozen=True)
class TxnConfig:
    """The broker settings the coordinator honours (Kafka names in snake_case)."""

    transaction_max_timeout_ms: int = 900_000
    transactional_id_expiration_ms: int = 7 * 24 * 3600 * 1000
    transaction_abort_timed_out_transaction_cleanup_interval_ms: int = 10_000
    transaction_remove_expired_transaction_cleanup_interval_ms: int = 3_600_000
    transaction_state_log_num_partitions: int = 1

    @classmethod
    def from_broker_config(cls, cfg) -> TxnConfig:
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True, slots=True)
class InitResult:
    error: ErrorCode
    producer_id: int = -1
    producer_epoch: int = -1


@dataclass(frozen=True, slots=True)
class MarkerJob:
    """Control batches to write: one per partition, for one producer's transaction."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    commit: bool
    partitions: frozenset[tuple[str, int]]
    coordinator_epoch: int = 0


@dataclass(frozen=True, slots=True)
class DescribedTxn:
    error: ErrorCode
    transactional_id: str
    state: str = ""
    timeout_ms: int = 0
    start_ms: int = -1
    producer_id: int = -1
    producer_epoch: int = -1
    partitions: frozenset[tuple[str, int]] = frozenset()


class Txn:
    """A transactional id in memory: its applied metadata and the transition in flight."""

    __slots__ = ("meta", "pending", "last_producer_id", "last_producer_epoch")

    def __init__(self, meta: TransactionMetadata) -> None:
        self.meta = meta
        self.pending: TxnState | None = None
        # The identity before the last InitProducerId bump (KIP-360): a client retrying
        # an InitProducerId that did succeed names it, and gets the current one back.
        self.last_producer_id = -1
        self.last_producer_epoch = NO_EPOCH


class TxnFacts:
    """How the coordinator's facts become ``__transaction_state`` records. A fact is
    (transactional id, metadata or None). Every fact but a Complete* is fsynced before it
    counts: see the module docstring for why a Complete need not be."""

    @staticmethod
    def encode(fact) -> tuple[bytes, bytes | None]:
        tid, meta = fact
        return encode_record(meta, tid)

    @staticmethod
    def is_durable(fact) -> bool:
        _, meta = fact
        return meta is None or meta.state not in (S.COMPLETE_COMMIT, S.COMPLETE_ABORT)


def write_error_to_response(error: ErrorCode) -> ErrorCode:
    """How a failed ``__transaction_state`` append reads to a transactional client
    (Kafka's TransactionStateManager mapping)."""
    if error in (E.UNKNOWN_TOPIC_OR_PARTITION, E.NOT_ENOUGH_REPLICAS, E.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                 E.REQUEST_TIMED_OUT):
        return E.COORDINATOR_NOT_AVAILABLE
    if error in (E.NOT_LEADER_OR_FOLLOWER, E.KAFKA_STORAGE_ERROR):
        return E.NOT_COORDINATOR
    return E.UNKNOWN_SERVER_ERROR


def _timed(op):
    """Fire due timers before the operation, so "what happens at T" is deterministic."""

    @functools.wraps(op)
    def wrapper(self, *args, now_ms: int, **kwargs):
        self.poll(now_ms)
        return op(self, *args, now_ms=self.now_ms, **kwargs)

    return wrapper


class TransactionCoordinator(CoordinatorBase):
    def __init__(self, config: TxnConfig | None = None, *, next_producer_id: Callable[[], int]) -> None:
        self.config = cfg = config or TxnConfig()
        self.next_producer_id = next_producer_id
        self.now_ms = 0
        self.coordinator_epoch = 0  # a single node's __transaction_state never changes leader
        self.txns: dict[str, Txn] = {}
        self.timer = DeadlineTimer()
        self.outbox = Outbox(TxnFacts(),
                             lambda tid: partition_for(tid, cfg.transaction_state_log_num_partitions))
        self._markers: list[MarkerJob] = []
        # EndTxn / InitProducerId answers waiting for a transaction's markers, by id.
        self._after_markers: dict[str, Callable[[ErrorCode], None]] = {}
        # Called with each MarkerJob once its transaction is Complete: tests watch here.
        self.on_complete: Callable[[MarkerJob], None] = lambda job: None
        # Called when a MarkerJob is queued: the owner's marker task wakes here.
        self.on_markers: Callable[[], None] = lambda: None

    # ============================================================ markers
    def take_markers(self) -> list[MarkerJob]:
        out, self._markers = self._markers, []
        return out

    def markers_done(self, job: MarkerJob, *, now_ms: int) -> None:
        """Every marker of ``job`` is durable: complete the transaction."""
        self.poll(now_ms)
        txn = self.txns.get(job.transactional_id)
        if (txn is None or txn.meta.state not in (S.PREPARE_COMMIT, S.PREPARE_ABORT)
                or txn.meta.producer_id != job.producer_id or txn.pending is not None):
            # A repeated job whose transaction another one completed already: nothing to do.
            log.info("markers of %r done again (%s): ignored", job.transactional_id,
                     "gone" if txn is None else txn.meta.state.kafka_name)
            return
        meta = txn.meta
        done = meta.replace(state=S.COMPLETE_COMMIT if job.commit else S.COMPLETE_ABORT,
                            partitions=frozenset(), last_update_ms=self.now_ms)
        then = self._after_markers.pop(job.transactional_id, None)

        def completed(error: ErrorCode) -> None:
            if error != E.NONE:
                # Still Prepare*: write the markers again later (a repeated marker changes
                # nothing) and keep the caller waiting, as Kafka retries until it succeeds.
                if then is not None:
                    self._after_markers[job.transactional_id] = then
                self.timer.schedule(("markers-retry", job.transactional_id), self.now_ms + RETRY_BACKOFF_MS,
                                    lambda: (self._markers.append(job), self.on_markers()))
                return
            self.on_complete(job)
            if then is not None:
                then(error)

        self._transit(txn, done, completed)

    # ============================================================ loading
    def replay(self, raw_key, raw_value, offset: int = -1) -> None:
        """Apply one ``__transaction_state`` record, in log order (startup only; the latest
        record of an id is its state, so the offset is not needed)."""
        try:
            decoded = decode_record(raw_key, raw_value)
        except RecordFormatError as exc:
            log.warning("skipping an undecodable __transaction_state record: %s", exc)
            return
        if decoded is None:
            return
        tid, meta = decoded
        if meta is None:
            self.txns.pop(tid, None)
        elif tid in self.txns:
            self.txns[tid].meta = meta
        else:
            self.txns[tid] = Txn(meta)

    def finish_load(self, now_ms: int) -> None:
        """Resume what a restart interrupted and arm the sweeps."""
        self.now_ms = max(self.now_ms, now_ms)
        for tid, txn in list(self.txns.items()):
            state = txn.meta.state
            if state == S.DEAD:
                del self.txns[tid]  # its tombstone did not make it; the next sweep writes it
            elif state == S.PREPARE_EPOCH_FENCE:  # never written by us; Kafka's meaning
                txn.meta = txn.meta.replace(state=S.PREPARE_ABORT)
                self._send_markers(txn, None)
            elif state in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
                self._send_markers(txn, None)
        self.start(self.now_ms)

    def start(self, now_ms: int) -> None:
        self.now_ms = max(self.now_ms, now_ms)
        self._schedule_timeout_sweep()
        self._schedule_expiry_sweep()

    # ============================================================ InitProducerId
    @_timed
    def init_producer_id(self, transactional_id: str, timeout_ms: int, *, producer_id: int = -1,
                         producer_epoch: int = NO_EPOCH, now_ms: int) -> Waiter[InitResult]:
        """InitProducerId with a transactional id (Kafka's handleInitProducerId)."""
        if not transactional_id:
            return Waiter.completed(InitResult(E.INVALID_REQUEST))
        if timeout_ms <= 0 or timeout_ms > self.config.transaction_max_timeout_ms:
            return Waiter.completed(InitResult(E.INVALID_TRANSACTION_TIMEOUT))
        txn = self.txns.get(transactional_id)
        if txn is None:
            try:
                pid = self.next_producer_id()
            except OSError:
                return Waiter.completed(InitResult(E.COORDINATOR_LOAD_IN_PROGRESS))
            txn = self.txns[transactional_id] = Txn(TransactionMetadata(
                transactional_id, pid, NO_EPOCH, timeout_ms, S.EMPTY, last_update_ms=now_ms))
        if txn.pending is not None:
            return Waiter.completed(InitResult(E.CONCURRENT_TRANSACTIONS))
        meta = txn.meta
        expected = producer_id >= 0
        is_current = (producer_id, producer_epoch) == (meta.producer_id, meta.producer_epoch)
        is_last = (producer_id, producer_epoch) == (txn.last_producer_id, txn.last_producer_epoch)
        if expected and not (is_current or is_last):
            return Waiter.completed(InitResult(E.PRODUCER_FENCED))
        if meta.state in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
            return Waiter.completed(InitResult(E.CONCURRENT_TRANSACTIONS))
        waiter: Waiter[InitResult] = Waiter()
        if meta.state == S.ONGOING:
            # A new incarnation while the old one's transaction is open: abort it with a
            # bumped epoch, and let the caller retry once that is done.
            self._fence_and_abort(txn, lambda error: waiter.complete(
                InitResult(E.CONCURRENT_TRANSACTIONS if error == E.NONE else error)))
            return waiter
        if expected and is_last and not is_current:
            # A retry of an InitProducerId that did bump: answer what it got.
            return Waiter.completed(InitResult(E.NONE, meta.producer_id, meta.producer_epoch))
        if meta.producer_epoch >= EPOCH_MAX - 1:
            # Epochs exhausted: a fresh producer id starts again at 0 (KIP-360).
            try:
                new_pid, new_epoch = self.next_producer_id(), 0
            except OSError:
                return Waiter.completed(InitResult(E.COORDINATOR_LOAD_IN_PROGRESS))
        else:
            new_pid, new_epoch = meta.producer_id, meta.producer_epoch + 1
        new = meta.replace(producer_id=new_pid, producer_epoch=new_epoch, timeout_ms=timeout_ms,
                           state=S.EMPTY, partitions=frozenset(), start_ms=-1, last_update_ms=now_ms)
        old_pid, old_epoch = meta.producer_id, meta.producer_epoch

        def written(error: ErrorCode) -> None:
            if error != E.NONE:
                waiter.complete(InitResult(error))
                return
            txn.last_producer_id, txn.last_producer_epoch = old_pid, old_epoch
            waiter.complete(InitResult(E.NONE, new_pid, new_epoch))

        self._transit(txn, new, written)
        return waiter

    # ============================================================ AddPartitionsToTxn / AddOffsetsToTxn
    @_timed
    def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: Iterable[tuple[str, int]], *, now_ms: int) -> Waiter[ErrorCode]:
        """Add partitions to the id's transaction, starting one if none is open."""
        tps = frozenset(partitions)
        txn, error = self._check_producer(transactional_id, producer_id, producer_epoch)
        if error != E.NONE:
            return Waiter.completed(error)
        meta = txn.meta
        if meta.state in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
            return Waiter.completed(E.CONCURRENT_TRANSACTIONS)
        if meta.state == S.ONGOING and tps <= meta.partitions:
            return Waiter.completed(E.NONE)  # nothing new: no write (Kafka's shortcut)
        start = meta.start_ms if meta.state == S.ONGOING else now_ms
        new = meta.replace(state=S.ONGOING, partitions=meta.partitions | tps, start_ms=start,
                           last_update_ms=now_ms)
        waiter: Waiter[ErrorCode] = Waiter()
        self._transit(txn, new, waiter.complete)
        return waiter

    def verify_partition(self, transactional_id: str, producer_id: int, producer_epoch: int,
                         topic: str, partition: int) -> ErrorCode:
        """May this producer write transactional records to this partition now (the check
        KIP-890 puts before a transactional Produce and TxnOffsetCommit)? As Kafka's:
        CONCURRENT_TRANSACTIONS while a transition is in flight or the transaction is
        completing (the writer retries), INVALID_TXN_STATE for a partition not in it."""
        txn, error = self._check_producer(transactional_id, producer_id, producer_epoch)
        if error != E.NONE:
            return error
        meta = txn.meta
        if meta.state in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
            return E.CONCURRENT_TRANSACTIONS
        if meta.state != S.ONGOING or (topic, partition) not in meta.partitions:
            return E.INVALID_TXN_STATE
        return E.NONE

    # ============================================================ EndTxn
    @_timed
    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool, *,
                now_ms: int) -> Waiter[ErrorCode]:
        """Commit or abort the open transaction; answered once its markers are durable."""
        txn, error = self._check_producer(transactional_id, producer_id, producer_epoch)
        if error != E.NONE:
            return Waiter.completed(error)
        state = txn.meta.state
        if state == S.ONGOING:
            waiter: Waiter[ErrorCode] = Waiter()
            self._prepare(txn, commit, txn.meta.producer_epoch, waiter.complete)
            return waiter
        if state == S.COMPLETE_COMMIT:  # a retry of a commit that went through
            return Waiter.completed(E.NONE if commit else E.INVALID_TXN_STATE)
        if state == S.COMPLETE_ABORT:
            return Waiter.completed(E.INVALID_TXN_STATE if commit else E.NONE)
        if state == S.PREPARE_COMMIT:
            return Waiter.completed(E.CONCURRENT_TRANSACTIONS if commit else E.INVALID_TXN_STATE)
        if state == S.PREPARE_ABORT:
            return Waiter.completed(E.INVALID_TXN_STATE if commit else E.CONCURRENT_TRANSACTIONS)
        return Waiter.completed(E.INVALID_TXN_STATE)  # Empty: nothing to end

    # ============================================================ admin
    @_timed
    def describe(self, transactional_ids: Iterable[str], *, now_ms: int) -> list[DescribedTxn]:
        out = []
        for tid in transactional_ids:
            txn = self.txns.get(tid)
            if txn is None or txn.meta.producer_epoch == NO_EPOCH and txn.pending is not None:
                out.append(DescribedTxn(E.TRANSACTIONAL_ID_NOT_FOUND, tid))
                continue
            m = txn.meta
            out.append(DescribedTxn(E.NONE, tid, m.state.kafka_name, m.timeout_ms, m.start_ms,
                                    m.producer_id, m.producer_epoch, m.partitions))
        return out

    @_timed
    def list_transactions(self, *, states: Iterable[str] = (), producer_ids: Iterable[int] = (),
                          duration_ms: int = -1, id_pattern: str | None = None,
                          now_ms: int) -> tuple[list[tuple[str, int, str]], list[str]]:
        """([(transactional id, producer id, state name)], unknown state filters)."""
        wanted_states: set[TxnState] = set()
        unknown: list[str] = []
        for name in states:
            st = TxnState.by_name(name)
            if st is None:
                unknown.append(name)
            else:
                wanted_states.add(st)
        if unknown and not wanted_states:
            return [], unknown  # Kafka: only unknown filters match nothing
        pids = set(producer_ids)
        pattern = re.compile(id_pattern) if id_pattern else None
        out = []
        for tid, txn in sorted(self.txns.items()):
            m = txn.meta
            if m.producer_epoch == NO_EPOCH and txn.pending is not None:
                continue  # not yet initialised
            if wanted_states and m.state not in wanted_states:
                continue
            if pids and m.producer_id not in pids:
                continue
            if duration_ms >= 0 and now_ms - m.start_ms < duration_ms:
                continue  # Kafka's test, on the latest transaction's start
            if pattern is not None and not pattern.fullmatch(tid):
                continue
            out.append((tid, m.producer_id, m.state.kafka_name))
        return out, unknown

    # ============================================================ internals
    def _check_producer(self, transactional_id: str, producer_id: int,
                        producer_epoch: int) -> tuple[Txn | None, ErrorCode]:
        if not transactional_id:
            return None, E.INVALID_REQUEST
        txn = self.txns.get(transactional_id)
        if txn is None or txn.meta.producer_id != producer_id:
            return None, E.INVALID_PRODUCER_ID_MAPPING
        if producer_epoch != txn.meta.producer_epoch:
            return None, E.PRODUCER_FENCED
        if txn.pending is not None:
            return None, E.CONCURRENT_TRANSACTIONS
        return txn, E.NONE

    def _transit(self, txn: Txn, new: TransactionMetadata | None, then: Callable[[ErrorCode], None]) -> None:
        """Write ``new`` (None: the id's tombstone); apply it once durable, then ``then``."""
        assert txn.pending is None, "one transition at a time per transactional id"
        txn.pending = S.DEAD if new is None else new.state
        tid = txn.meta.transactional_id

        def written(error: ErrorCode) -> None:
            txn.pending = None
            if error != E.NONE:
                log.warning("writing transaction %r state failed: %s", tid, error.name)
                then(write_error_to_response(error))
                return
            if new is None:
                if self.txns.get(tid) is txn:
                    del self.txns[tid]
            else:
                txn.meta = new
            then(E.NONE)

        self.outbox.write([(tid, (tid, new))], written)

    def _prepare(self, txn: Txn, commit: bool, epoch: int, then: Callable[[ErrorCode], None]) -> None:
        """Ongoing → PrepareCommit/PrepareAbort at ``epoch``; markers; Complete*; then ``then``."""
        new = txn.meta.replace(state=S.PREPARE_COMMIT if commit else S.PREPARE_ABORT, producer_epoch=epoch,
                               last_update_ms=self.now_ms)

        def prepared(error: ErrorCode) -> None:
            if error != E.NONE:
                then(error)
                return
            self._send_markers(txn, then)

        self._transit(txn, new, prepared)

    def _send_markers(self, txn: Txn, then: Callable[[ErrorCode], None] | None) -> None:
        meta = txn.meta
        if then is not None:
            self._after_markers[meta.transactional_id] = then
        # The id stays busy (CONCURRENT_TRANSACTIONS to others) until Complete* is written.
        self._markers.append(MarkerJob(meta.transactional_id, meta.producer_id, meta.producer_epoch,
                                       meta.state == S.PREPARE_COMMIT, meta.partitions, self.coordinator_epoch))
        self.on_markers()

    def _fence_and_abort(self, txn: Txn, then: Callable[[ErrorCode], None]) -> None:
        """Abort the open transaction with the epoch bumped, fencing its producer."""
        epoch = txn.meta.producer_epoch
        # At the last epoch there is nothing to bump to; the abort still ends the
        # transaction and the retried InitProducerId then moves to a new producer id.
        fenced = epoch + 1 if epoch < EPOCH_MAX else epoch
        self._prepare(txn, False, fenced, then)

    # ------------------------------------------------------------ sweeps
    def _schedule_timeout_sweep(self) -> None:
        self.timer.schedule(("abort-timed-out",),
                            self.now_ms + self.config.transaction_abort_timed_out_transaction_cleanup_interval_ms,
                            self._abort_timed_out)

    def _abort_timed_out(self) -> None:
        """``transaction.timeout.ms``: abort (and fence) transactions open too long."""
        now = self.now_ms
        for tid, txn in list(self.txns.items()):
            m = txn.meta
            if m.state == S.ONGOING and txn.pending is None and m.start_ms + m.timeout_ms <= now:
                log.info("aborting transaction %r (producer %d epoch %d): open %d ms, timeout %d ms",
                         tid, m.producer_id, m.producer_epoch, now - m.start_ms, m.timeout_ms)
                self._fence_and_abort(txn, lambda error: None)
        self._schedule_timeout_sweep()

    def _schedule_expiry_sweep(self) -> None:
        self.timer.schedule(("expire-ids",),
                            self.now_ms + self.config.transaction_remove_expired_transaction_cleanup_interval_ms,
                            self._expire_ids)

    def _expire_ids(self) -> None:
        """``transactional.id.expiration.ms``: forget ids idle that long."""
        now = self.now_ms
        for tid, txn in list(self.txns.items()):
            m = txn.meta
            if (m.state in (S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT) and txn.pending is None
                    and m.last_update_ms + self.config.transactional_id_expiration_ms <= now):
                log.info("transactional id %r expired (idle since %d)", tid, m.last_update_ms)
                self._transit(txn, None, lambda error: None)
        self._schedule_expiry_sweep()
