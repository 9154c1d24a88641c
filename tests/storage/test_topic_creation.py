"""Topic creation is all or nothing (issue 10 finding 3).

The metadata used to be written before the partition logs were opened, so a failure half-way
(EMFILE at partition 340 of 100,000, ENOSPC) left a topic listed with partitions that did not
exist, and every restart tripped over it. Now: directories, then metadata, then publish; a
failure anywhere leaves nothing; and a data directory left half-created by an older version
starts, with the missing partitions created empty.
"""

import errno
import os
import uuid

import pytest

from kafkito.records import build_batch
from kafkito.storage import (
    FileIO,
    KafkaStorageError,
    LogConfig,
    LogManager,
    PolicyViolationError,
    metafile,
)
from kafkito.storage.manager import TOPICS_DIR, TOPIC_SUFFIX


class FailAtPartition(FileIO):
    """Fails ``open`` (or ``mkdir``) under ``<topic>-<k>/`` with ``err``: once, or every
    time for EMFILE (a descriptor table that stays full: the cache's evict-and-retry
    cannot help when the descriptors are held elsewhere)."""

    def __init__(self, data_dir, topic: str, k: int, err: int, call: str = "open"):
        self.prefix = os.path.join(str(data_dir), f"{topic}-{k}")
        self.err = err
        self.call = call
        self.fired = False

    def _maybe_fail(self, path, call):
        again = self.err == errno.EMFILE
        if (again or not self.fired) and call == self.call and (path == self.prefix
                                                     or path.startswith(self.prefix + os.sep)):
            self.fired = True
            raise OSError(self.err, os.strerror(self.err), path)

    def open(self, path, flags, mode=0o644):
        self._maybe_fail(path, "open")
        return super().open(path, flags, mode)

    def mkdir(self, path):
        self._maybe_fail(path, "mkdir")
        super().mkdir(path)

    def pwritev(self, fd, buffers, offset):
        if self.call == "pwritev" and not self.fired and TOPICS_DIR in os.readlink(f"/proc/self/fd/{fd}"):
            self.fired = True
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().pwritev(fd, buffers, offset)


def leftovers(data_dir, topic):
    names = [n for n in os.listdir(data_dir) if n.startswith(topic + "-")]
    metas = os.listdir(os.path.join(data_dir, TOPICS_DIR))
    return names, [m for m in metas if m.endswith(TOPIC_SUFFIX)]


@pytest.mark.parametrize("err,call", [(errno.EMFILE, "open"), (errno.ENOSPC, "open"),
                                      (errno.EIO, "mkdir"), (errno.ENOSPC, "pwritev")])
def test_topic_creation_failing_half_way_leaves_nothing(tmp_path, clock, err, call):
    io = FailAtPartition(tmp_path, "big", 37, err, call)
    with LogManager(tmp_path, LogConfig(), clock, io=io) as m:
        with pytest.raises(KafkaStorageError):
            m.create_topic("big", 60)
        assert io.fired
        assert m.topic("big") is None and m.log("big", 0) is None
        assert [t.name for t in m.topics()] == []
        assert leftovers(tmp_path, "big") == ([], [])
        assert m.partition_count() == 0
        # The name is free: the next attempt succeeds, with empty logs.
        io.call = None
        meta = m.create_topic("big", 60)
        assert meta.num_partitions == 60
        assert all(m.log("big", p).log_end_offset == 0 for p in range(60))
    with LogManager(tmp_path, LogConfig(), clock) as m:
        assert m.topic("big").num_partitions == 60


def test_create_partitions_failing_half_way_leaves_the_topic_as_it_was(tmp_path, clock):
    io = FailAtPartition(tmp_path, "t", 5, errno.EMFILE)
    with LogManager(tmp_path, LogConfig(), clock, io=io) as m:
        m.create_topic("t", 2)
        m.log("t", 0).append(build_batch([(b"k", b"v", [], 1)]), clock.now_ms())
        with pytest.raises(KafkaStorageError):
            m.create_partitions("t", 10)
        assert m.topic("t").num_partitions == 2
        assert sorted(n for n in os.listdir(tmp_path) if n.startswith("t-")) == ["t-0", "t-1"]
        io.call = None
        assert m.create_partitions("t", 10).num_partitions == 10
    with LogManager(tmp_path, LogConfig(), clock) as m:
        assert m.topic("t").num_partitions == 10
        assert m.log("t", 0).log_end_offset == 1


def test_crash_before_the_commit_point_leaves_directories_the_next_start_removes(tmp_path, clock):
    with LogManager(tmp_path, LogConfig(), clock) as m:
        m.create_topic("keep", 1)
    # What a crash between the directories and the metadata leaves.
    for p in range(3):
        os.makedirs(tmp_path / f"half-{p}")
    with LogManager(tmp_path, LogConfig(), clock) as m:
        assert [t.name for t in m.topics()] == ["keep"]
        assert not any(n.startswith("half-") for n in os.listdir(tmp_path))


def test_half_created_topic_from_an_older_version_starts_with_missing_partitions_created(
        tmp_path, clock):
    """The older layout: metadata says 500 partitions, only the first 3 directories exist
    (and partition 0 holds acknowledged data). Start-up must neither fail nor drop it."""
    with LogManager(tmp_path, LogConfig(), clock) as m:
        m.create_topic("old", 3)
        m.log("old", 0).append(build_batch([(b"k", b"acked", [], 1)]), clock.now_ms())
        topic_id = m.topic("old").topic_id
    path = os.path.join(tmp_path, TOPICS_DIR, topic_id.hex + TOPIC_SUFFIX)
    body = metafile.read(path, "topic")
    body["num_partitions"] = 500
    metafile.write(path, "topic", body)
    with LogManager(tmp_path, LogConfig(), clock, open_files_max=16) as m:
        assert m.topic("old").num_partitions == 500
        assert all(os.path.isdir(tmp_path / f"old-{p}") for p in range(500))
        assert m.log("old", 0).log_end_offset == 1
        assert m.log("old", 499).log_end_offset == 0
        assert m.files.open_count <= 16


def test_max_partitions_counts_every_topic_and_creations_in_progress(tmp_path, clock):
    with LogManager(tmp_path, LogConfig(), clock, partitions_max=10) as m:
        m.create_topic("a", 6)
        with pytest.raises(PolicyViolationError, match="max.partitions=10"):
            m.create_topic("b", 5)
        with pytest.raises(PolicyViolationError):
            m.create_partitions("a", 11)
        assert m.topic("b") is None and m.topic("a").num_partitions == 6
        m.create_topic("b", 4)
        assert m.partition_count() == 10
        m.delete_topic("a")
        m.create_topic("c", topic_id=uuid.uuid4(), num_partitions=6)
        # The broker's own topics are never refused by the limit.
        m.create_topic("__consumer_offsets", 3, internal=True)
        assert m.partition_count() == 13


def test_a_stale_partition_directory_is_not_inherited_by_a_new_topic(tmp_path, clock):
    with LogManager(tmp_path, LogConfig(), clock) as m:
        stale = tmp_path / "fresh-0"
        os.makedirs(stale)
        (stale / "00000000000000000000.log").write_bytes(b"garbage from a failed cleanup")
        m.create_topic("fresh", 1)
        assert m.log("fresh", 0).log_end_offset == 0
        assert not (stale / "00000000000000000000.log").read_bytes().startswith(b"garbage")
