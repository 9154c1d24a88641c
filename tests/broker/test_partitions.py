"""PartitionManager's header-only look at a produce request's batches."""

from __future__ import annotations

from kafkito.broker.partitions import _idempotent_batches
from kafkito.storage import build_batch

RECORDS = [(b"k", b"v", [], 1_700_000_000_000)] * 3


def test_a_plain_producers_batches_carry_no_producer_state():
    assert _idempotent_batches(build_batch(RECORDS)) == []


def test_idempotent_batches_are_listed_with_their_sequences():
    blob = build_batch(RECORDS, producer_id=7, producer_epoch=2, base_sequence=10) + build_batch(
        RECORDS, producer_id=7, producer_epoch=2, base_sequence=13)
    batches = _idempotent_batches(memoryview(blob))
    assert [(b.producer_id, b.producer_epoch, b.base_sequence, b.last_offset_delta) for b in batches] == [
        (7, 2, 10, 2), (7, 2, 13, 2)]


def test_malformed_input_is_left_for_storage_to_reject():
    idempotent = build_batch(RECORDS, producer_id=7, producer_epoch=0, base_sequence=0)
    assert _idempotent_batches(b"") == []
    assert _idempotent_batches(idempotent[:50]) == []  # cut inside the producer id
    assert _idempotent_batches(b"\xff" * 40) == []
