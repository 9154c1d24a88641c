"""The consumer's view of fetched bytes (client/fetcher.py), on batches built here: a batch cut
short at the end, records before the fetch offset, control batches, and read_committed
skipping exactly the aborted transactions."""

from __future__ import annotations

import struct
from types import SimpleNamespace

from kafkito.client.fetcher import decode_partition
from kafkito.records.batch import build_batch


def _batch(base, values, *, pid=-1, txn=False, control=None):
    if control is not None:  # a transaction marker: key (version 0, type), value (version, coordinator epoch)
        recs = [(struct.pack(">hh", 0, control), struct.pack(">hi", 0, 0), None, 1000)]
        return build_batch(recs, base_offset=base, producer_id=pid, producer_epoch=0, is_transactional=True,
                           is_control=True)
    recs = [(None, v, None, 1000 + i) for i, v in enumerate(values)]
    return build_batch(recs, base_offset=base, producer_id=pid, producer_epoch=0 if pid >= 0 else -1,
                       base_sequence=0 if pid >= 0 else -1, is_transactional=txn)


ABORT, COMMIT = 0, 1


def test_a_truncated_last_batch_is_left_for_the_next_fetch():
    blob = _batch(0, [b"a", b"b"]) + _batch(2, [b"c"])
    recs, nxt = decode_partition("t", 0, blob[:-5], 0)
    assert [r.value for r in recs] == [b"a", b"b"] and nxt == 2


def test_records_before_the_fetch_offset_are_dropped():
    recs, nxt = decode_partition("t", 0, _batch(10, [b"a", b"b", b"c"]), 11)
    assert [(r.offset, r.value) for r in recs] == [(11, b"b"), (12, b"c")] and nxt == 13


def test_read_committed_skips_aborted_transactions_and_every_marker():
    blob = (_batch(0, [b"p1-aborted"], pid=1, txn=True) + _batch(1, [b"p2-kept"], pid=2, txn=True)
            + _batch(2, [], pid=1, control=ABORT) + _batch(3, [], pid=2, control=COMMIT)
            + _batch(4, [b"p1-later-kept"], pid=1, txn=True) + _batch(5, [], pid=1, control=COMMIT)
            + _batch(6, [b"plain"]))
    aborted = [SimpleNamespace(producer_id=1, first_offset=0)]
    committed, nxt = decode_partition("t", 0, blob, 0, aborted=aborted, read_committed=True)
    assert [r.value for r in committed] == [b"p2-kept", b"p1-later-kept", b"plain"] and nxt == 7
    everything, _ = decode_partition("t", 0, blob, 0, aborted=aborted, read_committed=False)
    assert [r.value for r in everything] == [b"p1-aborted", b"p2-kept", b"p1-later-kept", b"plain"]


def test_only_markers_still_move_the_position():
    blob = _batch(7, [], pid=3, control=COMMIT)
    recs, nxt = decode_partition("t", 0, blob, 7, read_committed=True)
    assert recs == [] and nxt == 8
