"""The log cleaner's offset map: each key's latest offset, and the record loops that use it.

Theory of operation. A clean (storage/cleaner.py) reads the dirty section once to learn
each key's latest offset (``add_records``, batch by batch) and reads the segments again to
keep, of every batch, the records no later offset of their key supersedes (``select``).
Both loops touch every record, so they are the clean's whole cost; they are kept here,
behind one small interface, so that they can run in C (storage/_offsetmap.c) with the GIL
released: the cleaner thread then holds the interpreter only for per-batch bookkeeping,
and produce and fetch on the event loop keep their CPU while a clean runs.

``OffsetMapPy`` is the reference implementation of that interface, a dict of *tokens*: a
key of at most 15 bytes is its own token, a longer one its 16-byte BLAKE2b digest (Kafka's
SkimpyOffsetMap keeps an MD5 of every key; keeping short keys whole means they never
collide). ``new_offset_map()`` returns the C map when it is built (``pip install -e .``
compiles it) and this one otherwise; the tests run the cleaner on both and compare them on
random sections. Memory: the C table takes 24 bytes a slot and grows by doubling at 3/4
full, so 32 to 64 bytes a key; the cleaner bounds the number of keys
(``log.cleaner.dedupe.buffer.size`` / 24, as Kafka).

``walk_records`` is the cleaner's Python walk of a records section, used by the reference
and by the rare paths that need every record as an object (markers, delete horizons).
"""

from __future__ import annotations

import hashlib
import secrets

from kafkito.records.batch import read_varint
from kafkito.records.errors import CorruptRecordError

__all__ = ["ACCELERATED", "OffsetMapPy", "key_token", "new_offset_map", "walk_records"]

_RAW_KEY_MAX = 15  # longer keys are kept as 16-byte digests (lengths never collide)

Record = tuple[int, int, int, int, int, "bytes | None", bool]


def key_token(key: bytes) -> bytes:
    """What the reference map stores for a key: the key itself when short, else a digest."""
    if len(key) <= _RAW_KEY_MAX:
        return key
    return hashlib.blake2b(key, digest_size=16).digest()


def walk_records(section, count: int) -> list[Record]:
    """Each record of an uncompressed records section as (start, body start, end,
    timestamp delta, offset delta, key, value is null). ``start`` is the length varint."""
    out = []
    pos = 0
    n = len(section)
    try:
        for _ in range(count):
            # Varints of one byte (and lengths of two) are decoded inline: the common cases.
            b = section[pos]
            if b < 0x80:
                length, body = (b >> 1) ^ -(b & 1), pos + 1
            elif section[pos + 1] < 0x80:
                v = (b & 0x7F) | (section[pos + 1] << 7)
                length, body = (v >> 1) ^ -(v & 1), pos + 2
            else:
                length, body = read_varint(section, pos, n)
            end = body + length
            if length < 1 or end > n:
                raise CorruptRecordError("record length overruns the batch")
            p = body + 1  # attributes
            b = section[p]
            if b < 0x80:
                ts_delta, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                ts_delta, p = read_varint(section, p, end)
            b = section[p]
            if b < 0x80:
                off_delta, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                off_delta, p = read_varint(section, p, end)
            b = section[p]
            if b < 0x80:
                klen, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                klen, p = read_varint(section, p, end)
            if klen < 0:
                key = None
            else:
                if p + klen > end:
                    raise CorruptRecordError("record truncated")
                key = bytes(section[p : p + klen])
                p += klen
            if p >= end:
                raise CorruptRecordError("record truncated")
            b = section[p]
            out.append((pos, body, end, ts_delta, off_delta, key, b == 1))  # zigzag(-1) == 1
            pos = end
    except IndexError:
        raise CorruptRecordError("record truncated") from None
    if pos != n:
        raise CorruptRecordError("bytes left over after the last record")
    return out


class OffsetMapPy:
    """The reference offset map (module docstring); the C ``OffsetMap`` has the same methods."""

    def __init__(self, seed: int = 0):
        self._offsets: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._offsets)

    def get(self, key: bytes) -> int | None:
        return self._offsets.get(key_token(key))

    def put(self, key: bytes, offset: int) -> None:
        self._offsets[key_token(key)] = offset

    def put_newer(self, key: bytes, offset: int) -> None:
        token = key_token(key)
        if offset > self._offsets.get(token, -1):
            self._offsets[token] = offset

    def merge_newer(self, other: "OffsetMapPy") -> None:
        offsets = self._offsets
        for token, offset in other._offsets.items():
            if offset > offsets.get(token, -1):
                offsets[token] = offset

    def add_records(self, section, count: int, base_offset: int) -> None:
        """Every keyed record's offset, the later of a key winning."""
        offsets = self._offsets
        for r in walk_records(section, count):
            if r[5] is not None:
                offsets[key_token(r[5])] = base_offset + r[4]

    def select(self, section, count: int, base_offset: int, drop_tombstones: bool):
        """The records a clean keeps of one batch: keyed ones (Kafka's cleaner drops keyless
        records as invalid) that no later offset of their key supersedes, tombstones only
        while ``not drop_tombstones``. Returns (kept, tombstones_removed, tombstones_kept,
        the kept records' bytes or None when all are kept, their largest timestamp delta)."""
        offsets = self._offsets
        kept = []
        removed = kept_tombstones = 0
        for r in walk_records(section, count):
            key = r[5]
            if key is None:
                continue
            latest = offsets.get(key_token(key))
            if latest is not None and base_offset + r[4] < latest:
                continue
            if r[6]:
                if drop_tombstones:
                    removed += 1
                    continue
                kept_tombstones += 1
            kept.append(r)
        body = None if len(kept) == count else b"".join(section[r[0]:r[2]] for r in kept)
        max_delta = max((r[3] for r in kept), default=0)
        return len(kept), removed, kept_tombstones, body, max_delta


try:
    from ._offsetmap import OffsetMap as _OffsetMapC
except ImportError:  # built without a compiler: the reference serves, slower
    _OffsetMapC = None

ACCELERATED = _OffsetMapC is not None


def new_offset_map(accelerated: bool = ACCELERATED):
    """An empty offset map: the C one when built (and asked for), else the reference. Its
    slots are seeded at random, so keys a client picks cannot be made to share a probe run."""
    if accelerated and _OffsetMapC is not None:
        return _OffsetMapC(secrets.randbits(64))
    return OffsetMapPy()
