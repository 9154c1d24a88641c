"""The bucket's layout and the per-partition manifest: which remote segments exist.

Theory of operation.

Layout below the store's root (``s3://bucket/prefix`` or ``file:///dir``)::

    __kafkito_topics/<topic id>.meta          a tiered topic: name, id, partitions, configs
    <topic>-<topic id>/<partition>/manifest   the partition's manifest (the commit point)
    <topic>-<topic id>/<partition>/<base offset, 20 digits>.log   a segment, as on disk
        ... .index .timeindex .snapshot .txnindex .parquet   beside it, when uploaded

The manifest is the only truth: a segment object exists for readers only once a manifest
names it. Both are written with one atomic PUT each, in this order: the segment's objects
first, then the manifest that adds it. A crash between leaves objects no manifest names;
their keys are deterministic (the segment's base offset), so the redone upload overwrites
them with the same bytes (idempotent), and no garbage accumulates. Deletion goes the other
way: a manifest without the segments first, then their objects; a crash between leaves
unreferenced objects below the manifest's end, which ``garbage`` names for the next pass.

A manifest is a metafile (the house format: a versioned header line, a CRC-32C over the
JSON body; see metafile.py) whose body carries its own ``version``, a counter bumped on
every write, so a log line or a test can tell two generations apart. A manifest that fails
its checks raises ``CorruptMetadataError``: the tier then refuses to guess (no offload, no
remote reads) rather than overwrite what it cannot read.
"""

from __future__ import annotations

import uuid

import msgspec

from .. import metafile

MANIFEST_KIND = "remote-log-manifest"
TOPIC_KIND = "remote-topic"
TOPICS_PREFIX = "__kafkito_topics"
LOG, INDEX, TIMEINDEX, SNAPSHOT, TXNINDEX, PARQUET = (
    ".log", ".index", ".timeindex", ".snapshot", ".txnindex", ".parquet")


class RemoteSegment(msgspec.Struct, frozen=True):
    base_offset: int
    end_offset: int  # the last offset it holds
    size: int  # bytes of the .log object
    max_timestamp: int  # -1 when no batch carries one
    offset_of_max_timestamp: int
    files: tuple[str, ...] = (LOG,)  # the suffixes uploaded for it

    @property
    def next_offset(self) -> int:
        return self.end_offset + 1


class PartitionManifest(msgspec.Struct, frozen=True):
    topic: str
    topic_id: str  # hex
    partition: int
    version: int = 0  # 0: nothing was ever written
    log_start_offset: int = 0  # the remote log start (DeleteRecords and retention move it)
    segments: tuple[RemoteSegment, ...] = ()
    upload_from: int = 0  # where uploads resume once every segment was deleted

    @property
    def end_offset(self) -> int:
        """The offset after the last remote segment: local data below it was offloaded (or
        deleted), and uploads resume there."""
        return self.segments[-1].next_offset if self.segments else self.upload_from

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    def adding(self, seg: RemoteSegment) -> "PartitionManifest":
        assert seg.base_offset >= self.end_offset, (seg, self.end_offset)
        # The first segment after none: it may start below a log start DeleteRecords set.
        start = self.log_start_offset if self.segments else max(self.log_start_offset,
                                                                  seg.base_offset)
        return msgspec.structs.replace(self, version=self.version + 1, log_start_offset=start,
                                       segments=self.segments + (seg,))

    def starting_at(self, offset: int) -> tuple["PartitionManifest", list[RemoteSegment]]:
        """The manifest with the log start moved to ``offset`` and the segments wholly
        below it dropped; and the dropped segments."""
        kept = tuple(s for s in self.segments if s.end_offset >= offset)
        dropped = [s for s in self.segments if s.end_offset < offset]
        start = max(self.log_start_offset, offset)
        return msgspec.structs.replace(self, version=self.version + 1, log_start_offset=start,
                                       segments=kept, upload_from=self.end_offset), dropped

    def encode(self) -> bytes:
        return metafile.encode(MANIFEST_KIND, msgspec.to_builtins(self))

    @classmethod
    def decode(cls, data: bytes, where: str) -> "PartitionManifest":
        body = metafile.decode(data, MANIFEST_KIND, where)
        return msgspec.convert(body, cls)


def topic_dir(topic: str, topic_id: uuid.UUID | str) -> str:
    tid = topic_id.hex if isinstance(topic_id, uuid.UUID) else topic_id
    return f"{topic}-{tid}"


def partition_dir(topic: str, topic_id: uuid.UUID | str, partition: int) -> str:
    return f"{topic_dir(topic, topic_id)}/{partition}"


def manifest_key(topic: str, topic_id, partition: int) -> str:
    return f"{partition_dir(topic, topic_id, partition)}/manifest"


def segment_key(topic: str, topic_id, partition: int, base_offset: int, suffix: str) -> str:
    return f"{partition_dir(topic, topic_id, partition)}/{base_offset:020d}{suffix}"


def topic_meta_key(topic_id: uuid.UUID | str) -> str:
    tid = topic_id.hex if isinstance(topic_id, uuid.UUID) else topic_id
    return f"{TOPICS_PREFIX}/{tid}.meta"


def garbage(manifest: PartitionManifest, keys: list[str]) -> list[str]:
    """Keys of the partition (``keys``: a listing of its directory) that no manifest names
    and that no upload in progress can be writing: segment objects below the manifest's end
    that it does not list. Objects at or past the end may belong to an upload under way."""
    listed = {s.base_offset for s in manifest.segments}
    out = []
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        stem, dot, _suffix = name.partition(".")
        if not dot or not stem.isdigit() or len(stem) != 20:
            continue
        base = int(stem)
        if base not in listed and base < manifest.end_offset:
            out.append(key)
    return out
