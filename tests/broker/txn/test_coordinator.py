"""The transaction coordinator's transitions, one behaviour per test (pure: no trio)."""

from __future__ import annotations

from kafkito.broker.txn.coordinator import TxnConfig
from kafkito.broker.txn.records import TxnState, decode_record
from kafkito.protocol import ErrorCode as E

from txn_harness import Driver


def test_init_gives_epoch_zero_then_bumps_on_every_reinit():
    d = Driver()
    r1 = d.init("t")
    assert (r1.error, r1.producer_epoch) == (E.NONE, 0)
    r2 = d.init("t")
    assert (r2.error, r2.producer_id, r2.producer_epoch) == (E.NONE, r1.producer_id, 1)
    # the first incarnation is fenced
    assert d.add("t", r1.producer_id, 0, ("a", 0)) == E.PRODUCER_FENCED
    assert d.add("t", r2.producer_id, 1, ("a", 0)) == E.NONE


def test_timeout_above_the_max_is_refused():
    d = Driver(TxnConfig(transaction_max_timeout_ms=1000))
    assert d.init("t", timeout_ms=1001).error == E.INVALID_TRANSACTION_TIMEOUT
    assert d.init("t", timeout_ms=0).error == E.INVALID_TRANSACTION_TIMEOUT
    assert d.init("t", timeout_ms=1000).error == E.NONE


def test_empty_transactional_id_is_invalid_request():
    assert Driver().init("").error == E.INVALID_REQUEST


def test_commit_writes_a_commit_marker_to_every_added_partition_then_completes():
    d = Driver()
    r = d.init("t")
    assert d.add("t", r.producer_id, 0, ("a", 0), ("b", 1)) == E.NONE
    assert d.add("t", r.producer_id, 0, ("a", 0)) == E.NONE  # already in: no write
    n = len(d.log)
    assert d.end("t", r.producer_id, 0, True) == E.NONE
    assert sorted(tp for _, tp in d.markers) == [("a", 0), ("b", 1)]
    assert all(job.commit and job.producer_epoch == 0 for job, _ in d.markers)
    states = [decode_record(k, v)[1].state for k, v in d.log[n:]]
    assert states == [TxnState.PREPARE_COMMIT, TxnState.COMPLETE_COMMIT]
    # a retried EndTxn(commit) succeeds, an abort of it is refused
    assert d.end("t", r.producer_id, 0, True) == E.NONE
    assert d.end("t", r.producer_id, 0, False) == E.INVALID_TXN_STATE


def test_end_without_a_transaction_is_invalid_txn_state():
    d = Driver()
    r = d.init("t")
    assert d.end("t", r.producer_id, 0, True) == E.INVALID_TXN_STATE
    assert d.end("u", r.producer_id, 0, True) == E.INVALID_PRODUCER_ID_MAPPING
    assert d.end("t", r.producer_id + 1, 0, True) == E.INVALID_PRODUCER_ID_MAPPING


def test_requests_during_a_commit_get_concurrent_transactions():
    d = Driver()
    r = d.init("t")
    d.add("t", r.producer_id, 0, ("a", 0))
    w = d.c.end_txn("t", r.producer_id, 0, True, now_ms=d.now)
    # the Prepare write is queued: everything else on the id must wait
    assert d.c.add_partitions("t", r.producer_id, 0, [("b", 0)], now_ms=d.now).result == E.CONCURRENT_TRANSACTIONS
    assert d.c.init_producer_id("t", 60_000, now_ms=d.now).result.error == E.CONCURRENT_TRANSACTIONS
    d.c.outbox.done(d.c.take_writes()[0])  # Prepare durable; markers not yet written
    assert d.c.init_producer_id("t", 60_000, now_ms=d.now).result.error == E.CONCURRENT_TRANSACTIONS
    assert d.c.end_txn("t", r.producer_id, 0, True, now_ms=d.now).result == E.CONCURRENT_TRANSACTIONS
    assert d.c.end_txn("t", r.producer_id, 0, False, now_ms=d.now).result == E.INVALID_TXN_STATE
    assert d.c.verify_partition("t", r.producer_id, 0, "a", 0) == E.CONCURRENT_TRANSACTIONS  # a late batch waits
    assert not w.done
    d.pump()
    assert w.result == E.NONE


def test_reinit_aborts_the_open_transaction_with_a_bumped_epoch():
    d = Driver()
    r = d.init("t")
    d.add("t", r.producer_id, 0, ("a", 0))
    assert d.init("t").error == E.CONCURRENT_TRANSACTIONS
    (job, tp), = d.markers
    assert (job.commit, job.producer_epoch, tp) == (False, 1, ("a", 0))  # fences epoch 0 at the partition
    r2 = d.init("t")  # the retry
    assert (r2.error, r2.producer_epoch) == (E.NONE, 2)
    assert d.end("t", r.producer_id, 0, True) == E.PRODUCER_FENCED


def test_open_transaction_past_its_timeout_is_aborted_and_its_producer_fenced():
    d = Driver(TxnConfig(transaction_abort_timed_out_transaction_cleanup_interval_ms=1000))
    r = d.init("t", timeout_ms=5000)
    d.add("t", r.producer_id, 0, ("a", 0))
    d.advance(4000)
    d.pump()
    assert d.markers == []
    d.advance(2000)
    d.pump()
    (job, _), = d.markers
    assert (job.commit, job.producer_epoch) == (False, 1)
    assert d.c.txns["t"].meta.state == TxnState.COMPLETE_ABORT
    assert d.end("t", r.producer_id, 0, True) == E.PRODUCER_FENCED


def test_restart_in_prepare_commit_writes_the_markers_and_completes():
    d = Driver()
    r = d.init("t")
    d.add("t", r.producer_id, 0, ("a", 0))
    d.c.end_txn("t", r.producer_id, 0, True, now_ms=d.now)
    w, = d.c.take_writes()
    d.log.extend(w.records())  # PrepareCommit durable, then the broker dies
    d.restart()
    d.pump()
    (job, tp), = d.markers
    assert job.commit and tp == ("a", 0)
    assert d.c.txns["t"].meta.state == TxnState.COMPLETE_COMMIT
    assert d.end("t", r.producer_id, 0, True) == E.NONE  # the client's retry


def test_restart_keeps_ongoing_open_until_it_times_out():
    d = Driver(TxnConfig(transaction_abort_timed_out_transaction_cleanup_interval_ms=1000))
    r = d.init("t", timeout_ms=3000)
    d.add("t", r.producer_id, 0, ("a", 0))
    d.restart()
    assert d.c.txns["t"].meta.state == TxnState.ONGOING
    assert d.add("t", r.producer_id, 0, ("b", 0)) == E.NONE  # the producer carries on
    d.advance(5000)
    d.pump()
    assert {tp for _, tp in d.markers} == {("a", 0), ("b", 0)}
    assert not any(job.commit for job, _ in d.markers)


def test_idle_transactional_id_expires():
    d = Driver(TxnConfig(transactional_id_expiration_ms=10_000,
                         transaction_remove_expired_transaction_cleanup_interval_ms=1000))
    r = d.init("t")
    d.advance(11_000)
    d.pump()
    assert "t" not in d.c.txns
    d.restart()
    assert "t" not in d.c.txns
    assert d.add("t", r.producer_id, 0, ("a", 0)) == E.INVALID_PRODUCER_ID_MAPPING


def test_kip360_retry_of_a_successful_bump_gets_the_same_answer():
    d = Driver()
    r = d.init("t")
    r2 = d.init("t", producer_id=r.producer_id, producer_epoch=0)
    assert (r2.error, r2.producer_epoch) == (E.NONE, 1)
    r3 = d.init("t", producer_id=r.producer_id, producer_epoch=0)  # the response was lost
    assert (r3.error, r3.producer_epoch) == (E.NONE, 1)
    assert d.init("t", producer_id=r.producer_id, producer_epoch=7).error == E.PRODUCER_FENCED


def test_epoch_exhaustion_moves_to_a_new_producer_id():
    d = Driver()
    r = d.init("t")
    d.c.txns["t"].meta = d.c.txns["t"].meta.replace(producer_epoch=2**15 - 2)
    r2 = d.init("t")
    assert r2.producer_id != r.producer_id and r2.producer_epoch == 0


def test_describe_and_list_with_filters():
    d = Driver()
    a = d.init("a")
    d.init("b")
    d.add("a", a.producer_id, 0, ("x", 0))
    (da, dz) = d.c.describe(["a", "zz"], now_ms=d.now)
    assert (da.state, da.partitions) == ("Ongoing", frozenset({("x", 0)}))
    assert dz.error == E.TRANSACTIONAL_ID_NOT_FOUND
    rows, unknown = d.c.list_transactions(states=["Ongoing"], now_ms=d.now)
    assert [r[0] for r in rows] == ["a"] and unknown == []
    rows, _ = d.c.list_transactions(producer_ids=[a.producer_id], now_ms=d.now)
    assert [r[0] for r in rows] == ["a"]
    rows, unknown = d.c.list_transactions(states=["Bogus"], now_ms=d.now)
    assert rows == [] and unknown == ["Bogus"]
    rows, _ = d.c.list_transactions(id_pattern="b", now_ms=d.now)
    assert [r[0] for r in rows] == ["b"]
    d.advance(1000)
    b = d.c.txns["b"].meta
    d.add("b", b.producer_id, b.producer_epoch, ("x", 1))
    rows, _ = d.c.list_transactions(duration_ms=500, states=["Ongoing"], now_ms=d.now)
    assert [r[0] for r in rows] == ["a"]  # b's transaction is younger than 500 ms


def test_verify_partition():
    d = Driver()
    r = d.init("t")
    assert d.c.verify_partition("t", r.producer_id, 0, "a", 0) == E.INVALID_TXN_STATE
    d.add("t", r.producer_id, 0, ("a", 0))
    assert d.c.verify_partition("t", r.producer_id, 0, "a", 0) == E.NONE
    assert d.c.verify_partition("t", r.producer_id, 0, "a", 1) == E.INVALID_TXN_STATE
    assert d.c.verify_partition("t", r.producer_id, 1, "a", 0) == E.PRODUCER_FENCED
