"""``kafkito verify DIR``: CRC-check every batch of every segment of a data directory.

Theory of operation. A clean start trusts closed segments and checks them lazily as they are
read; this is the on-demand check of everything, for an operator who suspects the disk. It
opens every segment read-only and walks it with the read path's own checker
(``segment.VerifyingScan``: header sanity, offsets increasing and, on non-compacted topics,
contiguous, CRC-32C of every batch), resyncing after a bad batch exactly as reads do, so what
it reports is what a broker would step over. It also reports segments whose offsets overlap
the one before. An incomplete tail at the end of the last segment is only a note when it may
be unflushed data (no clean-shutdown marker and past the recovery point): a crash leaves one,
a broker writing at that moment shows one, and recovery cuts it. It never writes: it can run beside a live broker, and fixing is left to
recovery (an unclean start, or a read that isolates the batch).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from . import metafile
from .cleaner import CHECKPOINT_FILE as CLEANER_CHECKPOINT_FILE
from .config import LogConfig
from .damage import QUARANTINE_SUFFIX, ByteRanges, DamagedRange
from .log import read_recovery_point
from .manager import CLEAN_SHUTDOWN_FILE, TOPICS_DIR, TOPIC_SUFFIX
from .fileio import DEFAULT_IO, FileIO
from .segment import SCAN_CHUNK_BYTES, LogSegment, VerifyingScan

_SEGMENT_LOG = re.compile(r"^(\d{20})\.log$")
_PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")


@dataclass
class PartitionVerification:
    name: str  # <topic>-<partition>
    segments: int = 0
    batches: int = 0
    bytes: int = 0
    damage: list[DamagedRange] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # structural: overlaps, unreadable files
    quarantined: list[str] = field(default_factory=list)  # left by earlier recoveries
    unflushed_tail: DamagedRange | None = None  # see the module docstring: not damage

    @property
    def ok(self) -> bool:
        return not self.damage and not self.problems


def _compacted_topics(data_dir: str) -> set[str]:
    out = set()
    topics = os.path.join(data_dir, TOPICS_DIR)
    if not os.path.isdir(topics):
        return out
    for name in os.listdir(topics):
        if not name.endswith(TOPIC_SUFFIX):
            continue
        try:
            body = metafile.read(os.path.join(topics, name), "topic")
            if LogConfig.from_kafka(dict(body["configs"])).compact:
                out.add(body["name"])
        except Exception:  # an unreadable topic file: verify its data as non-compacted
            continue
    return out


def verify_partition(directory: str, *, compact: bool = False, clean: bool = False,
                     io: FileIO = DEFAULT_IO) -> PartitionVerification:
    """``clean``: the data directory holds a clean-shutdown marker (everything was flushed)."""
    result = PartitionVerification(os.path.basename(directory))
    names = sorted(os.listdir(directory))
    compact = compact or CLEANER_CHECKPOINT_FILE in names  # cleaned once: gaps by design
    result.quarantined = [n for n in names if n.endswith(QUARANTINE_SUFFIX)]
    bases = sorted(int(m.group(1)) for m in map(_SEGMENT_LOG.match, names) if m)
    prev_end = None  # next offset after the previous segment's last batch
    for base in bases:
        seg = LogSegment(directory, base, io, segment_index_bytes=8, created_ms=0)
        seg.file = seg.files.handle(io, seg.log_path, os.O_RDONLY)  # verify never writes
        try:
            seg.file.open_now()
        except OSError as e:
            result.problems.append(f"{os.path.basename(seg.log_path)}: cannot open: {e.strerror or e}")
            continue
        try:
            size = seg.file.fstat_size()
            result.segments += 1
            result.bytes += size
            if prev_end is not None and base < prev_end:
                result.problems.append(f"segment {base:020d} starts inside the offsets of the "
                                       f"one before it (which ends at {prev_end - 1})")
            seg.contiguous_offsets = not compact
            seg.leader_epoch_max = 0  # as PartitionLog stamps it (one node, epoch 0)
            seg.unverified = ByteRanges([(0, size)])
            next_offset = base
            for _pos, fields, _view in VerifyingScan(seg, 0, size, chunk_bytes=SCAN_CHUNK_BYTES):
                result.batches += 1
                next_offset = fields[0] + fields[6] + 1
            result.damage.extend(seg.damage)
            prev_end = next_offset
        except OSError as e:
            result.problems.append(f"{os.path.basename(seg.log_path)}: cannot read: {e.strerror or e}")
        finally:
            seg.close()
    last = result.damage[-1] if result.damage else None
    if (last is not None and not clean and last.segment == bases[-1] and last.last_offset is None
            and last.first_offset >= read_recovery_point(directory)):
        result.unflushed_tail = result.damage.pop()
    return result




def verify_data_dir(data_dir: str, io: FileIO = DEFAULT_IO) -> list[PartitionVerification]:
    """Every partition directory of ``data_dir`` (deleted topics' leftovers are skipped)."""
    compacted = _compacted_topics(data_dir)
    clean = os.path.exists(os.path.join(data_dir, CLEAN_SHUTDOWN_FILE))
    results = []
    for name in sorted(os.listdir(data_dir)):
        path = os.path.join(data_dir, name)
        m = _PARTITION_DIR.match(name)
        if not m or not os.path.isdir(path) or name.endswith("-delete"):
            continue
        results.append(verify_partition(path, compact=m.group(1) in compacted, clean=clean, io=io))
    return results
