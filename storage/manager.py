"""LogManager: every topic and partition of one data directory.

Layout of a data directory::

    .lock                         flock'ed while a broker runs (holds its pid for the message)
    .kafka_cleanshutdown          present only between a clean shutdown and the next start
    cluster.meta                  cluster id (created on first start)
    __kafkito_topics/<topic id>.meta   topic metadata: name, partition count, config overrides
    <topic>-<partition>/          one PartitionLog (segments, log-start-offset)
    <topic>-<partition>.<id>-delete/   a deleted topic's partition, removed after a delay

Files are named so that every name fits the 255-byte limit with a 249-character topic name:
metadata by topic id, and deleted partitions with the topic part shortened as needed.

Metadata files are versioned, checksummed and written atomically (metafile.py). The topic
metadata file is the commit point of topic creation and deletion: a partition directory is
only opened if its topic's metadata names it; on start, directories of topics that have no
metadata (a deletion interrupted after its commit point, a creation before it) are removed.

Creation is all or nothing. CreateTopics and CreatePartitions first reserve the name and the
partition count (``max.partitions`` counts reservations, so two requests cannot both pass
it), then create every new partition directory and its empty segment, outside the manager
lock (thousands of partitions take seconds; readers never wait for them), then write the
metadata (the commit point), and only then publish the topic: Metadata never lists a
partition that does not exist. Any failure before the commit point (EMFILE, ENOSPC, EIO,
anything) removes the directories made so far and leaves no trace; a crash before it
leaves directories without metadata, which the next start removes.

A data directory written by an older kafkito may hold the reverse: metadata naming
partitions that have no directory (its metadata was written first, and a failure half-way
left the topic listed). Start-up creates those partitions empty rather than dropping the
topic, because the partitions that did get created were listed and writable, so they may
hold acknowledged records. Partition files are opened on demand behind the open-file cache
(handles.py, ``log.open.files.max``), so neither a large topic nor this repair is bounded by
``ulimit -n``.

Startup takes the lock (a second broker on the same directory fails with
``DataDirLockedError``), reads the clean-shutdown marker and removes it (durably, before any
write), then opens every log: tail checks after a clean shutdown; otherwise a full scan of the
segments reaching each log's recovery point (log.py). ``checkpoint_recovery_points`` is the
periodic ``log.flush.offset.checkpoint.interval.ms`` task. Shutdown flushes and closes every
log (which checkpoints its recovery point), writes the marker and releases the lock.

A full disk (or a failing one) never makes start-up or shutdown crash. Start-up needs no
free space: an index recovery cannot rewrite stays in memory (segment.py), the pid in the
lock file is a courtesy. Shutdown skips what is derived (indexes, the time-index seal) and
what it cannot honestly claim: the clean-shutdown marker is written only when every log
was flushed, and if it cannot be written the next start simply recovers as after a crash.
Only data that could not be flushed (a failed fsync, now or earlier) makes ``shutdown``
raise, after everything else is done, with a message naming the logs.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import logging
import os
import re
import shutil
import threading
import uuid

import msgspec

from kafkito.records.codecs import DECOMPRESSED_BYTES_MAX

from . import metafile
from .clock import Clock, SystemClock
from .config import LogConfig
from .errors import (
    CorruptMetadataError,
    DataDirLockedError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    KafkaStorageError,
    PolicyViolationError,
    StorageError,
    TopicExistsError,
    UnknownTopicError,
)
from .fileio import DEFAULT_IO, FileIO
from .handles import OpenFiles
from .log import LOG_START_OFFSET_FILE, FlushPolicy, PartitionLog, RecoveryReport

log = logging.getLogger("kafkito.storage.manager")

LOCK_FILE = ".lock"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
CLUSTER_FILE = "cluster.meta"
TOPICS_DIR = "__kafkito_topics"
TOPIC_SUFFIX = ".meta"
DELETE_SUFFIX = "-delete"
TOPIC_NAME_BYTES_MAX = 249
FILE_NAME_BYTES_MAX = 255
PARTITIONS_MAX = 100_000  # per topic
BROKER_PARTITIONS_MAX = 100_000  # max.partitions: every topic's partitions together
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")
_PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")


class TopicMetadata(msgspec.Struct, frozen=True):
    name: str
    topic_id: uuid.UUID
    num_partitions: int
    configs: dict[str, str] = {}


def validate_topic_name(name: str) -> None:
    if not name:
        raise InvalidTopicError("topic name is empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name cannot be {name!r}")
    if len(name) > TOPIC_NAME_BYTES_MAX:
        raise InvalidTopicError(f"topic name is longer than {TOPIC_NAME_BYTES_MAX} characters")
    if not _LEGAL_TOPIC.match(name):
        raise InvalidTopicError(
            f"topic name {name!r} is illegal: only ASCII letters, digits, '.', '_' and '-'")


def new_cluster_id() -> str:
    """Kafka's form: a random UUID in URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class LogManager:
    def __init__(self, data_dir: str, default_config: LogConfig | None = None,
                 clock: Clock | None = None, *, io: FileIO = DEFAULT_IO,
                 decompressed_bytes_max: int = DECOMPRESSED_BYTES_MAX,
                 flush_interval_ms: int | None = None, flush_interval_messages: int | None = None,
                 open_files_max: int | None = None,
                 partitions_max: int = BROKER_PARTITIONS_MAX,
                 remote=None):
        """``open_files_max``: ``log.open.files.max`` (None: half of ``ulimit -n``);
        ``partitions_max``: ``max.partitions``, checked by create_topic/create_partitions;
        ``flush_interval_ms``/``_messages``: the broker's ``log.flush.interval.*``, the flush
        policy of every topic that does not set ``flush.ms``/``flush.messages`` itself
        (None: ``default_config``'s); ``remote``: the remote tier (a
        ``remote.RemoteLogManager``), given a ``RemoteTier`` for every partition of each topic
        with ``remote.storage.enable`` (None: no tiered storage)."""
        self.data_dir = os.path.abspath(str(data_dir))
        self.flush_interval_ms = flush_interval_ms
        self.flush_interval_messages = flush_interval_messages
        self.decompressed_bytes_max = decompressed_bytes_max  # produce validation's cap
        self.default_config = default_config or LogConfig()
        self.clock = clock or SystemClock()
        self.io = io
        self.files = OpenFiles(open_files_max)
        self.partitions_max = partitions_max
        self.remote = remote
        # Creations in progress, by topic name: the partitions they add (see the docstring).
        self._reserved: dict[str, int] = {}
        self.cluster_id: str | None = None
        self.recovery_reports: dict[tuple[str, int], RecoveryReport] = {}
        self.clean_shutdown_detected = False
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self._topics: dict[str, TopicMetadata] = {}
        self._configs: dict[str, LogConfig] = {}
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._deleting: list[tuple[int, list[PartitionLog], list[str]]] = []
        self._started = False

    # ------------------------------------------------------------------------ lifecycle
    def startup(self) -> None:
        with self._lock:
            if self._started:
                return
            os.makedirs(self.data_dir, exist_ok=True)
            self._acquire_lock()
            try:
                self._startup_locked()
            except BaseException:
                for plog in self._logs.values():
                    plog.release()
                self._logs.clear()
                self._release_lock()
                raise
            self._started = True
        if self.remote is not None:  # recovery from the bucket creates topics: after start
            self.remote.startup(self)

    def _startup_locked(self) -> None:
        self.cluster_id = self._load_cluster_id()
        marker = os.path.join(self.data_dir, CLEAN_SHUTDOWN_FILE)
        clean = self.io.exists(marker)
        self.clean_shutdown_detected = clean
        if clean:
            # From here on a crash must be seen as unclean: the marker goes before any write.
            self.io.unlink(marker)
            self.io.fsync_dir(self.data_dir)
        elif self.io.isdir(os.path.join(self.data_dir, TOPICS_DIR)):
            # A directory that has held topics before; a brand-new one has nothing to verify.
            log.warning("%s: no clean-shutdown marker (unclean shutdown); every segment will be verified",
                        self.data_dir)
        topics_dir = os.path.join(self.data_dir, TOPICS_DIR)
        if not self.io.isdir(topics_dir):
            # Its entry must be durable before any topic file in it counts as written.
            self.io.mkdir(topics_dir)
            self.io.fsync_dir(self.data_dir)
        for name in sorted(self.io.listdir(os.path.join(self.data_dir, TOPICS_DIR))):
            path = os.path.join(self.data_dir, TOPICS_DIR, name)
            if name.endswith(metafile.TMP_SUFFIX):
                self.io.unlink(path)
                continue
            if not name.endswith(TOPIC_SUFFIX):
                continue
            meta = self._read_topic(path)
            if meta.name in self._topics:
                raise CorruptMetadataError(f"{path}: a second metadata file for topic {meta.name}")
            self._topics[meta.name] = meta
            self._configs[meta.name] = LogConfig.from_kafka(meta.configs, self.default_config)
        self._remove_orphans()
        for meta in self._topics.values():
            missing = [p for p in range(meta.num_partitions)
                       if not os.path.isdir(self._partition_dir(meta.name, p))]
            if missing:
                log.warning("%s: topic %s lists %d partitions without a directory (a creation "
                            "interrupted by an older version); creating them empty",
                            self.data_dir, meta.name, len(missing))
            for p in range(meta.num_partitions):
                plog = self._open_log(meta.name, p, clean)
                self.recovery_reports[(meta.name, p)] = plog.recovery

    def shutdown(self) -> None:
        """Close every log and mark a clean shutdown when that is true (module docstring).
        Raises ``KafkaStorageError`` naming the logs whose data could not be flushed."""
        with self._lock:
            if not self._started:
                return
            unflushed: list[str] = []  # data not known durable: the next start must recover
            unclean: list[str] = []  # only derived files in doubt: recover, but no data lost
            try:
                for plog in self._logs.values():
                    try:
                        plog.close()
                    except StorageError as e:
                        unflushed.append(f"{plog.name} ({e})")
                        continue
                    if plog.offline_reason is not None:
                        unflushed.append(f"{plog.name} (offline since {plog.offline_reason})")
                    elif plog.unclean_reason is not None:
                        unclean.append(f"{plog.name} ({plog.unclean_reason})")
                for _due, logs, dirs in self._deleting:
                    self._finish_delete(logs, dirs)
                self._deleting.clear()
                self._logs.clear()
                if unflushed or unclean:
                    log.warning("%s: not marking a clean shutdown (%s): the next start verifies "
                                "every segment", self.data_dir, "; ".join(unflushed + unclean))
                else:
                    self._write_clean_shutdown_marker()
            finally:
                self._release_lock()
                self._started = False
                if self.remote is not None:
                    self.remote.close()
            if unflushed:
                raise KafkaStorageError(
                    f"data of {len(unflushed)} log(s) could not be flushed to disk: "
                    f"{'; '.join(unflushed)}. Writes acknowledged with acks=all were flushed "
                    "before their answer; the next start recovers the rest that is valid.")

    def _write_clean_shutdown_marker(self) -> None:
        path = os.path.join(self.data_dir, CLEAN_SHUTDOWN_FILE)
        try:
            metafile.write_atomic(path, b"", self.io)
        except OSError as e:
            # Not claiming a clean shutdown is always safe: the next start verifies more.
            log.warning("%s: cannot write the clean-shutdown marker (%s); the next start "
                        "will recover as after a crash", self.data_dir, e.strerror or e)

    def __enter__(self) -> "LogManager":
        self.startup()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def _acquire_lock(self) -> None:
        path = os.path.join(self.data_dir, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataDirLockedError(
                    f"data directory {self.data_dir} is locked by another kafkito broker "
                    f"(pid {holder}); two brokers must never share a data directory: stop "
                    f"the other broker or give this one its own directory") from None
            raise KafkaStorageError(f"cannot lock {path}: {e.strerror}", e.errno) from e
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:  # the pid only makes the "locked" message friendlier
            log.warning("cannot write the pid into %s: %s", path, e.strerror or e)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the only descriptor releases the flock

    def _load_cluster_id(self) -> str:
        path = os.path.join(self.data_dir, CLUSTER_FILE)
        if self.io.exists(path):
            return metafile.read(path, "cluster")["cluster_id"]
        cluster_id = new_cluster_id()
        metafile.write(path, "cluster", {"cluster_id": cluster_id}, self.io)
        log.info("%s: new cluster id %s", self.data_dir, cluster_id)
        return cluster_id

    def _remove_orphans(self) -> None:
        for name in sorted(self.io.listdir(self.data_dir)):
            path = os.path.join(self.data_dir, name)
            if not self.io.isdir(path) or name == TOPICS_DIR:
                continue
            if name.endswith(DELETE_SUFFIX):
                shutil.rmtree(path, ignore_errors=True)
                continue
            m = _PARTITION_DIR.match(name)
            if not m:
                continue
            topic, partition = m.group(1), int(m.group(2))
            meta = self._topics.get(topic)
            if meta is None or partition >= meta.num_partitions:
                log.warning("%s: partition directory %s belongs to no topic (an interrupted "
                            "deletion); removing it", self.data_dir, name)
                shutil.rmtree(path, ignore_errors=True)

    def _check_started(self) -> None:
        if not self._started:
            raise StorageError("LogManager is not started")

    # --------------------------------------------------------------------------- topics
    def _topic_path(self, topic_id: uuid.UUID) -> str:
        return os.path.join(self.data_dir, TOPICS_DIR, topic_id.hex + TOPIC_SUFFIX)

    def _read_topic(self, path: str) -> TopicMetadata:
        body = metafile.read(path, "topic")
        return TopicMetadata(body["name"], uuid.UUID(body["topic_id"]), body["num_partitions"],
                             dict(body["configs"]))

    def _write_topic(self, meta: TopicMetadata) -> None:
        body = {"name": meta.name, "topic_id": str(meta.topic_id),
                "num_partitions": meta.num_partitions, "configs": meta.configs}
        try:
            metafile.write(self._topic_path(meta.topic_id), "topic", body, self.io)
        except OSError as e:
            raise KafkaStorageError(f"cannot write metadata of topic {meta.name}: "
                                    f"{e.strerror or e}", e.errno) from e

    def _partition_dir(self, topic: str, partition: int) -> str:
        return os.path.join(self.data_dir, f"{topic}-{partition}")

    def _open_log(self, topic: str, partition: int, clean: bool = True) -> PartitionLog:
        config = self._configs[topic]
        plog = self._open_partition(topic, partition, config, clean,
                                    self._topics[topic].topic_id)
        plog.flush_policy = self.flush_policy(config, self._topics[topic].configs)
        self._logs[(topic, partition)] = plog
        return plog

    def flush_policy(self, config: LogConfig, overrides: dict[str, str]) -> FlushPolicy:
        """A topic's flush.ms / flush.messages when it sets them, else the broker's."""
        interval, messages = config.flush_ms, config.flush_messages
        if "flush.ms" not in overrides and self.flush_interval_ms is not None:
            interval = self.flush_interval_ms
        if "flush.messages" not in overrides and self.flush_interval_messages is not None:
            messages = self.flush_interval_messages
        return FlushPolicy(interval, messages)

    def _open_partition(self, topic: str, partition: int, config: LogConfig,
                        clean: bool = True, topic_id: uuid.UUID | None = None) -> PartitionLog:
        tier = None
        if self.remote is not None and config.remote_storage_enable and topic_id is not None:
            tier = self.remote.tier_for(topic, topic_id, partition, self.decompressed_bytes_max,
                                        self._partition_dir(topic, partition))
        return PartitionLog.open(self._partition_dir(topic, partition), topic, partition,
                                 config, clock=self.clock, io=self.io, clean_shutdown=clean,
                                 decompressed_bytes_max=self.decompressed_bytes_max,
                                 files=self.files, tier=tier)

    def partition_count(self) -> int:
        """Partitions of every topic, creations in progress included."""
        with self._lock:
            return (sum(m.num_partitions for m in self._topics.values())
                    + sum(self._reserved.values()))

    def _reserve(self, name: str, added: int, check_limit: bool = True) -> None:
        """Under the lock: claim ``added`` partitions of ``max.partitions`` for ``name``."""
        if name in self._reserved:
            raise PolicyViolationError(f"Topic '{name}' is being created or grown by another "
                                       "request; retry when it is done.")
        total = self.partition_count()
        if check_limit and total + added > self.partitions_max:
            raise PolicyViolationError(
                f"Adding {added} partitions would make {total + added} on this broker, above "
                f"max.partitions={self.partitions_max}.")
        self._reserved[name] = added

    def _create_partition_dirs(self, name: str, partitions: range, config: LogConfig,
                               seeds: dict[int, tuple[int, dict[str, bytes]]] | None = None,
                               topic_id: uuid.UUID | None = None) -> dict[int, PartitionLog]:
        """Create the partitions' directories and empty logs, all or none: on any failure
        what was made is removed and the error raised (OSError as KafkaStorageError)."""
        made: dict[int, PartitionLog] = {}
        try:
            for p in partitions:
                path = self._partition_dir(name, p)
                if os.path.lexists(path):
                    # No topic names it (checked under the lock): a leftover of a creation
                    # whose cleanup failed. A new topic must never inherit its data.
                    log.warning("%s: removing stale partition directory %s", self.data_dir, path)
                    shutil.rmtree(path)
                if seeds and p in seeds:
                    # A topic recovered from the remote tier starts where its remote data
                    # ends, with the producer snapshot taken there.
                    start, files = seeds[p]
                    os.makedirs(path)
                    metafile.write(os.path.join(path, LOG_START_OFFSET_FILE), "log-start-offset",
                                   {"log_start_offset": start}, self.io)
                    for file_name, data in files.items():
                        metafile.write_atomic(os.path.join(path, file_name), data, self.io)
                made[p] = self._open_partition(name, p, config, topic_id=topic_id)
        except BaseException as exc:
            self._discard_partitions(name, made, partitions)
            if isinstance(exc, OSError):
                raise KafkaStorageError(f"cannot create partitions of topic {name}: "
                                        f"{exc.strerror or exc}", exc.errno) from exc
            raise
        return made

    def _discard_partitions(self, name: str, made: dict[int, PartitionLog],
                            partitions: range) -> None:
        for plog in made.values():
            plog.release()
        for p in partitions:
            path = self._partition_dir(name, p)
            if os.path.lexists(path):
                shutil.rmtree(path, ignore_errors=True)
        try:
            self.io.fsync_dir(self.data_dir)
        except OSError as e:  # the next start removes directories no metadata names
            log.warning("%s: cannot sync after removing partitions of %s: %s",
                        self.data_dir, name, e)

    def create_topic(self, name: str, num_partitions: int, configs: dict[str, str] | None = None,
                     topic_id: uuid.UUID | None = None, *,
                     internal: bool = False,
                     seeds: dict[int, tuple[int, dict[str, bytes]]] | None = None
                     ) -> TopicMetadata:
        """All or nothing (see the module docstring). ``internal``: the broker's own topic
        (``__consumer_offsets``), which ``max.partitions`` never refuses; ``seeds``: by
        partition, its first offset and files to put in its directory before it is opened
        (recovery from the remote tier); other partitions start empty at 0."""
        validate_topic_name(name)
        if not 1 <= num_partitions <= PARTITIONS_MAX:
            raise InvalidPartitionsError(
                f"number of partitions must be between 1 and {PARTITIONS_MAX}, got {num_partitions}")
        configs = {str(k): str(v) for k, v in (configs or {}).items()}
        config = LogConfig.from_kafka(configs, self.default_config)
        self._check_tiering(config)
        meta = TopicMetadata(name, topic_id or uuid.uuid4(), num_partitions, configs)
        with self._lock:
            self._check_started()
            if name in self._topics:
                raise TopicExistsError(f"Topic '{name}' already exists.")
            collision = self._collides(name)
            if collision:
                raise InvalidTopicError(
                    f"topic {name!r} collides with existing topic {collision!r}: '.' and '_' "
                    "map to the same metric names")
            self._reserve(name, num_partitions, check_limit=not internal)

        def commit() -> TopicMetadata:
            self._check_started()
            self._write_topic(meta)  # the commit point
            self._configs[name] = config
            return meta

        return self._add_partitions(name, range(num_partitions), config, commit, seeds,
                                    meta.topic_id)

    def _add_partitions(self, name: str, partitions: range, config: LogConfig,
                        commit, seeds=None, topic_id: uuid.UUID | None = None) -> TopicMetadata:
        """See the module docstring: the partitions' directories first, then ``commit()``
        (under the lock: last checks, the metadata write, the new TopicMetadata), then
        publish. Any failure removes the directories. The caller reserved ``name``."""
        try:
            made = self._create_partition_dirs(name, partitions, config, seeds, topic_id)
            with self._lock:
                try:
                    meta = commit()
                except BaseException:
                    self._discard_partitions(name, made, partitions)
                    raise
                policy = self.flush_policy(config, meta.configs)
                for p, plog in made.items():
                    plog.flush_policy = policy
                    self._logs[(name, p)] = plog
                self._topics[name] = meta  # last: whoever sees the topic finds its logs
            if self.remote is not None:
                self.remote.attach_topic(self, name)
            return meta
        finally:
            with self._lock:
                self._reserved.pop(name, None)

    def _check_tiering(self, config: LogConfig) -> None:
        """Kafka's rules for ``remote.storage.enable=true``: the broker has a remote tier,
        and the topic is not compacted (a remote segment is never rewritten)."""
        if not config.remote_storage_enable:
            return
        if self.remote is None:
            raise InvalidConfigError("remote.storage.enable", "true", "tiered storage is disabled "
                                     "on this broker (remote.log.storage.system.enable)")
        if config.compact:
            raise InvalidConfigError("cleanup.policy", ",".join(config.cleanup_policy),
                                     "a topic with remote.storage.enable=true cannot be compacted")

    def _collides(self, name: str) -> str | None:
        norm = name.replace(".", "_")
        for other in list(self._topics) + list(self._reserved):
            if other != name and other.replace(".", "_") == norm:
                return other
        return None

    def delete_topic(self, name: str) -> TopicMetadata:
        with self._lock:
            self._check_started()
            meta = self._topics.get(name)
            if meta is None:
                raise UnknownTopicError(f"unknown topic {name!r}")
            if self.remote is not None and self._configs[name].remote_storage_enable:
                # Queued durably before the commit point, so a crash cannot leave the bucket
                # holding a deleted topic (recovery would bring it back).
                self.remote.topic_deleted(meta)
            try:
                self.io.unlink(self._topic_path(meta.topic_id))  # the commit point
                self.io.fsync_dir(os.path.join(self.data_dir, TOPICS_DIR))
            except OSError as e:
                raise KafkaStorageError(f"cannot delete topic {name}: {e.strerror}", e.errno) from e
            del self._topics[name]
            config = self._configs.pop(name)
            logs, dirs = [], []
            for p in range(meta.num_partitions):
                plog = self._logs.pop((name, p), None)
                self.recovery_reports.pop((name, p), None)
                src = self._partition_dir(name, p)
                suffix = f".{meta.topic_id.hex}{DELETE_SUFFIX}"
                dst = os.path.join(self.data_dir,
                                   os.path.basename(src)[: FILE_NAME_BYTES_MAX - len(suffix)] + suffix)
                if plog is not None:
                    plog.mark_deleted()
                    logs.append(plog)
                try:
                    os.rename(src, dst)
                    dirs.append(dst)
                except FileNotFoundError:
                    pass
                except OSError as e:  # startup removes what the metadata no longer names
                    log.warning("cannot rename %s for deletion: %s", src, e)
            self.io.fsync_dir(self.data_dir)
            # fds stay open for in-flight sendfiles until file.delete.delay.ms has passed.
            self._deleting.append((self.clock.now_ms() + config.file_delete_delay_ms, logs, dirs))
            log.info("deleted topic %s (%d partitions)", name, meta.num_partitions)
            return meta

    def _finish_delete(self, logs: list[PartitionLog], dirs: list[str]) -> None:
        for plog in logs:
            plog.release()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)

    def topic(self, name: str) -> TopicMetadata | None:
        return self._topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicMetadata | None:
        for meta in list(self._topics.values()):  # a snapshot: creations publish from threads
            if meta.topic_id == topic_id:
                return meta
        return None

    def topics(self) -> list[TopicMetadata]:
        return sorted(self._topics.values(), key=lambda m: m.name)

    def topic_config(self, name: str) -> LogConfig | None:
        return self._configs.get(name)

    def create_partitions(self, name: str, new_total: int) -> TopicMetadata:
        with self._lock:
            self._check_started()
            meta = self._topics.get(name)
            if meta is None:
                raise UnknownTopicError(f"unknown topic {name!r}")
            if new_total <= meta.num_partitions:
                raise InvalidPartitionsError(
                    f"Topic currently has {meta.num_partitions} partitions, {new_total} would "
                    "not be an increase.")
            if new_total > PARTITIONS_MAX:
                raise InvalidPartitionsError(f"at most {PARTITIONS_MAX} partitions")
            self._reserve(name, new_total - meta.num_partitions)
            config = self._configs[name]

        def commit() -> TopicMetadata:
            current = self._topics.get(name)
            if (current is None or current.topic_id != meta.topic_id
                    or current.num_partitions != meta.num_partitions):
                raise UnknownTopicError(f"topic {name!r} was deleted meanwhile")
            new = msgspec.structs.replace(current, num_partitions=new_total)
            self._write_topic(new)  # the commit point
            return new

        return self._add_partitions(name, range(meta.num_partitions, new_total), config, commit,
                                    topic_id=meta.topic_id)

    def alter_topic_configs(self, name: str, configs: dict[str, str]) -> TopicMetadata:
        """Replace the topic's override set; the open logs use the new config at once."""
        configs = {str(k): str(v) for k, v in configs.items()}
        config = LogConfig.from_kafka(configs, self.default_config)
        self._check_tiering(config)
        with self._lock:
            self._check_started()
            meta = self._topics.get(name)
            if meta is None:
                raise UnknownTopicError(f"unknown topic {name!r}")
            new = msgspec.structs.replace(meta, configs=configs)
            self._write_topic(new)
            self._topics[name] = new
            self._configs[name] = config
            policy = self.flush_policy(config, configs)
            for p in range(new.num_partitions):
                plog = self._logs.get((name, p))
                if plog is not None:
                    plog.update_config(config, policy)
        if self.remote is not None:
            self.remote.attach_topic(self, name)
        return new

    # ----------------------------------------------------------------------------- logs
    def log(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def logs(self) -> list[PartitionLog]:
        with self._lock:
            return list(self._logs.values())

    def flush_dirty(self, now_ms: int | None = None) -> int:
        """Apply the flush policy to every log in this thread (for embedders without the
        broker, whose flusher asks each log's ``flush_due_ms`` instead and fsyncs in worker
        threads); returns how many logs were flushed."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        flushed = 0
        for plog in self.logs():
            try:
                flushed += plog.maybe_flush(now)
            except StorageError as e:
                log.error("%s: background flush failed: %s", plog.name, e)
        return flushed

    def checkpoint_recovery_points(self) -> int:
        """Persist each log's flushed offset as its recovery point (Kafka's
        ``log.flush.offset.checkpoint.interval.ms`` task); returns how many were written."""
        written = 0
        for plog in self.logs():
            try:
                written += plog.checkpoint_recovery_point()
            except StorageError as e:
                log.error("%s: recovery-point checkpoint failed: %s", plog.name, e)
        return written

    def flush_all(self) -> None:
        for plog in self.logs():
            plog.flush()

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Retention for every log, and removal of deleted topics whose delay has passed.
        Returns the number of segments deleted."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        deleted = 0
        for plog in self.logs():
            try:
                deleted += plog.apply_retention(now)
            except StorageError as e:
                log.error("%s: retention failed: %s", plog.name, e)
        with self._lock:
            due = [d for d in self._deleting if d[0] <= now]
            self._deleting = [d for d in self._deleting if d[0] > now]
        for _due, logs, dirs in due:
            self._finish_delete(logs, dirs)
        return deleted
