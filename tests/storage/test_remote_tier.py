"""The remote tier in storage: offload, reads below the local log, retention over both tiers,
DeleteRecords, topic deletion, recovery from the bucket, crash leftovers. A file:// store
(LocalDirStore) and, for the S3 backend, a real moto server over HTTP."""

import os

import pytest

from kafkito.records.batch import iter_batches
from kafkito.storage import LogConfig, LogManager, build_batch
from kafkito.storage.errors import OffsetOutOfRangeError
from kafkito.storage.remote import (
    PartitionManifest,
    RemoteLogManager,
    RemoteSlice,
    RemoteStorageError,
    open_store,
)
from kafkito.storage.remote.manifest import manifest_key, segment_key

T0 = 1_699_999_000_000  # before the ManualClock: local.retention.ms=0 applies
TIERED = {"remote.storage.enable": "true", "segment.bytes": "2048",
          "index.interval.bytes": "256", "local.retention.ms": "0", "retention.ms": "-1",
          "file.delete.delay.ms": "0"}


def batch(i: int, n: int = 5, **producer) -> bytes:
    return build_batch([(b"k%d" % i, b"value-%d-%d" % (i, j) * 4, [("h", b"%d" % j)], T0 + i * 1000 + j)
                        for j in range(n)], **producer)


def idempotent(i: int) -> dict:
    """Producer 7's batch i (5 records each: its first sequence is 5 * i)."""
    return {"producer_id": 7, "producer_epoch": 0, "base_sequence": 5 * i}


def open_manager(data_dir, url, clock, **kw) -> LogManager:
    mgr = LogManager(str(data_dir), clock=clock, remote=RemoteLogManager(url, chunk_bytes=4096,
                                                                          readahead_chunks=1),
                     **kw)
    mgr.startup()
    return mgr


def fill(plog, count: int, clock, start: int = 0, producer: bool = False) -> list[bytes]:
    """Append ``count`` batches; return each as stored (offsets stamped)."""
    for i in range(start, start + count):
        plog.append(batch(i, **(idempotent(i) if producer else {})), clock.now_ms())
    plog.flush()
    return [b.tobytes() for b in plog.batches(start * 5)]


def offloaded(tmp_path, url, clock, batches: int, configs=TIERED):
    """A manager with topic "t" of ``batches`` batches, offloaded once."""
    mgr = open_manager(tmp_path / "data", url, clock)
    mgr.create_topic("t", 1, configs)
    plog = mgr.log("t", 0)
    fill(plog, batches, clock)
    mgr.remote.run_partition(plog, clock.now_ms())
    return mgr, plog


def read_all(plog, start: int = 0) -> bytes:
    out, offset = [], start
    while offset < plog.log_end_offset:
        s = plog.read(offset, 1 << 20)
        assert s.size, offset
        out.append(s.tobytes())
        offset = s.next_offset
    return b"".join(out)


@pytest.fixture
def url(tmp_path):
    return f"file://{tmp_path}/bucket"


def test_offload_deletes_local_copies_and_reads_back_byte_exact(tmp_path, url, clock):
    mgr = open_manager(tmp_path / "data", url, clock)
    mgr.create_topic("t", 1, TIERED)
    plog = mgr.log("t", 0)
    fill(plog, 60, clock)
    before = read_all(plog)
    segments_before = len(plog.segments)
    assert segments_before > 5
    rlm = mgr.remote
    uploaded = rlm.run_partition(plog, clock.now_ms())
    assert uploaded == segments_before - 1  # every closed segment; the active one stays
    assert len(plog.segments) == 1  # local.retention.ms=0: local copies of offloaded segments go
    assert plog.local_log_start_offset > 0 and plog.log_start_offset == 0
    assert not any(n.endswith(".log") and n != os.path.basename(plog.segments[0].log_path)
                   for n in os.listdir(plog.directory))
    first = plog.read(0, 100)
    assert isinstance(first, RemoteSlice) and first.first_offset == 0
    assert read_all(plog) == before
    # offset inside a batch: the batch holding it, as Kafka
    s = plog.read(7, 1)
    assert s.first_offset == 5 and s.batch_count == 1
    # the manifest names every object, each present
    m = plog.tier.manifest
    assert m.version == 1 and len(m.segments) == uploaded and m.segments[0].base_offset == 0
    for seg in m.segments:
        for suffix in seg.files:
            assert rlm.store.get(segment_key("t", m.topic_id, 0, seg.base_offset, suffix)) is not None
    mgr.shutdown()


def test_offset_for_timestamp_across_tiers_and_special_offsets(tmp_path, url, clock):
    mgr, plog = offloaded(tmp_path, url, clock, 40)
    local_start = plog.local_log_start_offset
    assert local_start > 50
    # batch 3, record 2 -> offset 17, timestamp T0 + 3002
    assert plog.offset_for_timestamp(T0 + 3002) == (17, T0 + 3002)
    assert plog.offset_for_timestamp(T0 + 3002 + 1) == (18, T0 + 3003)  # the next record
    assert plog.offset_for_timestamp(0) == (0, T0)
    last_local = plog.offset_for_timestamp(T0 + 39_000)
    assert last_local == (195, T0 + 39_000)
    assert plog.tier.highest_offset == local_start - 1
    # MAX_TIMESTAMP over both tiers: here the newest record is local
    assert plog.max_timestamp() == (195 + 4, T0 + 39_004)  # the last record, local
    mgr.shutdown()


def test_max_timestamp_found_in_the_remote_tier(tmp_path, url, clock):
    mgr = open_manager(tmp_path / "data", url, clock)
    mgr.create_topic("t", 1, TIERED)
    plog = mgr.log("t", 0)
    plog.append(build_batch([(None, b"late", [], T0 + 500_000)]), clock.now_ms())  # offset 0
    fill(plog, 30, clock, start=1)
    mgr.remote.run_partition(plog, clock.now_ms())
    assert plog.local_log_start_offset > 0
    assert plog.max_timestamp() == (0, T0 + 500_000)
    mgr.shutdown()


def test_retention_counts_both_tiers_and_delete_records_moves_remote_start(tmp_path, url, clock):
    mgr, plog = offloaded(tmp_path, url, clock, 40)
    rlm = mgr.remote
    m = plog.tier.manifest
    second = m.segments[1]
    start = plog.delete_records_before(second.base_offset + 1)
    assert start == second.base_offset + 1
    m2 = plog.tier.manifest
    assert m2.segments[0] == second and m2.version == m.version + 1
    gone = segment_key("t", m.topic_id, 0, m.segments[0].base_offset, ".log")
    with pytest.raises(RemoteStorageError):
        rlm.store.get(gone)
    with pytest.raises(OffsetOutOfRangeError):
        plog.read(0, 100)
    assert plog.read(second.base_offset + 1, 100).first_offset == second.base_offset
    # retention.bytes over both tiers: keep about 3 segments' worth in total
    mgr.alter_topic_configs("t", dict(TIERED, **{"retention.bytes": str(3 * second.size)}))
    rlm.run_partition(plog, clock.now_ms())
    total = plog.size_bytes + sum(s.size for s in plog.tier.manifest.segments
                                  if s.next_offset <= plog.local_log_start_offset)
    assert total <= 3 * second.size
    assert plog.log_start_offset == plog.tier.manifest.log_start_offset
    mgr.shutdown()


class Flaky:
    """A real store whose every verb fails while ``down`` (an outage on the real path)."""

    def __init__(self, inner):
        self.inner, self.down, self.url = inner, False, inner.url

    def __getattr__(self, name):
        fn = getattr(self.inner, name)

        def call(*a, **k):
            if self.down:
                raise RemoteStorageError("store down")
            return fn(*a, **k)
        return call


def test_outage_keeps_local_data_and_offload_resumes(tmp_path, clock, caplog):
    store = Flaky(open_store(f"file://{tmp_path}/bucket"))
    mgr = LogManager(str(tmp_path / "data"), clock=clock, remote=RemoteLogManager(store))
    mgr.startup()
    mgr.create_topic("t", 1, TIERED)
    plog = mgr.log("t", 0)
    expected = b"".join(fill(plog, 30, clock))
    store.down = True
    assert mgr.remote.run_partition(plog, clock.now_ms()) == 0
    assert mgr.remote.is_failing("t", 0)
    assert plog.apply_retention(clock.now_ms()) == 0  # nothing offloaded: nothing deleted
    assert plog.local_log_start_offset == 0
    assert read_all(plog) == expected  # local reads unaffected
    assert not mgr.remote.due(plog, clock.now_ms())  # backing off
    warnings = [r for r in caplog.records if "failing" in r.getMessage()]
    assert len(warnings) == 1 and "lag" in warnings[0].getMessage()
    assert any("disk may fill" in r.getMessage() for r in caplog.records)
    store.down = False
    clock.advance(60_000)
    assert mgr.remote.run_partition(plog, clock.now_ms()) > 0
    assert any("recovered" in r.getMessage() for r in caplog.records)
    assert plog.local_log_start_offset > 0 and read_all(plog) == expected
    mgr.shutdown()


def test_restart_finds_remote_tier_and_wiped_data_dir_recovers_from_bucket(tmp_path, url, clock):
    data = tmp_path / "data"
    mgr = open_manager(data, url, clock)
    mgr.create_topic("t", 2, TIERED)
    expected = {}
    for p in range(2):
        plog = mgr.log("t", p)
        fill(plog, 30, clock, producer=True)
        expected[p] = read_all(plog)
        mgr.remote.run_partition(plog, clock.now_ms())
    ends = {p: mgr.log("t", p).tier.manifest.end_offset for p in range(2)}
    mgr.shutdown()
    mgr = open_manager(data, url, clock)  # restart: the tier comes back from the manifest
    for p in range(2):
        assert read_all(mgr.log("t", p)) == expected[p]
    topic_id = mgr.topic("t").topic_id
    mgr.shutdown()
    import shutil
    shutil.rmtree(data)
    mgr = open_manager(data, url, clock)  # an empty data dir, the same bucket
    meta = mgr.topic("t")
    assert meta is not None and meta.topic_id == topic_id and meta.num_partitions == 2
    for p in range(2):
        plog = mgr.log("t", p)
        assert plog.log_start_offset == 0 and plog.log_end_offset == ends[p]
        assert read_all(plog) == expected[p][: len(read_all(plog))]
        # new appends continue after the remote data, and producer 7 where it was there
        # (the producer snapshot offloaded with the last segment came back with it)
        info = plog.append(batch(99, **idempotent(ends[p] // 5)), clock.now_ms())
        assert info.base_offset == ends[p] and info.record_count == 5
    mgr.shutdown()


def test_delete_topic_leaves_nothing_in_the_bucket(tmp_path, url, clock):
    mgr, _plog = offloaded(tmp_path, url, clock, 20,
                           dict(TIERED, **{"remote.storage.parquet.enable": "true"}))
    assert mgr.remote.store.list("")
    mgr.delete_topic("t")
    assert mgr.remote.pending_deletes
    mgr.shutdown()
    mgr = open_manager(tmp_path / "data", url, clock)  # a restart before the deletion ran
    assert mgr.topic("t") is None  # not resurrected from the bucket
    assert mgr.remote.run_deletions() == 1
    assert mgr.remote.store.list("") == []
    mgr.shutdown()


def test_crash_between_objects_and_manifest_is_redone_and_garbage_collected(tmp_path, url, clock):
    mgr = open_manager(tmp_path / "data", url, clock)
    mgr.create_topic("t", 1, TIERED)
    plog = mgr.log("t", 0)
    fill(plog, 10, clock)
    assert mgr.remote.run_partition(plog, clock.now_ms()) > 0  # a first commit
    tier = plog.tier
    m = tier.manifest
    fill(plog, 20, clock, start=10)
    real_commit = tier._commit

    def crash(manifest):
        raise RemoteStorageError("crash before the manifest put")

    tier._commit = crash  # fault hook around the real commit
    assert mgr.remote.run_partition(plog, clock.now_ms()) == 0
    assert tier.manifest == m  # unchanged: the new segments' objects are unreferenced
    orphan = segment_key("t", m.topic_id, 0, m.end_offset, ".log")
    assert mgr.remote.store.get(orphan)
    assert plog.local_log_start_offset == m.end_offset  # their local copies stay
    tier._commit = real_commit
    clock.advance(60_000)
    assert mgr.remote.run_partition(plog, clock.now_ms()) > 0  # redone: same keys
    stored = PartitionManifest.decode(mgr.remote.store.get(manifest_key("t", m.topic_id, 0)), "m")
    assert stored == tier.manifest and stored.version == m.version + 1
    for seg in stored.segments:
        for suffix in seg.files:
            mgr.remote.store.get(segment_key("t", m.topic_id, 0, seg.base_offset, suffix))
    assert plog.local_log_start_offset == stored.end_offset
    # a dropped segment whose objects a crash left behind is collected
    leftover = segment_key("t", m.topic_id, 0, 0, ".log")
    plog.delete_records_before(stored.segments[1].base_offset)
    mgr.remote.store.put(leftover, b"stale")
    assert tier.collect_garbage() == 1
    with pytest.raises(RemoteStorageError):
        mgr.remote.store.get(leftover)
    mgr.shutdown()


def test_parquet_rows_equal_the_records(tmp_path, url, clock):
    import pyarrow.parquet as pq
    import io
    mgr = open_manager(tmp_path / "data", url, clock)
    cfg = dict(TIERED, **{"remote.storage.parquet.enable": "true",
                          "remote.storage.parquet.json.columns": "true"})
    mgr.create_topic("t", 1, cfg)
    plog = mgr.log("t", 0)
    for i in range(30):
        plog.append(build_batch([(None, b'{"n": %d, "s": "x%d", "offset": 1}' % (i, i), [], T0 + i)]),
                    clock.now_ms())
    plog.flush()
    mgr.remote.run_partition(plog, clock.now_ms())
    m = plog.tier.manifest
    rows = []
    for seg in m.segments:
        data = mgr.remote.store.get(segment_key("t", m.topic_id, 0, seg.base_offset, ".parquet"))
        rows += pq.read_table(io.BytesIO(data)).to_pylist()
    assert [r["offset"] for r in rows] == list(range(m.end_offset))
    assert all(r["n"] == r["offset"] and r["s"] == f"x{r['offset']}" and r["value.offset"] == 1
               for r in rows)
    assert all(r["key"] is None and r["partition"] == 0 for r in rows)
    mgr.shutdown()


def test_iter_batches_of_remote_segment_match_local(tmp_path, url, clock):
    # local.retention.ms=-2: retention.ms (-1) applies, so local copies stay
    mgr, plog = offloaded(tmp_path, url, clock, 20, dict(TIERED, **{"local.retention.ms": "-2"}))
    m = plog.tier.manifest
    seg = m.segments[0]
    local = list(iter_batches(plog.read(0, seg.size).tobytes()))
    remote = list(mgr.remote.reader.batches(segment_key("t", m.topic_id, 0, 0, ""), seg))
    assert [b.tobytes() for b in remote] == [b.tobytes() for b in local]
    assert plog.local_log_start_offset == 0  # local retention -2 = retention.ms=-1: kept
    mgr.shutdown()


def test_tiered_topic_needs_the_broker_tier_and_no_compaction(tmp_path, url, clock):
    from kafkito.storage.errors import InvalidConfigError
    with LogManager(str(tmp_path / "plain"), clock=clock) as plain:
        with pytest.raises(InvalidConfigError, match="disabled on this broker"):
            plain.create_topic("t", 1, {"remote.storage.enable": "true"})
    mgr = open_manager(tmp_path / "data", url, clock)
    with pytest.raises(InvalidConfigError, match="cannot be compacted"):
        mgr.create_topic("t", 1, {"remote.storage.enable": "true", "cleanup.policy": "compact"})
    mgr.create_topic("t", 1, {})
    assert mgr.log("t", 0).tier is None
    mgr.alter_topic_configs("t", {"remote.storage.enable": "true"})  # enabled later: a tier
    assert mgr.log("t", 0).tier is not None
    mgr.shutdown()


def test_recovery_waits_for_a_store_down_at_start(tmp_path, url, clock):
    mgr, plog = offloaded(tmp_path, url, clock, 30)
    end = plog.tier.manifest.end_offset
    mgr.shutdown()
    import shutil
    shutil.rmtree(tmp_path / "data")
    store = Flaky(open_store(url))
    store.down = True
    mgr = LogManager(str(tmp_path / "data"), clock=clock, remote=RemoteLogManager(store))
    mgr.startup()  # starts, serving nothing yet
    assert mgr.topic("t") is None and mgr.remote.recovery_pending
    store.down = False
    mgr.remote.retry_recovery()  # what the offload task does on its next pass
    assert not mgr.remote.recovery_pending
    assert mgr.log("t", 0).log_end_offset == end and mgr.log("t", 0).log_start_offset == 0
    mgr.shutdown()


def test_a_deletion_that_did_not_commit_leaves_the_bucket_alone(tmp_path, url, clock):
    mgr, _plog = offloaded(tmp_path, url, clock, 20)
    before = mgr.remote.store.list("")
    mgr.remote.topic_deleted(mgr.topic("t"))  # queued, then (say) the unlink failed
    assert mgr.remote.run_deletions() == 0
    assert mgr.remote.pending_deletes == [] and mgr.remote.store.list("") == before
    mgr.shutdown()


def test_start_while_the_store_is_down_knows_the_remote_bounds(tmp_path, url, clock):
    mgr, plog = offloaded(tmp_path, url, clock, 30)
    expected = read_all(plog)
    local_start = plog.local_log_start_offset
    assert local_start > 0
    mgr.shutdown()
    store = Flaky(open_store(url))
    store.down = True
    mgr = LogManager(str(tmp_path / "data"), clock=clock, remote=RemoteLogManager(store))
    mgr.startup()
    plog = mgr.log("t", 0)
    assert plog.tier.manifest is None
    # the start is still 0 (not the local start: a consumer must not be told "out of
    # range" and reset), and remote reads answer a retriable storage error
    assert plog.log_start_offset == 0
    with pytest.raises(RemoteStorageError):
        plog.read(0, 100)
    assert plog.read(local_start, 1 << 20).size > 0  # local data is served
    store.down = False
    mgr.remote.run_partition(plog, clock.now_ms())
    assert read_all(plog) == expected
    mgr.shutdown()
