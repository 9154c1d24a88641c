"""The per-key index (storage/key_index.py) against its oracle, a full scan of the log."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkito.records import build_batch
from kafkito.records.recordscan import key_hash, scan, scan_py
from kafkito.records.batch import HEADER_BYTES
from kafkito.storage import LogConfig, ManualClock
from kafkito.storage.key_index import (
    KEYINDEX_SUFFIX,
    full_scan_key_records,
    keyindex_path,
    read_key_records,
)

from storage_testlib import crash, open_log

KEYS = [b"s-a", b"s-b", b"s-c", b"session-\xff", b""]
T0 = 1_700_000_000_000


def config(**kw) -> LogConfig:
    base = dict(segment_bytes=1200, index_interval_bytes=128, file_delete_delay_ms=0,
                key_index_enable=True, retention_ms=-1)
    base.update(kw)
    return LogConfig(**base)


def batch(keys: list, compression: str = "none", ts: int = T0) -> bytes:
    return build_batch([(k, b"v%d" % i, [("h", b"x")], ts + i) for i, k in enumerate(keys)],
                       compression=compression)


def assert_consistent(plog) -> None:
    for key in KEYS + [b"absent"]:
        want = full_scan_key_records(plog, key)
        got = read_key_records(plog, key)
        assert got.records == want, key
        for last in (1, 3):
            assert read_key_records(plog, key, last=last).records == want[-last:]
        lo = T0 + 2
        assert (read_key_records(plog, key, from_ms=lo, to_ms=T0 + 4).records
                == [r for r in want if lo <= r.timestamp <= T0 + 4])


def test_the_c_walk_and_the_python_walk_hash_keys_alike():
    b = batch([b"k1", b"k1", None, b"k2", b"k1"])
    section = b[HEADER_BYTES:]
    assert scan(section, 5, True) == scan_py(section, 5, True)
    assert scan(section, 5, True)[3] == [key_hash(b"k1"), key_hash(b"k2"), key_hash(b"k1")]
    assert scan(section, 5) == scan_py(section, 5) == (0, 4, 1)


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.one_of(st.none(), st.binary(max_size=40)), min_size=1, max_size=12))
def test_the_c_walk_hashes_keys_as_the_reference_does(keys):
    section = batch(keys)[HEADER_BYTES:]
    got = scan(section, len(keys), True)
    assert got == scan_py(section, len(keys), True)
    expected = []
    for k in keys:
        if k is not None and (not expected or expected[-1] != key_hash(k)):
            expected.append(key_hash(k))
    assert got[3] == expected


def test_index_reads_only_the_key_batches(tmp_path):
    clock = ManualClock(T0)
    plog = open_log(tmp_path, clock, config(segment_bytes=1 << 20))
    for i in range(200):
        plog.append(batch([KEYS[i % 3]]), T0)
    plog.flush()
    got = read_key_records(plog, b"s-b", last=5)
    assert [r.offset for r in got.records] == [184, 187, 190, 193, 196, 199][-5:]
    assert got.batches_read == 5
    assert [r.key for r in got.records] == [b"s-b"] * 5
    plog.close()


def test_unflushed_records_are_not_served(tmp_path):
    plog = open_log(tmp_path, ManualClock(T0), config())
    plog.append(batch([b"s-a"]), T0)
    assert read_key_records(plog, b"s-a").records == []
    plog.flush()
    assert len(read_key_records(plog, b"s-a").records) == 1
    plog.close()


def test_clean_restart_reads_the_sidecars_and_a_torn_one_is_rebuilt(tmp_path):
    clock = ManualClock(T0)
    plog = open_log(tmp_path, clock, config())
    for i in range(60):
        plog.append(batch([KEYS[i % 4], KEYS[(i + 1) % 4]], "lz4" if i % 2 else "none"), T0)
    plog.flush()
    bases = [s.base_offset for s in plog.segments]
    assert len(bases) > 3
    plog.close()
    assert all(os.path.exists(keyindex_path(str(tmp_path), b)) for b in bases)
    plog = open_log(tmp_path, clock, config())
    assert plog.key_index.rebuilt == []
    assert_consistent(plog)
    plog.close()
    with open(keyindex_path(str(tmp_path), bases[1]), "r+b") as f:
        f.seek(50)
        f.write(b"\x00\x01\x02")
    plog = open_log(tmp_path, clock, config())
    assert plog.key_index.rebuilt == [bases[1]]
    assert_consistent(plog)
    plog.close()


def test_turning_the_index_off_removes_it_and_on_rebuilds_it(tmp_path):
    clock = ManualClock(T0)
    plog = open_log(tmp_path, clock, config())
    for i in range(30):
        plog.append(batch([KEYS[i % 3]]), T0)
    plog.flush()
    plog.update_config(config(key_index_enable=False))
    assert not [n for n in os.listdir(tmp_path) if n.endswith(KEYINDEX_SUFFIX)]
    plog.append(batch([b"s-a"]), T0)
    plog.update_config(config())
    plog.flush()
    assert_consistent(plog)
    plog.close()


def ops_of(keys, *extra):
    """Random runs of log operations; ``extra`` adds kinds of one test."""
    return st.lists(st.one_of(
        st.tuples(st.just("append"), st.lists(st.sampled_from(keys), min_size=1, max_size=4),
                  st.sampled_from(["none", "gzip", "zstd"]), st.integers(0, 6)),
        st.tuples(st.just("flush")),
        st.tuples(st.just("roll")),
        st.tuples(st.just("crash")),
        st.tuples(st.just("restart")),
        st.tuples(st.just("delete_records"), st.floats(0, 1)),
        *extra,
    ), min_size=1, max_size=40)


def run_ops(path, cfg, ops) -> None:
    """Apply ``ops`` to a log, checking the index against a full scan after each, and once
    more after a clean restart (the sidecars written meanwhile are right)."""
    from kafkito.storage.cleaner import Cleaner

    clock = ManualClock(T0)
    plog = open_log(path, clock, cfg)
    try:
        for op in ops:
            kind = op[0]
            if kind == "append":
                plog.append(batch(op[1], op[2], T0 + op[3]), T0)
            elif kind == "flush":
                plog.flush()
            elif kind == "roll":
                plog.roll(T0)
            elif kind == "crash":  # kill -9: nothing flushed, closed or sealed
                crash(plog)
                plog = open_log(path, clock, cfg, clean_shutdown=False)
            elif kind == "restart":
                plog.close()
                plog = open_log(path, clock, cfg)
            elif kind == "retention":
                plog.flush()
                plog.apply_retention(T0)
            elif kind == "compact":
                plog.flush()
                plog.roll(T0)
                Cleaner(1000).clean(plog, T0)
            elif kind == "delete_records":
                plog.flush()
                lo, hi = plog.log_start_offset, plog.log_end_offset
                plog.delete_records_before(lo + int((hi - lo) * op[1]))
            assert_consistent(plog)
        plog.flush()
        assert_consistent(plog)
        bases = {s.base_offset for s in plog.segments}
        for n in os.listdir(path):  # no sidecar outlives its segment
            if n.endswith(KEYINDEX_SUFFIX):
                assert int(n[: -len(KEYINDEX_SUFFIX)]) in bases
        plog.close()
        plog = open_log(path, clock, cfg)
        assert_consistent(plog)
    finally:
        plog.close()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops_of(KEYS + [None], st.tuples(st.just("retention"))))
def test_index_matches_a_full_scan_through_appends_crashes_retention_and_delete_records(tmp_path_factory, ops):
    run_ops(tmp_path_factory.mktemp("keyindex"), config(retention_bytes=3000), ops)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops_of(KEYS, st.tuples(st.just("compact"))))
def test_index_matches_a_full_scan_through_compaction(tmp_path_factory, ops):
    cfg = config(cleanup_policy=("compact",), segment_bytes=1024, delete_retention_ms=0,
                 min_cleanable_dirty_ratio=0.0)
    run_ops(tmp_path_factory.mktemp("keyindex-compact"), cfg, ops)


def test_a_segment_rewritten_under_its_name_is_reindexed(tmp_path):
    """As after a compaction swap that recovery finished: same base, same size, other
    bytes. The sidecar's last-batch CRC no longer matches, so the index is rebuilt."""
    clock = ManualClock(T0)
    logs = {}
    for name, keys in (("a", [b"s-a", b"s-b"]), ("b", [b"s-c", b"s-a"])):
        plog = open_log(tmp_path / name, clock, config())
        for i in range(40):
            plog.append(batch([keys[i % 2]]), T0)
        plog.flush()
        logs[name] = [s.base_offset for s in plog.segments]
        plog.close()
    assert logs["a"] == logs["b"]
    base = logs["a"][1]
    name = f"{base:020d}.log"
    (tmp_path / "a" / name).write_bytes((tmp_path / "b" / name).read_bytes())
    plog = open_log(tmp_path / "a", clock, config())
    assert plog.key_index.rebuilt == [base]
    assert_consistent(plog)
    assert read_key_records(plog, b"s-c").records  # the rewritten segment's own key
    plog.close()
