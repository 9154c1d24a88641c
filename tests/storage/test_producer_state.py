"""Idempotent-producer sequence rules, as Kafka applies them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkito.storage.producer_state import (
    SEQUENCE_MAX,
    Duplicate,
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
    ProducerStateManager,
    UnknownProducerIdError,
)


def _append(m: ProducerStateManager, pid, epoch, seq, count, offset):
    assert m.check(pid, epoch, seq, count - 1) is None
    m.record(pid, epoch, seq, offset, offset + count - 1, 0)


def test_sequences_chain_and_retries_are_duplicates():
    m = ProducerStateManager()
    _append(m, 7, 0, 0, 3, 100)
    _append(m, 7, 0, 3, 2, 103)
    assert m.check(7, 0, 0, 2) == Duplicate(100, 102)
    assert m.check(7, 0, 3, 1) == Duplicate(103, 104)
    with pytest.raises(OutOfOrderSequenceError):
        m.check(7, 0, 6, 0)  # 5 was skipped


def test_only_the_last_five_batches_are_remembered():
    m = ProducerStateManager()
    for i in range(6):
        _append(m, 1, 0, i, 1, i)
    assert m.check(1, 0, 5, 0) == Duplicate(5, 5)
    assert m.check(1, 0, 1, 0) == Duplicate(1, 1)
    with pytest.raises(OutOfOrderSequenceError):
        m.check(1, 0, 0, 0)  # too old to be known as a duplicate


def test_epochs_fence_and_restart_sequences():
    m = ProducerStateManager()
    _append(m, 1, 3, 0, 1, 0)
    with pytest.raises(InvalidProducerEpochError):
        m.check(1, 2, 1, 0)
    with pytest.raises(OutOfOrderSequenceError):
        m.check(1, 4, 5, 0)
    _append(m, 1, 4, 0, 1, 1)
    assert m.producers[1].epoch == 4


def test_unknown_producer_must_start_at_zero():
    m = ProducerStateManager()
    with pytest.raises(UnknownProducerIdError):
        m.check(9, 0, 4, 0)
    assert m.check(-1, -1, -1, 5) is None  # not idempotent: nothing to check


def test_sequence_wraps_at_int32_max():
    m = ProducerStateManager()
    m.record(1, 0, SEQUENCE_MAX - 1, 0, 1, 0)  # sequences MAX-1 and MAX
    assert m.producers[1].last_seq == SEQUENCE_MAX
    assert m.check(1, 0, 0, 0) is None


@given(st.lists(st.integers(1, 5), min_size=1, max_size=20))
def test_snapshot_restore_round_trip(counts):
    m = ProducerStateManager()
    seq = offset = 0
    for c in counts:
        _append(m, 42, 1, seq, c, offset)
        seq += c
        offset += c
    restored = ProducerStateManager.restore(m.snapshot())
    assert restored.snapshot() == m.snapshot()
    assert restored.check(42, 1, seq, 0) is None
