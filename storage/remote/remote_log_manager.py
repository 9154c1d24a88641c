"""RemoteLogManager: the broker's remote tier (Kafka's RemoteLogManager), one per data dir.

Theory of operation.

It owns the object store, the shared chunk cache and reader, and one ``RemoteTier`` per
partition of every topic with ``remote.storage.enable=true`` (attached to its
``PartitionLog`` as ``log.tier``). Its work is plain calls, run by whoever owns the threads
(the broker's offload task, broker/remote_offload.py; tests call them directly):

- ``run_partition(plog, now_ms)``: load the manifest if needed, offload, apply total
  retention remotely, then local retention (which now may delete what was offloaded), and
  collect garbage a crash left once per start. A failure puts the partition in backoff
  (``remote.log.manager.task.retry.backoff.ms`` doubling up to ``...backoff.max.ms``,
  Kafka's names) and is logged once when the partition's state changes (``ok`` ->
  ``failing`` -> ``ok``), with the offload lag in segments; the local log is never touched
  by a failure, so produce and fetch of local data go on.
- ``run_deletions()``: DeleteTopics of a tiered topic deletes its bucket metadata (the
  commit point for the bucket) and then every object under the topic's directory. The list
  of topics still to delete is a checksummed metafile in the data directory, written before
  the local deletion's commit point, so a crash or an outage only delays it and a restart
  never resurrects a deleted topic from the bucket; a topic queued whose local deletion did
  not commit is still a local topic, and is taken off the list untouched.
- ``recover(logs)`` at start-up (beyond Kafka): every tiered topic in the bucket
  (``__kafkito_topics/<id>.meta``, written before its first manifest) that the data
  directory does not have is created locally with the same id and configs, each partition
  starting at its manifest's end offset, so its remote data is served at once and new
  appends continue after it.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import metafile
from ..errors import CorruptMetadataError, StorageError
from ..producer_state import snapshot_path
from .manifest import SNAPSHOT, TOPIC_KIND, TOPICS_PREFIX, segment_key, topic_dir, topic_meta_key
from .reader import CACHE_BYTES, CHUNK_BYTES, READAHEAD_CHUNKS, ChunkCache, RemoteReader
from .store import ObjectNotFoundError, ObjectStore, RemoteStorageError, open_store
from .tier import RemoteTier

if TYPE_CHECKING:
    from ..log import PartitionLog
    from ..manager import LogManager, TopicMetadata

log = logging.getLogger("kafkito.storage.remote")

PENDING_DELETES_FILE = "remote-topic-deletes.meta"
RETRY_BACKOFF_MS = 500  # remote.log.manager.task.retry.backoff.ms
RETRY_BACKOFF_MAX_MS = 30_000  # remote.log.manager.task.retry.backoff.max.ms


@dataclass
class _Health:
    failing: bool = False
    failures: int = 0
    next_attempt_ms: int = 0
    garbage_collected: bool = False


class RemoteLogManager:
    def __init__(self, store: ObjectStore | str, *, cache_bytes: int = CACHE_BYTES,
                 chunk_bytes: int = CHUNK_BYTES, readahead_chunks: int = READAHEAD_CHUNKS,
                 retry_backoff_ms: int = RETRY_BACKOFF_MS,
                 retry_backoff_max_ms: int = RETRY_BACKOFF_MAX_MS):
        self.store = open_store(store) if isinstance(store, str) else store
        self.reader = RemoteReader(self.store, ChunkCache(cache_bytes), chunk_bytes=chunk_bytes,
                                   readahead_chunks=readahead_chunks)
        self.retry_backoff_ms = retry_backoff_ms
        self.retry_backoff_max_ms = retry_backoff_max_ms
        self.data_dir: str | None = None
        self._logs: "LogManager | None" = None  # topics' partition counts and configs
        self.decompressed_max = 0
        self._health: dict[tuple[str, int], _Health] = {}
        self._topics_written: dict[str, dict] = {}  # topic id -> the body last put
        self._pending_deletes: list[str] = []  # topic directories still in the bucket
        self._store_down = False  # a manifest load failed during start-up
        self._recovery_pending = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.store.url

    def close(self) -> None:
        """LogManager.shutdown: stop the reader's read-ahead threads."""
        self.reader.close()

    # -------------------------------------------------------------------------- start
    def startup(self, logs: "LogManager") -> None:
        """Called by LogManager.startup: recover tiered topics missing locally, then attach
        a tier to every partition of every tiered topic."""
        self.data_dir = logs.data_dir
        self._logs = logs
        self.decompressed_max = logs.decompressed_bytes_max
        self._pending_deletes = self._read_pending()
        self.retry_recovery()
        for meta in logs.topics():
            self.attach_topic(logs, meta.name)
        self._store_down = False  # from here on each offload pass tries for itself

    def tier_for(self, topic: str, topic_id: uuid.UUID, partition: int,
                 decompressed_max: int, directory: str | None = None) -> RemoteTier:
        """A partition's tier, its manifest loaded now when the store answers (otherwise
        the offload task loads it; until then reads of remote data answer a retriable
        error, from the bounds last committed, kept in ``directory``)."""
        tier = RemoteTier(self.store, self.reader, topic, topic_id.hex, partition,
                          decompressed_max=decompressed_max, directory=directory)
        if not self._store_down:
            try:
                tier.load()
            except (RemoteStorageError, CorruptMetadataError) as e:
                log.warning("%s: remote manifest not loaded yet (%s)", tier.name, e)
                # One failure is enough to know: do not wait on the store for every partition.
                self._store_down = isinstance(e, RemoteStorageError)
        return tier

    def attach_topic(self, logs: "LogManager", name: str) -> None:
        """Give every partition of ``name`` its tier if the topic is tiered and they have
        none (a topic altered to ``remote.storage.enable=true``)."""
        meta, config = logs.topic(name), logs.topic_config(name)
        if meta is None or config is None or not config.remote_storage_enable:
            return
        for p in range(meta.num_partitions):
            plog = logs.log(name, p)
            if plog is not None and plog.tier is None:
                plog.tier = self.tier_for(name, meta.topic_id, p, logs.decompressed_bytes_max,
                                          plog.directory)

    # ----------------------------------------------------------------------- offload
    def due(self, plog: "PartitionLog", now_ms: int) -> bool:
        h = self._health.get((plog.topic, plog.partition))
        return h is None or h.next_attempt_ms <= now_ms

    def run_partition(self, plog: "PartitionLog", now_ms: int) -> int:
        """One offload pass for one partition (module docstring); returns segments uploaded.
        Never raises for a store failure: it is logged (once per state change) and backed
        off."""
        tier = plog.tier
        if tier is None or not plog.config.remote_storage_enable:
            return 0
        key = (plog.topic, plog.partition)
        h = self._health.setdefault(key, _Health())
        try:
            if tier.manifest is None:
                tier.load()
            self._ensure_topic_meta(plog)
            uploaded = tier.offload(plog)
            tier.apply_retention(plog, now_ms)
            if not h.garbage_collected:
                tier.collect_garbage()
                h.garbage_collected = True
        except (RemoteStorageError, CorruptMetadataError) as e:
            h.failures += 1
            delay = min(self.retry_backoff_max_ms, self.retry_backoff_ms * 2 ** (h.failures - 1))
            h.next_attempt_ms = now_ms + delay
            if not h.failing:
                h.failing = True
                lag = tier.pending_segments(plog)
                log.warning("%s: offload to %s failing (%s); offload lag %d segment(s); local "
                            "produce and fetch go on, retrying with backoff", tier.name, self.url,
                            e, lag)
            return 0
        self._store_down = False
        if h.failing:
            log.warning("%s: offload to %s recovered after %d failed attempt(s)", tier.name,
                        self.url, h.failures)
        h.failing, h.failures, h.next_attempt_ms = False, 0, 0
        if uploaded:
            try:
                plog.apply_retention(now_ms)
            except StorageError as e:
                log.error("%s: local retention after offload failed: %s", plog.name, e)
        return uploaded

    def is_failing(self, topic: str, partition: int) -> bool:
        h = self._health.get((topic, partition))
        return h is not None and h.failing

    def _ensure_topic_meta(self, plog: "PartitionLog") -> None:
        """Put the topic's bucket metadata before its first manifest (and when it changed)."""
        tier = plog.tier
        body = {"name": plog.topic, "topic_id": tier.topic_id,
                "num_partitions": self._num_partitions(plog), "configs": self._configs(plog)}
        if self._topics_written.get(tier.topic_id) == body:
            return
        self.store.put(topic_meta_key(tier.topic_id), metafile.encode(TOPIC_KIND, body))
        self._topics_written[tier.topic_id] = body

    def _num_partitions(self, plog: "PartitionLog") -> int:
        meta = self._logs.topic(plog.topic) if self._logs is not None else None
        return meta.num_partitions if meta is not None else plog.partition + 1

    def _configs(self, plog: "PartitionLog") -> dict:
        meta = self._logs.topic(plog.topic) if self._logs is not None else None
        return dict(meta.configs) if meta is not None else {"remote.storage.enable": "true"}

    # -------------------------------------------------------------------- deletion
    def topic_deleted(self, meta: "TopicMetadata") -> None:
        """LogManager.delete_topic of a topic that may be in the bucket: remember it
        (durably, before returning) for ``run_deletions``."""
        with self._lock:
            d = topic_dir(meta.name, meta.topic_id)
            if d not in self._pending_deletes:
                self._pending_deletes.append(d)
                self._write_pending()

    def run_deletions(self) -> int:
        """Delete the bucket objects of deleted topics; returns topics finished."""
        with self._lock:
            pending = list(self._pending_deletes)
        done = 0
        for d in pending:
            tid = d.rsplit("-", 1)[-1]
            if self._logs is not None and self._logs.topic_by_id(uuid.UUID(hex=tid)) is not None:
                # Queued, then the local deletion did not commit (a crash or a failed
                # write): the topic lives, its bucket data stays.
                self._forget_pending(d)
                continue
            try:
                self.store.delete([topic_meta_key(tid)])  # the bucket's commit point
                keys = self.store.list(d)
                if keys:
                    self.store.delete(keys)
            except RemoteStorageError as e:
                log.warning("remote deletion of %s postponed: %s", d, e)
                continue
            self._topics_written.pop(tid, None)
            self._forget_pending(d)
            log.info("deleted the remote data of %s from %s", d, self.url)
            done += 1
        return done

    def _forget_pending(self, d: str) -> None:
        with self._lock:
            self._pending_deletes.remove(d)
            self._write_pending()

    @property
    def pending_deletes(self) -> list[str]:
        return list(self._pending_deletes)

    def _read_pending(self) -> list[str]:
        path = os.path.join(self.data_dir, PENDING_DELETES_FILE)
        if not os.path.exists(path):
            return []
        return list(metafile.read(path, "remote-topic-deletes")["topics"])

    def _write_pending(self) -> None:
        if self.data_dir is None:
            return
        metafile.write(os.path.join(self.data_dir, PENDING_DELETES_FILE), "remote-topic-deletes",
                       {"topics": self._pending_deletes})

    # -------------------------------------------------------------------- recovery
    @property
    def recovery_pending(self) -> bool:
        """Start-up could not look for topics to recover: the offload task tries again."""
        return self._recovery_pending

    def retry_recovery(self) -> None:
        try:
            self.recover(self._logs)
            self._recovery_pending = False
        except (RemoteStorageError, CorruptMetadataError) as e:
            if not self._recovery_pending:
                log.error("remote storage %s: cannot look for tiered topics to recover (%s); "
                          "local topics are served, and this is retried", self.url, e)
            self._recovery_pending = True

    def recover(self, logs: "LogManager") -> list[str]:
        """Create locally every tiered topic of the bucket the data directory lacks (module
        docstring); returns their names."""
        from .manifest import PartitionManifest, manifest_key

        recovered = []
        for key in self.store.list(TOPICS_PREFIX):
            if not key.endswith(".meta"):
                continue
            body = metafile.decode(self.store.get(key), TOPIC_KIND, f"{self.url}/{key}")
            name, tid = body["name"], body["topic_id"]
            self._topics_written[tid] = body
            if topic_dir(name, tid) in self._pending_deletes:
                continue
            local = logs.topic(name)
            if local is not None:
                if local.topic_id.hex != tid:
                    log.warning("remote storage holds topic %s with id %s, but the local topic of "
                                "that name has id %s: not recovering it", name, tid,
                                local.topic_id.hex)
                continue
            seeds = {}
            for p in range(body["num_partitions"]):
                mkey = manifest_key(name, tid, p)
                try:
                    m = PartitionManifest.decode(self.store.get(mkey), f"{self.url}/{mkey}")
                except ObjectNotFoundError:  # nothing offloaded from this partition yet
                    continue
                files = {}
                last = m.segments[-1] if m.segments else None
                if last is not None and SNAPSHOT in last.files:
                    # Idempotent producers go on where they were: the state at the end.
                    data = self.store.get(segment_key(name, tid, p, last.base_offset, SNAPSHOT))
                    files[os.path.basename(snapshot_path("", m.end_offset))] = data
                seeds[p] = (m.end_offset, files)
            try:
                logs.create_topic(name, body["num_partitions"], body["configs"],
                                  topic_id=uuid.UUID(hex=tid), seeds=seeds)
            except StorageError as e:  # e.g. a config this version refuses: skip, say why
                log.error("cannot recover topic %s from %s: %s", name, self.url, e)
                continue
            starts = {p: seed[0] for p, seed in seeds.items()}
            recovered.append(name)
            log.warning("recovered topic %s (%d partitions) from %s: remote data up to offsets "
                        "%s", name, body["num_partitions"], self.url, starts)
        return recovered
